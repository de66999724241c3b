/**
 * The operator's holds on the daemon: a pause (automatic recovery off) and per-host maintenance (no recovery of that
 * host's group), each with who, why and an expiry. Every change is persisted (DaemonState), journaled (a `control`
 * record, so the history says who paused and why) and told on the bus. A hold whose time has come ends by itself:
 * one timer, armed for the next expiry, ends it even when nobody remembers it.
 *
 * With several instances (`shared`) the pause and the maintenance windows live in the store every instance reads: the
 * instance an operator asked writes them there first (nothing changes when the store does not take it), then holds
 * them like the others, which apply what they read (`apply`). A new leader therefore honours a pause set through
 * any instance. An expiry is ended by every instance for itself, and journaled by the one whose delete took.
 */
import { randomBytes } from "node:crypto";
import { errorMessage } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { ControlAction, Journal } from "../recovery/journal.ts";
import type { EventBus } from "./events.ts";
import type { Findings } from "./findings.ts";
import type { SharedChange, SharedControls, SharedHolds } from "./peers.ts";
import type { DaemonState, Hold, Maintenance } from "./state.ts";

/** setTimeout's longest delay; a later expiry is reached in hops. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface ControlsDeps {
  readonly state: DaemonState;
  readonly journal: Journal;
  readonly events: EventBus;
  readonly log: Logger;
  readonly now: () => number;
  /** Called after anything ended or changed: the daemon evaluates again (a pending failure may be acted on now). */
  readonly changed: () => void;
  /** Several instances: the holds every instance shares (absent: this instance's own, in its state file). */
  readonly shared?: SharedControls | undefined;
}

export interface HoldRequest {
  readonly reason?: string | undefined;
  /** How long it holds; null: until ended. */
  readonly forMs: number | null;
}

export class Controls {
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(private readonly d: ControlsDeps) {}

  async pause(by: string, r: HoldRequest): Promise<Hold> {
    const at = this.d.now();
    const hold: Hold = { since: at, by, ...(r.reason ? { reason: r.reason } : {}), ...(r.forMs !== null ? { until: at + r.forMs } : {}) };
    const prevPause = this.d.state.pause;
    await this.shared(() => this.d.state.setPause(hold), () => this.d.state.setPause(prevPause), (sh) => sh.setPause(hold, by));
    await this.record("pause", by, hold);
    this.d.log.warn({ by, reason: r.reason, until: iso(hold.until) }, `paused by ${by}${until(hold.until)}${because(r.reason)}: failoverd diagnoses and alerts but does not recover`);
    this.d.events.emit("paused", { paused: true, at, by, ...(hold.reason ? { reason: hold.reason } : {}), ...(hold.until !== undefined ? { until: hold.until } : {}) });
    this.arm();
    return hold;
  }

  async resume(by: string): Promise<void> {
    const at = this.d.now();
    const prevPause = this.d.state.pause;
    await this.shared(() => this.d.state.setPause(null), () => this.d.state.setPause(prevPause), (sh) => sh.setPause(null, by));
    await this.record("resume", by, {});
    this.d.log.warn({ by }, `resumed by ${by}: failoverd recovers again`);
    this.d.events.emit("paused", { paused: false, at, by });
    this.arm();
    this.d.changed();
  }

  async startMaintenance(host: string, by: string, r: HoldRequest & { readonly forMs: number }): Promise<Maintenance> {
    const at = this.d.now();
    const m: Maintenance = { since: at, by, until: at + r.forMs, ...(r.reason ? { reason: r.reason } : {}) };
    const prev = this.d.state.maintenance.get(host) ?? null;
    await this.shared(() => this.d.state.setMaintenance(host, m), () => this.d.state.setMaintenance(host, prev), (sh) => sh.setMaintenance(host, m, by));
    await this.record("maintenance", by, m, host);
    this.d.log.warn({ by, host, reason: r.reason, until: iso(m.until) }, `${host} in maintenance by ${by}${until(m.until)}${because(r.reason)}: no recovery of it`);
    this.d.events.emit("maintenance", { host, active: true, at, by, until: m.until, ...(m.reason ? { reason: m.reason } : {}) });
    this.arm();
    return m;
  }

