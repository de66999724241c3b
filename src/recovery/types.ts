/**
 * Playbooks and steps. A playbook is the runbook it automates: an ordered list of named steps, one line each.
 * A step is safe to run twice and verifies its effect by looking at the system again (in `run`, through
 * `ctx.verify` / `ctx.waitFor`, which dry-run skips).
 */
import type { CheckRules, TargetStatus } from "../checks/detector.ts";
import type { Observation, RedisObservation } from "../checks/observation.ts";
import type { Logger } from "../log.ts";
import type { Providers } from "../providers/types.ts";
import type { Inventory } from "../topology/inventory.ts";
import type { Topology } from "../topology/topology.ts";

export type PlaybookName = "failed_redis" | "failed_haproxy" | "switchover";

export interface Step {
  /** A verb: `fence`, `promote`, `launch`. Journal key: unique within its playbook. */
  readonly name: string;
  /** The runbook line this step automates. */
  readonly title: string;
  /** Once this step has started, a failure no longer rolls back: the recovery only goes forward. */
  readonly pointOfNoReturn?: boolean;
  /** The step's deadline; the recovery's stepTimeoutMs when absent. */
  readonly timeoutMs?: (t: Topology) => number;
  /** Does the work and verifies it. Returns a JSON-serialisable result for the journal (and later steps). */
  run(ctx: StepContext): Promise<unknown>;
  /**
   * Restores, from its journaled result, the part of the step's effect that lives in the acting daemon rather than
   * in the world (where a host lives, which hosts are unmonitored): run when a recovery is resumed, possibly by
   * another instance than the one that ran the step. Idempotent.
   */
  restore?(ctx: StepContext, result: unknown): Promise<void>;
  /** Undoes the step when a later step fails before the point of no return. Idempotent. */
  rollback?(ctx: StepContext): Promise<void>;
}

export interface Playbook {
  readonly name: PlaybookName;
  /** The failed host the playbook recovers. */
  readonly host: string;
  readonly steps: readonly Step[];
}

/**
 * The daemon's side of a recovery: its monitoring switches (the runbook's "unmonitor" and "monitor") and what it
 * knows of the targets, so that the decisive steps decide on fresh evidence.
 */
export interface MonitorControl {
  unmonitor(host: string): Promise<void>;
  monitor(host: string): Promise<void>;
  /** The daemon's confirmed view of a target (`redis1:9001`, `haproxy2`): used to tolerate a dead peer. */
  statusOf(target: string): TargetStatus;
  /** The check rules in force (fall, intervals). */
  readonly rules: CheckRules;
  /**
   * Checks a target once more, now (the daemon's own check: same probe, same verdict), with the check's deadline or a
   * shorter one.
   */
  recheck(target: string, deadlineMs?: number): Promise<Observation>;
  /** Consecutive failed checks of a target so far (its current run). */
  failuresOf(target: string): number;
  /** When the target was marked down (its `fall`-th failed check in a row), while it is; else undefined. */
  downSince?(target: string): number | undefined;
  /** A Redis server's last healthy observation before its failure: what it had acknowledged, and its identity. */
  lastGood(target: string): RedisObservation | undefined;
  /** The earliest time a primary's offset was seen past `offset` (for the data-loss estimate in time). */
  firstAbove(target: string, offset: number): { at: number; beforeHistory: boolean } | undefined;
  /** A server's role changed through a step (a promotion): the daemon's view follows at once. */
  noteRole(target: string, role: "primary" | "replica"): void;
}

/** What the runner tells every step of the recovery it runs. */
export interface RecoveryInfo {
  readonly id: string;
  /** The failed servers the diagnosis named (empty: the whole host). */
  readonly targets: readonly string[];
  /** An operator accepted that the promotion may lose data (journaled with the recovery's start). */
  readonly acceptDataLoss: boolean;
  /** A forced failover (`failoverd failover --host`): the host answers by design and is not re-checked before the point of no return. */
  readonly forced?: boolean;
  /** When the recovery started (its journaled start). */
  readonly startedAt?: number;
}

export interface StepContext {
  readonly topology: Topology;
  readonly inventory: Inventory;
  readonly providers: Providers;
  readonly monitor: MonitorControl;
  readonly log: Logger;
  readonly signal: AbortSignal;
  readonly dryRun: boolean;
  /** The failed host. */
  readonly host: string;
  readonly recovery: RecoveryInfo;
  /** The result an earlier step of this recovery journaled. */
  result<T>(step: string): T | undefined;
  /** Records where a host lives now (persisted, except in dry-run). */
  place(host: string, address: string, machineId?: string): void;
  /** Confirms an effect by looking again; throws when `check` says no. Skipped in dry-run. */
  verify(what: string, check: () => Promise<boolean>): Promise<void>;
  /** Polls `check` until it returns true, within the step's deadline. A string return is the reason it is not yet. */
  waitFor(what: string, check: () => Promise<true | string>, everyMs?: number): Promise<void>;
  /** A read that may fail in dry-run (the server may be unreachable from where `plan` runs): undefined then. */
  read<T>(fn: () => Promise<T>): Promise<T | undefined>;
}
