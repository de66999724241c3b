/**
 * The runner owns a recovery's control flow: step order, per-step deadlines (AbortSignal), bounded retries of
 * retryable errors, the journal (a step's start is durable before the step acts, its end before the next step acts
 * or the recovery ends), dry-run, progress events, and the point of no return (before it a failure rolls back; after
 * it the recovery only goes forward). Steps contain no control flow of their own beyond their work and its
 * verification.
 */
import { EventEmitter } from "node:events";
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { errorMessage, FailoverdError, isRetryable } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Providers } from "../providers/types.ts";
import { Inventory } from "../topology/inventory.ts";
import type { Topology } from "../topology/topology.ts";
import { type Journal, type JournalRecord, JournalWriteError, type RecoveryOutcome, type RecoverySummary, type RecoveryTrigger } from "./journal.ts";
import { type Lease, LeaseLostError } from "./lease.ts";
import type { MonitorControl, Playbook, RecoveryInfo, Step, StepContext } from "./types.ts";

export interface RunnerDeps {
  readonly topology: Topology;
  readonly inventory: Inventory;
  readonly providers: Providers;
  readonly journal: Journal;
  readonly monitor: MonitorControl;
  readonly log: Logger;
  readonly dryRun?: boolean;
  /** Persists the inventory after a step changed it (not called in dry-run). */
  readonly saveInventory?: () => void;
  /** Aborted when the daemon shuts down: the current step finishes or is journaled, no next step starts. */
  readonly shutdown?: AbortSignal;
  /** Checked before every step: an instance that no longer holds it stops, and the next holder resumes. */
  readonly lease?: Lease | undefined;
  readonly now?: () => number;
  /**
   * Fault injection for crash tests and drills: wait this long before starting the named step, so a test can kill
   * the daemon at a known point. Set from FAILOVERD_CHAOS_PAUSE=<step>:<ms>[,<step>:<ms>...]; never in a config
   * file. A resumed run does not pause before the step it resumes at (that is where the last run was stopped).
   */
  readonly pauseBefore?: { readonly step: string; readonly ms: number } | readonly { readonly step: string; readonly ms: number }[];
}

/** Parses FAILOVERD_CHAOS_PAUSE (`launch:3000`, or several: `fence:3000,launch:3000`). */
export function chaosPauseFromEnv(v = process.env["FAILOVERD_CHAOS_PAUSE"]): RunnerDeps["pauseBefore"] {
  const all = (v ?? "").split(",").flatMap((part) => {
    const m = /^([a-z-]+):(\d+)$/.exec(part.trim());
    return m ? [{ step: m[1]!, ms: Number(m[2]) }] : [];
  });
  return all.length === 0 ? undefined : all.length === 1 ? all[0] : all;
}

export interface RecoveryMeta {
  readonly diagnosis: string;
  readonly failingSince?: number | undefined;
  /** The failed servers the diagnosis named; the whole host's when absent. */
  readonly targets?: readonly string[] | undefined;
  /** An operator accepted that the promotion may lose data. */
  readonly acceptDataLoss?: boolean | undefined;
  /** A forced failover: an operator fails over a host that answers; the point of no return does not re-check it. */
  readonly forced?: boolean | undefined;
  readonly by?: string | undefined;
  /** Who asked for it, journaled for the history (the decider when absent). */
  readonly origin?: RecoveryTrigger;
  readonly reason?: string;
}

/**
 * interrupted: stopped between steps by a shutdown (the journal holds it open; the next start resumes it).
 * not-started: its first record could not be written (JournalWriteError): nothing was done, nothing is to resume.
 */
export type RunOutcome = RecoveryOutcome | "interrupted" | "not-started";

/** How long the runner waits before writing a journal record again that the journal refused. */
const JOURNAL_RETRY_MS = 500;

/** A shutdown while the runner waited for the journal: the run ends as "interrupted". */
class Interrupted extends Error {}

/** The journal refused the recovery's start: nothing was done, nothing is to resume ("not-started"). */
class NotStarted extends Error {}

/**
 * One run's journal writes. A step's end need not be durable before the next step's start is written, only before
 * the next step acts and before the recovery ends: it is held and goes with the next record, in one append (one
 * fenced etcd transaction, or one fsync, where there were two). The recovery's start goes with the first step's
 * start the same way. Held records are announced (logged, emitted, counted done) only once written, so neither the
 * log nor the events nor the steps that follow ever run ahead of the journal.
 */