  /** Ends a host's maintenance; returns the one that ended, or null when there was none. */
  async endMaintenance(host: string, by: string): Promise<Maintenance | null> {
    const m = this.d.state.maintenance.get(host) ?? null;
    if (!m) return null;
    await this.shared(() => this.d.state.setMaintenance(host, null), () => this.d.state.setMaintenance(host, m), (sh) => sh.setMaintenance(host, null, by));
    await this.record("maintenance-end", by, {}, host);
    this.d.log.warn({ by, host }, `${host}'s maintenance ended by ${by}`);
    this.d.events.emit("maintenance", { host, active: false, at: this.d.now(), by });
    this.arm();
    this.d.changed();
    return m;
  }

  /** Ends what has expired (also what expired while the daemon was down), then arms the timer for the next. */
  async expire(): Promise<void> {
    const at = this.d.now();
    const ended = this.d.state.expire(at);
    if (ended.pause) {
      if (await this.endShared({}, ended.pause)) await this.record("pause-expired", "failoverd", { ...(ended.pause.reason ? { reason: ended.pause.reason } : {}) });
      this.d.log.warn({ pausedBy: ended.pause.by }, `the pause set by ${ended.pause.by}${because(ended.pause.reason)} has expired: failoverd recovers again`);
      this.d.events.emit("paused", { paused: false, at, by: "failoverd" });
    }
    for (const [host, m] of ended.maintenance) {
      if (await this.endShared({ host }, m)) await this.record("maintenance-expired", "failoverd", {}, host);
      this.d.log.warn({ host, by: m.by }, `${host}'s maintenance (set by ${m.by}${because(m.reason)}) has expired`);
      this.d.events.emit("maintenance", { host, active: false, at, by: "failoverd" });
    }
    this.arm();
    if (ended.pause || ended.maintenance.length > 0) this.d.changed();
  }

  /**
   * Changes the hold here, then (several instances) in the store; when the store does not take it, the change here is
   * undone and the error thrown. Here first: this instance's own write, read back, then changes nothing.
   */
  private async shared(here: () => void, undo: () => void, store: (s: SharedControls) => Promise<void>): Promise<void> {
    here();
    if (!this.d.shared) return;
    try {
      await store(this.d.shared);
    } catch (e) {
      undo();
      throw e;
    }
  }

  /** Several instances: ends the expired hold in the store too; true when this instance is the one that ended it. */
  private async endShared(what: { host?: string }, hold: Hold): Promise<boolean> {
    if (!this.d.shared) return true;
    try {
      return await this.d.shared.endExpired(what, hold);
    } catch (e) {
      // Every instance ends it for itself anyway; another one (or this one, at its next start) clears the store.
      this.d.log.warn({ err: errorMessage(e) }, "could not end the expired hold in etcd; it has ended here all the same");
      return false;
    }
  }

  /** Several instances: adopts the holds read from the store at start (they replace the state file's). */
  adopt(h: SharedHolds): void {
    const now = this.d.now();
    if (!sameHold(this.d.state.pause, h.pause)) {
      this.d.state.setPause(h.pause);
      if (h.pause && this.d.state.isPaused(now)) this.d.log.warn({ by: h.pause.by, reason: h.pause.reason }, `paused by ${h.pause.by}${until(h.pause.until)}${because(h.pause.reason)} (shared by the instances): failoverd diagnoses and alerts but does not recover`);
    }
    for (const host of [...this.d.state.maintenance.keys()]) if (!h.maintenance.has(host)) this.d.state.setMaintenance(host, null);
    for (const [host, m] of h.maintenance) if (!sameHold(this.d.state.maintenance.get(host) ?? null, m)) this.d.state.setMaintenance(host, m);
    this.arm();
  }

  /**
   * Several instances: the store as a whole read found it (after it did not answer, or its watch broke or was
   * cancelled). Each hold that differs from this instance's is applied as the change it missed. A hold whose time has
   * passed counts as none: its expiry is every instance's own, and one that could not delete it there left it.
   */
  reconcile(h: SharedHolds): void {
    const at = this.d.now();
    const live = <T extends Hold>(x: T | null): T | null => (x?.until !== undefined && x.until <= at ? null : x);
    this.apply({ kind: "pause", hold: live(h.pause), by: h.endedBy.pause ?? undefined });
    for (const host of [...this.d.state.maintenance.keys()]) {
      if (!h.maintenance.has(host)) this.apply({ kind: "maintenance", host, hold: null, by: h.endedBy.maintenance.get(host) });
    }
    for (const [host, m] of h.maintenance) this.apply({ kind: "maintenance", host, hold: live(m) });
  }

