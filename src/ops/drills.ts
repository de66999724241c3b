/**
 * Failover drills ("test failover in production, again and again"): each `drills:` entry is a cron expression and a
 * pair; at each time the daemon is asked for a planned switchover of the pair (an intent: the daemon stays the only
 * actor and applies its guards). The result, succeeded, failed, rolled back or skipped (paused, pair not healthy, a
 * recovery under way), is told as a `drill` event, which the metrics and notifications pick up. Off unless configured.
 *
 * The next run is computed with the `cron` package's CronTime from an injectable clock, so a test can stand at any
 * time and fire the timer it armed.
 */
import { CronTime } from "cron";
import type { DaemonEvents, DrillResult } from "../daemon/events.ts";
import type { SwitchoverRequest } from "../daemon/intents.ts";
import { errorMessage } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { DrillConfig } from "../topology/schema.ts";

export interface DrillClock {
  now(): number;
  /** Arms a one-shot timer; returns what cancels it. */
  setTimer(fn: () => void, ms: number): () => void;
}

export const realClock: DrillClock = {
  now: Date.now,
  setTimer(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return () => clearTimeout(t);
  },
};

/** What drills need of the daemon. */
export interface DrillDaemon {
  readonly paused: boolean;
  readonly events: {
    on<K extends keyof DaemonEvents>(name: K, fn: (e: DaemonEvents[K]) => void): () => void;
    emit<K extends keyof DaemonEvents>(name: K, e: DaemonEvents[K]): void;
  };
  requestSwitchover(request: SwitchoverRequest, origin: "drill", by: string): Promise<{ recoveryId: string; to: string } | { refused: string }>;
}

/** setTimeout's longest delay; a later run is reached in hops. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface ScheduledDrill {
  readonly schedule: string;
  readonly pair: readonly [string, string];
  readonly next: number | null;
  readonly running: boolean;
}

interface Armed {
  readonly drill: DrillConfig;
  next: number | null;
  cancel: (() => void) | null;
  running: boolean;
}

export class Drills {
  private armed: Armed[] = [];
  private closed = false;
  private readonly runs = new Set<Promise<void>>();

  constructor(
    private readonly daemon: DrillDaemon,
    private readonly log: Logger,
    private readonly clock: DrillClock = realClock,
  ) {}

  /** (Re)schedules the configured drills (start, SIGHUP). */
  configure(drills: readonly DrillConfig[]): void {
    for (const a of this.armed) a.cancel?.();
    this.armed = drills.map((drill) => ({ drill, next: null, cancel: null, running: false }));
    for (const a of this.armed) this.arm(a);
    if (drills.length > 0) {
      this.log.info(
        { drills: this.list().map((d) => ({ schedule: d.schedule, pair: d.pair.join("+"), next: d.next && new Date(d.next).toISOString() })) },
        `${drills.length} drill(s) scheduled`,
      );
    }
  }

  list(): ScheduledDrill[] {
    return this.armed.map((a) => ({ schedule: a.drill.schedule, pair: a.drill.pair, next: a.next, running: a.running }));
  }

  /** Cancels the timers; waits for a drill under way to be told. */
  async close(): Promise<void> {
    this.closed = true;
    for (const a of this.armed) a.cancel?.();
    await Promise.allSettled([...this.runs]);
  }

  private arm(a: Armed, after = this.clock.now()): void {
    if (this.closed) return;
    let next: number;
    try {
      next = new CronTime(a.drill.schedule).getNextDateFrom(new Date(after)).toMillis();
    } catch (e) {
      this.log.error({ schedule: a.drill.schedule, err: errorMessage(e) }, "cannot compute the next drill time; the drill is off");
      a.next = null;
      return;
    }
    a.next = next;
    const hop = () => {
      const left = next - this.clock.now();
      if (left > 0 && left > MAX_TIMER_MS) {
        a.cancel = this.clock.setTimer(hop, MAX_TIMER_MS);
        return;
      }
      a.cancel = this.clock.setTimer(() => this.fire(a, next), Math.max(0, left));
    };
    hop();
  }

  private fire(a: Armed, due: number): void {
    if (this.closed) return;
    const run = this.runDrill(a).finally(() => {
      this.runs.delete(run);
      // From the due time (never earlier), so one due time never fires twice.
      this.arm(a, Math.max(this.clock.now(), due));
    });
    this.runs.add(run);
  }

  /** Runs one drill now and tells its result. Exposed for operators' tests of the wiring. */
  async runDrill(a: Armed | DrillConfig): Promise<void> {
    const drill = "drill" in a ? a.drill : a;
    const armed = "drill" in a ? a : null;
    const startedAt = this.clock.now();
    const by = `drill "${drill.schedule}"`;
    const tell = (r: Omit<DrillResult, "pair" | "schedule" | "action" | "startedAt" | "endedAt">) => {
      const result: DrillResult = { pair: drill.pair, schedule: drill.schedule, action: drill.action, startedAt, endedAt: this.clock.now(), ...r };
      const line = `drill of ${drill.pair.join("+")}: ${result.outcome}${result.reason ? ` (${result.reason})` : ""}`;
      if (result.outcome === "succeeded") this.log.info({ drill: result }, line);
      else this.log.warn({ drill: result }, line);
      this.daemon.events.emit("drill", result);
    };
    if (this.daemon.paused) {
      tell({ outcome: "skipped", reason: "failoverd is paused" });
      return;
    }
    if (armed) armed.running = true;
    const ends: DaemonEvents["recovery-end"][] = [];
    let wake: (() => void) | null = null;
    const off = this.daemon.events.on("recovery-end", (e) => {
      ends.push(e);
      wake?.();
    });
    try {
      const started = await this.daemon.requestSwitchover({ pair: drill.pair }, "drill", by);
      if ("refused" in started) {
        tell({ outcome: "skipped", reason: started.refused });
        return;
      }
      const end = await new Promise<DaemonEvents["recovery-end"]>((resolve) => {
        const check = () => {
          const e = ends.find((x) => x.recoveryId === started.recoveryId);
          if (e) resolve(e);
        };
        wake = check;
        check();
      });
      tell({ outcome: end.outcome, recoveryId: started.recoveryId, to: started.to, ...(end.error ? { reason: end.error } : {}) });
    } catch (e) {
      tell({ outcome: "failed", reason: `the drill could not run: ${errorMessage(e)}` });
    } finally {
      off();
      if (armed) armed.running = false;
    }
  }
}