class RunJournal {
  private held: { readonly record: JournalRecord; readonly announce: () => void }[] = [];
  /** The recovery's start is held: a refusal means the recovery never started, and is not waited out. */
  private opening = false;
  /** Starts written ahead with the first write (see `plan`). */
  private ahead: JournalRecord[] = [];
  /** The steps whose first start is written ahead: their first attempt writes none of its own. */
  readonly planned = new Set<string>();

  constructor(
    private readonly journal: Journal,
    private readonly shutdown: AbortSignal | undefined,
  ) {}

  /** Holds the recovery's start until the first step's start (or whatever is written first). */
  open(record: JournalRecord, announce: () => void): void {
    this.opening = true;
    this.hold(record, announce);
  }

  hold(record: JournalRecord, announce: () => void): void {
    this.held.push({ record, announce });
  }

  /**
   * The starts of the steps between the first and the point of no return, written ahead with the first write (the
   * recovery's start and the first step's start): each then starts once the steps before it ended, and the ends of
   * all of them go with the point of no return's start. With several instances that is two fenced transactions before
   * the promotion instead of four (each 15-50 ms at a crash, when every instance and etcd member is busy), and one
   * fsync instead of three with a file. They are before the point of no return: each is undone if the recovery rolls
   * back, and a successor that finds one started without an end runs it again (steps are idempotent). The runner
   * still checks the lease before each of them and cuts it short when the lease is lost; a deposed leader's ends and
   * the point of no return's start are refused by etcd.
   */
  plan(records: JournalRecord[]): void {
    this.ahead = records;
    for (const r of records) if (r.type === "step-start") this.planned.add(r.step);
  }

  /**
   * Writes what is held, then `records`, in one append, waiting while the journal cannot be written (the daemon
   * reports that, once a minute): the runner never moves on unrecorded. A shutdown ends the wait (Interrupted: the
   * journal holds the recovery open, and the next start resumes it); a refused opening ends the run (NotStarted).
   * Then announces what was held, in order.
   */
  async write(...records: JournalRecord[]): Promise<void> {
    const held = this.held;
    const all = [...held.map((h) => h.record), ...records, ...this.ahead];
    if (all.length === 0) return;
    for (;;) {
      try {
        await this.journal.appendAll(all);
        break;
      } catch (e) {
        if (!(e instanceof JournalWriteError)) throw e;
        if (this.opening) throw new NotStarted();
      }
      if (this.shutdown?.aborted) throw new Interrupted();
      await sleep(JOURNAL_RETRY_MS, undefined, this.shutdown ? { signal: this.shutdown } : {}).catch(() => {});
      if (this.shutdown?.aborted) throw new Interrupted();
    }
    this.held = [];
    this.opening = false;
    this.ahead = [];
    for (const h of held) h.announce();
  }
}

export interface StepEvent {
  readonly recoveryId: string;
  readonly playbook: string;
  readonly host: string;
  readonly step: string;
  readonly title: string;
  readonly attempt: number;
  readonly at: number;
  readonly ok?: boolean;
  readonly error?: string;
}

export class StepVerificationError extends FailoverdError {
  override name = "StepVerificationError";
}

/**
 * A step refused before changing anything (its preconditions do not hold). Even at the point of no return this
 * rolls back: nothing was done that could not be undone.
 */
export class PreconditionError extends FailoverdError {
  override name = "PreconditionError";
}

export class Runner extends EventEmitter {
  private readonly deps: RunnerDeps;
  constructor(deps: RunnerDeps) {
    super();
    // A dry run changes nothing, not even where failoverd believes the hosts are.
    this.deps = deps.dryRun ? { ...deps, inventory: new Inventory(deps.topology, deps.inventory.all()) } : deps;
  }