  /** Several instances: a change another instance (or this one) wrote to the store. */
  apply(c: SharedChange): void {
    if (this.closed || c.kind === "ack") return;
    const at = this.d.now();
    if (c.kind === "pause") {
      const prev = this.d.state.pause;
      if (sameHold(prev, c.hold)) return;
      if (c.hold === null && prev?.until !== undefined && prev.until <= at) {
        // An expiry another instance ended first: ended here as an expiry too.
        void this.expire().catch(() => {});
        return;
      }
      this.d.state.setPause(c.hold);
      if (c.hold) {
        this.d.log.warn({ by: c.hold.by, reason: c.hold.reason, until: iso(c.hold.until) }, `paused by ${c.hold.by}${until(c.hold.until)}${because(c.hold.reason)} (through another instance): failoverd diagnoses and alerts but does not recover`);
        this.d.events.emit("paused", { paused: true, at, by: c.hold.by, ...(c.hold.reason ? { reason: c.hold.reason } : {}), ...(c.hold.until !== undefined ? { until: c.hold.until } : {}) });
      } else {
        const by = c.by ?? "another instance";
        this.d.log.warn({ by }, `resumed by ${by} (through another instance): failoverd recovers again`);
        this.d.events.emit("paused", { paused: false, at, by });
      }
    } else {
      const prev = this.d.state.maintenance.get(c.host) ?? null;
      if (sameHold(prev, c.hold)) return;
      if (c.hold === null && prev !== null && prev.until <= at) {
        void this.expire().catch(() => {});
        return;
      }
      this.d.state.setMaintenance(c.host, c.hold);
      if (c.hold) {
        this.d.log.warn({ by: c.hold.by, host: c.host, until: iso(c.hold.until) }, `${c.host} in maintenance by ${c.hold.by}${until(c.hold.until)}${because(c.hold.reason)} (through another instance): no recovery of it`);
        this.d.events.emit("maintenance", { host: c.host, active: true, at, by: c.hold.by, until: c.hold.until, ...(c.hold.reason ? { reason: c.hold.reason } : {}) });
      } else {
        const by = c.by ?? "another instance";
        this.d.log.warn({ by, host: c.host }, `${c.host}'s maintenance ended by ${by} (through another instance)`);
        this.d.events.emit("maintenance", { host: c.host, active: false, at, by });
      }
    }
    this.arm();
    this.d.changed();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** One timer, for the next expiry. */
  arm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const next = this.d.state.nextExpiry();
    if (next === null || this.closed) return;
    const wait = Math.min(MAX_TIMER_MS, Math.max(0, next - this.d.now()));
    this.timer = setTimeout(() => {
      this.expire().catch((e: unknown) => {
        this.d.log.error({ err: errorMessage(e) }, "ending an expired pause or maintenance failed; retried in a second");
        if (this.closed) return;
        this.timer = setTimeout(() => this.arm(), 1000);
        this.timer.unref();
      });
    }, wait);
    this.timer.unref();
  }

  private async record(action: ControlAction, by: string, hold: { reason?: string; until?: number }, host?: string): Promise<void> {
    const at = this.d.now();
    await this.d.journal.append({
      type: "control",
      id: `control-${at}-${randomBytes(3).toString("hex")}`,
      at,
      action,
      by,
      ...(host !== undefined ? { host } : {}),
      ...(hold.reason ? { reason: hold.reason } : {}),
      ...(hold.until !== undefined ? { until: hold.until } : {}),
    });
  }
}

/**
 * Several instances: this instance's holds and acknowledgements follow the store's, each change its watch reads, and
 * after every whole read of it what differs (a change the watch missed: etcd compacted the history it would have
 * resumed from). `ready` is false until start has adopted the store's holds: the first whole read is start's own.
 */
export function followShared(
  shared: SharedControls,
  o: { readonly controls: Controls; readonly findings: Findings; readonly now: () => number; readonly ready: () => boolean },
): void {
  shared.onChange((c) => {
    if (c.kind === "ack") o.findings.acknowledgeShared(c.key, c.ack, o.now());
    else o.controls.apply(c);
  });
  shared.onResync((h) => {
    if (!o.ready()) return;
    o.controls.reconcile(h);
    o.findings.reconcileShared(h.acks, o.now());
  });
}

function iso(t: number | undefined): string | undefined {
  return t === undefined ? undefined : new Date(t).toISOString();
}

function until(t: number | undefined): string {
  return t === undefined ? " until resumed" : ` until ${iso(t)}`;
}

function because(reason: string | undefined): string {
  return reason ? ` (${reason})` : "";
}

/** The same hold (as written to the store and read back). */
function sameHold(a: Hold | null, b: Hold | null): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
