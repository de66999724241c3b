/**
 * What the daemon tells its observers (metrics, notifications, the HTTP API, drills): typed events on one bus. The
 * daemon core knows nothing of its subscribers. A listener runs synchronously, must not block, and cannot break the
 * daemon: an exception in a listener is logged as a bug and the other listeners still run.
 */
import type { Diagnosis, TargetHealth, TargetStatus } from "../checks/detector.ts";
import type { Observation } from "../checks/observation.ts";
import type { PortReplication } from "../checks/replication.ts";
import type { RecoveryOutcome } from "../recovery/journal.ts";
import type { RunOutcome } from "../recovery/runner.ts";
import type { SpareCounts } from "./spares.ts";

/** Who asked for a recovery: the decider (a diagnosis), an operator (switchover), a drill, or a restart (resume). */
export type RecoveryOrigin = "diagnosis" | "operator" | "drill" | "resume";

export interface RecoveryRef {
  readonly recoveryId: string;
  readonly playbook: string;
  readonly host: string;
  readonly group: string;
  readonly diagnosis: string;
  readonly origin: RecoveryOrigin;
}

export interface ActiveDiagnosis {
  /** `DeadPrimary:redis1`: stable while the finding lasts. */
  readonly key: string;
  readonly diagnosis: Diagnosis;
  readonly actionable: boolean;
  /** The decision: the playbook started, or why only an alert. */
  readonly decision: { readonly kind: "recover"; readonly playbook: string } | { readonly kind: "alert"; readonly reason: string };
  readonly since: number;
  readonly acknowledged: boolean;
}

export interface DrillResult {
  readonly pair: readonly [string, string];
  readonly schedule: string;
  readonly action: "switchover";
  readonly outcome: RecoveryOutcome | "skipped" | "interrupted";
  readonly startedAt: number;
  readonly endedAt: number;
  readonly recoveryId?: string;
  /** The new primary host (when it ran). */
  readonly to?: string;
  readonly reason?: string;
}

export interface DaemonEvents {
  /** Every check result, with the target's health after it. */
  observation: { readonly observation: Observation; readonly health: TargetHealth };
  /** A target's first status, or a change of it (up -> down, down -> up, unknown -> up). */
  status: { readonly target: string; readonly from: TargetStatus; readonly to: TargetStatus; readonly at: number; readonly failure?: string };
  /** A finding appeared, or its decision changed. */
  diagnosis: ActiveDiagnosis & { readonly at: number };
  /** A finding is gone. */
  resolved: {
    readonly key: string;
    readonly diagnosis: Diagnosis;
    readonly at: number;
    readonly sinceMs: number;
    /** cleared: the fault is gone; recovering: the host is under recovery (the recovery's end tells the rest). */
    readonly why: "cleared" | "recovering";
  };
  "recovery-start": RecoveryRef & { readonly at: number };
  "step-start": RecoveryRef & { readonly step: string; readonly title: string; readonly attempt: number; readonly at: number };
  "step-end": RecoveryRef & {
    readonly step: string;
    readonly title: string;
    readonly attempt: number;
    readonly at: number;
    readonly ok: boolean;
    readonly durationMs: number;
    readonly error?: string;
  };
  "recovery-end": RecoveryRef & {
    readonly outcome: Exclude<RunOutcome, "not-started">;
    readonly at: number;
    readonly durationMs: number;
    readonly error?: string;
    /** What the promotion lost of what the failed primary had acknowledged (estimated), when one promoted. */
    readonly dataLoss?: string;
  };
  /** Every pair's replication at an evaluation (every round): links, lag in bytes and time, connected replicas. */
  replication: { readonly rows: readonly PortReplication[]; readonly at: number };
  /** Paused or resumed; `by` is `failoverd` when a pause ended by itself. */
  paused: { readonly paused: boolean; readonly at: number; readonly by: string; readonly reason?: string; readonly until?: number };
  /** A host's maintenance began (`active`) or ended (ended by an operator, or expired: `by` is `failoverd`). */
  maintenance: { readonly host: string; readonly active: boolean; readonly at: number; readonly by: string; readonly reason?: string; readonly until?: number };
  /** The current findings were acknowledged: not sent again until they change. */
  ack: { readonly keys: readonly string[]; readonly at: number; readonly by: string };
  drill: DrillResult;
  /** The warm spares of a role, as last listed (after the daemon starts, a refill step, a recovery). */
  spares: SpareCounts & { readonly at: number };
}

export type DaemonEventName = keyof DaemonEvents;
type Listener<K extends DaemonEventName> = (e: DaemonEvents[K]) => void;

export class EventBus {
  private readonly listeners = new Map<DaemonEventName, Set<(e: never) => void>>();

  constructor(private readonly onListenerError: (event: string, err: unknown) => void = () => {}) {}

  /** Subscribes; returns the function that unsubscribes. */
  on<K extends DaemonEventName>(name: K, fn: Listener<K>): () => void {
    let set = this.listeners.get(name);
    if (!set) {
      set = new Set();
      this.listeners.set(name, set);
    }
    set.add(fn as (e: never) => void);
    return () => set.delete(fn as (e: never) => void);
  }

  emit<K extends DaemonEventName>(name: K, event: DaemonEvents[K]): void {
    for (const fn of this.listeners.get(name) ?? []) {
      try {
        (fn as Listener<K>)(event);
      } catch (e) {
        this.onListenerError(name, e);
      }
    }
  }
}