  /**
   * Runs a playbook to its end, or resumes it from a journaled summary of an unfinished run. The journal is a
   * precondition: nothing starts before the first record is written ("not-started" otherwise), and no step starts
   * before the record before it is written (the runner waits for the journal, and a shutdown interrupts the wait).
   */
  async run(playbook: Playbook, meta: RecoveryMeta, resume?: RecoverySummary): Promise<RunOutcome> {
    try {
      return await this.runOrThrow(playbook, meta, resume);
    } catch (e) {
      if (e instanceof Interrupted) return "interrupted";
      if (e instanceof NotStarted) return "not-started";
      // The journal refused a record: this instance no longer holds the lease. It stops here; the holder resumes.
      if (!(e instanceof LeaseLostError)) throw e;
      this.deps.log.warn({ host: playbook.host, err: e.message }, `lost the lease: stopping ${playbook.name} for ${playbook.host}; the acting instance resumes it`);
      return "interrupted";
    }
  }

  private async runOrThrow(playbook: Playbook, meta: RecoveryMeta, resume?: RecoverySummary): Promise<RunOutcome> {
    const journal = new RunJournal(this.deps.journal, this.deps.shutdown);
    const now = this.deps.now ?? Date.now;
    const id = resume?.id ?? `${new Date(now()).toISOString().replace(/[-:.TZ]/g, "").slice(0, 14)}-${playbook.host}-${randomBytes(3).toString("hex")}`;
    const log = this.deps.log.child({ recoveryId: id, playbook: playbook.name, host: playbook.host });
    const results = new Map<string, unknown>(resume?.completed ?? []);
    const startedAt = resume ? resume.startedAt : now();
    const recovery: RecoveryInfo = {
      id,
      targets: meta.targets ?? resume?.targets ?? [],
      acceptDataLoss: (meta.acceptDataLoss ?? resume?.acceptDataLoss) === true,
      forced: meta.forced === true,
      startedAt,
    };
    if (!resume) {
      const record: JournalRecord = {
        type: "recovery-start",
        id,
        at: startedAt,
        playbook: playbook.name,
        host: playbook.host,
        diagnosis: meta.diagnosis,
        failingSince: meta.failingSince,
        ...(meta.targets ? { targets: meta.targets } : {}),
        ...(meta.acceptDataLoss ? { acceptDataLoss: true } : {}),
        ...(meta.by ? { by: meta.by } : {}),
        ...(this.deps.dryRun ? { dryRun: true } : {}),
        ...(meta.origin !== undefined ? { origin: meta.origin } : {}),
        ...(meta.reason !== undefined ? { reason: meta.reason } : {}),
      };
      journal.open(record, () => {
        log.info({ diagnosis: meta.diagnosis }, `recovery started: ${playbook.name} for ${playbook.host}`);
        this.emit("recovery-start", { recoveryId: id, playbook: playbook.name, host: playbook.host, at: record.at });
      });
      const noReturn = playbook.steps.findIndex((s) => s.pointOfNoReturn);
      journal.plan(playbook.steps.slice(1, Math.max(1, noReturn)).map((s) => ({ type: "step-start", id, at: startedAt, step: s.name, attempt: 1, ahead: true })));
    } else {
      log.info({ completed: [...results.keys()] }, `resuming the unfinished recovery ${id}`);
      // The effects that live in the acting daemon (not in the world) are restored from the journal: the instance
      // resuming may not be the one that ran those steps.
      for (const step of playbook.steps) {
        if (!step.restore || !results.has(step.name)) continue;
        await step.restore(this.context(playbook, results, AbortSignal.timeout(this.deps.topology.config.recovery.stepTimeoutMs), log, recovery), results.get(step.name));
      }
    }

    const done: Step[] = playbook.steps.filter((s) => results.has(s.name));
    // The point of no return is passed when its step *starts*: a promotion that failed half-way may have promoted
    // some servers, and a terminate that timed out may still be carried out by the cloud.
    const started = new Set((resume?.steps ?? []).map((s) => s.step));
    let pastNoReturn = playbook.steps.some((s) => s.pointOfNoReturn && (results.has(s.name) || started.has(s.name)));
    const resumedAt = resume ? playbook.steps.find((s) => !results.has(s.name))?.name : undefined;
    for (const step of playbook.steps) {
      if (results.has(step.name)) continue;
      if (this.deps.shutdown?.aborted) {
        // What is held is written first: the next start resumes after the last step that ended, not before it.
        await journal.write();
        log.info({ step: step.name }, "shutting down before the next step; the recovery resumes at the next start");
        return "interrupted";
      }
      if (this.deps.lease && !this.deps.lease.isHeld()) {
        // What is held cannot be written without the lease: the acting instance runs that step again (idempotent).
        log.warn({ step: step.name }, `no longer the acting instance: stopping before ${step.name}; the acting instance resumes it`);
        return "interrupted";
      }
      const stepLog = log.child({ step: step.name });
      const pause = [this.deps.pauseBefore ?? []].flat().find((p) => p.step === step.name && step.name !== resumedAt);
      if (pause) {
        // A process killed during the pause leaves the journal as it would be without one: every ended step recorded.
        await journal.write();
        stepLog.warn(`chaos: pausing ${pause.ms} ms before ${step.name}`);
        await sleep(pause.ms, undefined, this.deps.shutdown ? { signal: this.deps.shutdown } : {}).catch(() => {});
        if (this.deps.shutdown?.aborted) return "interrupted";
      }
      if (step.pointOfNoReturn) pastNoReturn = true;
      const outcome = await this.runStep(journal, id, playbook, step, results, stepLog, recovery);
      if (outcome === "interrupted") return "interrupted";
      if (outcome instanceof Error) {
        // A point of no return that refused before changing anything (and that no earlier run had started) may still undo.
        const refusedUntouched = outcome instanceof PreconditionError && step.pointOfNoReturn === true && !started.has(step.name);
        if (!pastNoReturn || refusedUntouched) {
          // The failed step may have done part of its work: its own rollback (idempotent) runs first.
          await this.rollback(journal, id, playbook, [...done, step], results, log, recovery);
          await this.end(journal, id, "rolled-back", log, `${step.name}: ${outcome.message}`);
          return "rolled-back";
        }
        await this.end(journal, id, "failed", log, `${step.name}: ${outcome.message}`);
        return "failed";
      }
      done.push(step);
    }
    await this.end(journal, id, "succeeded", log);
    return "succeeded";
  }

  private async runStep(
    journal: RunJournal,
    id: string,
    playbook: Playbook,
    step: Step,
    results: Map<string, unknown>,
    log: Logger,
    recovery: RecoveryInfo,
  ): Promise<"ok" | "interrupted" | Error> {
    const { topology } = this.deps;
    const now = this.deps.now ?? Date.now;
    const attempts = topology.config.recovery.stepAttempts;
    const timeoutMs = step.timeoutMs?.(topology) ?? topology.config.recovery.stepTimeoutMs;
    let lastError: Error = new Error("not run");
    // Whether any attempt may have changed something: only a step that never got past its preconditions is untouched.
    let touched = false;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      const base = { recoveryId: id, playbook: playbook.name, host: playbook.host, step: step.name, title: step.title, attempt };
      // The step's start goes with what is held (the recovery's start, the last step's end): all durable before it
      // acts. A start written ahead is durable already: what is held waits for the next write.
      const ahead = attempt === 1 && journal.planned.delete(step.name);
      const startedAt = now();
      if (!ahead) await journal.write({ type: "step-start", id, at: startedAt, step: step.name, attempt });
      this.emit("step-start", { ...base, at: now() } satisfies StepEvent);
      log.info({ attempt }, `step ${step.name}: ${step.title}`);
      if (attempt > 1 && this.deps.lease && !this.deps.lease.isHeld()) throw new LeaseLostError(`no longer the acting instance: not retrying ${step.name}`);
      const deadline = AbortSignal.timeout(timeoutMs);
      // A step of an instance that loses the lease meanwhile is cut short: the next holder runs it again.
      const lost = new AbortController();
      const watch = this.deps.lease
        ? setInterval(() => this.deps.lease?.isHeld() || lost.abort(new LeaseLostError(`lost the lease during ${step.name}`)), 100)
        : null;
      const signal = watch ? AbortSignal.any([deadline, lost.signal]) : deadline;
      try {
        const result = await this.withDeadline(step.run(this.context(playbook, results, signal, log, recovery)), signal, step.name, timeoutMs).finally(() => {
          if (watch) clearInterval(watch);
        });
        // Held for the next record (the next step's start, or the recovery's end): counted done once written.
        const ended = { type: "step-end", id, at: now(), step: step.name, ok: true, result, ...(ahead ? { startedAt } : {}) } as const;
        journal.hold(ended, () => {
          results.set(step.name, result);
          this.emit("step-end", { ...base, at: ended.at, ok: true } satisfies StepEvent);
          log.info({ result }, `step ${step.name} done`);
        });
        return "ok";
      } catch (e) {
        if (e instanceof LeaseLostError) throw e;
        lastError = e instanceof Error ? e : new Error(String(e));
        if (!(e instanceof PreconditionError)) touched = true;
        await journal.write({ type: "step-end", id, at: now(), step: step.name, ok: false, error: lastError.message, ...(ahead ? { startedAt } : {}) });
        this.emit("step-end", { ...base, at: now(), ok: false, error: lastError.message } satisfies StepEvent);
        const retry = attempt < attempts && (isRetryable(e) || e instanceof StepVerificationError || signal.aborted);
        log.warn({ attempt, err: lastError.message, retry }, `step ${step.name} failed`);
        if (this.deps.shutdown?.aborted) return "interrupted";
        if (!retry) break;
        await sleep(Math.min(5000, 200 * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2));
      }
    }
    return touched && lastError instanceof PreconditionError ? new Error(lastError.message) : lastError;
  }

  private async rollback(journal: RunJournal, id: string, playbook: Playbook, done: readonly Step[], results: Map<string, unknown>, log: Logger, recovery: RecoveryInfo) {
    const now = this.deps.now ?? Date.now;
    for (const step of [...done].reverse()) {
      if (!step.rollback) continue;
      const signal = AbortSignal.timeout(this.deps.topology.config.recovery.stepTimeoutMs);
      try {
        await step.rollback(this.context(playbook, results, signal, log.child({ step: step.name }), recovery));
        await journal.write({ type: "rollback", id, at: now(), step: step.name, ok: true });
        log.info(`rolled back ${step.name}`);
      } catch (e) {
        if (e instanceof Interrupted) throw e;
        await journal.write({ type: "rollback", id, at: now(), step: step.name, ok: false, error: errorMessage(e) });
        log.error({ err: errorMessage(e) }, `rollback of ${step.name} failed`);
      }
    }
  }

  private async end(journal: RunJournal, id: string, outcome: RecoveryOutcome, log: Logger, error?: string): Promise<void> {
    const now = this.deps.now ?? Date.now;
    await journal.write({ type: "recovery-end", id, at: now(), outcome, ...(error ? { error } : {}) });
    const line = `recovery ${outcome}${error ? `: ${error}` : ""}`;
    if (outcome === "succeeded") log.info(line);
    else log.error(line);
    this.emit("recovery-end", { recoveryId: id, outcome, error, at: now() });
  }

  private withDeadline<T>(p: Promise<T>, signal: AbortSignal, step: string, ms: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const onAbort = () =>
        reject(
          signal.reason instanceof LeaseLostError
            ? signal.reason
            : new StepVerificationError(`step ${step} did not finish within ${ms} ms`),
        );
      if (signal.aborted) return onAbort();
      signal.addEventListener("abort", onAbort, { once: true });
      p.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
    });
  }

  private context(playbook: Playbook, results: Map<string, unknown>, signal: AbortSignal, log: Logger, recovery: RecoveryInfo): StepContext {
    const d = this.deps;
    const dryRun = d.dryRun === true;
    return {
      topology: d.topology,
      inventory: d.inventory,
      providers: d.providers,
      monitor: d.monitor,
      log,
      signal,
      dryRun,
      host: playbook.host,
      recovery,
      result: <T>(step: string) => results.get(step) as T | undefined,
      place: (host, address, machineId) => {
        d.inventory.place(host, address, machineId);
        if (!dryRun) d.saveInventory?.();
      },
      verify: async (what, check) => {
        if (dryRun) return;
        if (!(await check())) throw new StepVerificationError(`could not confirm that ${what}`);
      },
      waitFor: async (what, check, everyMs = 50) => {
        if (dryRun) return;
        let why = "";
        while (!signal.aborted) {
          try {
            const r = await check();
            if (r === true) return;
            why = r;
          } catch (e) {
            why = errorMessage(e);
          }
          await sleep(everyMs);
        }
        throw new StepVerificationError(`gave up waiting until ${what}${why ? ` (${why})` : ""}`);
      },
      read: async (fn) => {
        try {
          return await fn();
        } catch (e) {
          if (dryRun) return undefined;
          throw e;
        }
      },
    };
  }
}
