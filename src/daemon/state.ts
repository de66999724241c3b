/**
 * The daemon's own durable state: which hosts are unmonitored (mid-recovery), whether it is paused (by whom, why, and
 * until when), which hosts are in maintenance, and when each group last finished a recovery (for the cooldown).
 * Written atomically on every change; never in dry-run. A pause or maintenance with an expiry ends by itself
 * (`expire`), also across a restart.
 */
import { readFileSync } from "node:fs";
import { writeFileAtomic } from "../topology/inventory.ts";

/** An operator's pause or maintenance window: who set it, why, since and until when (no `until`: until ended). */
export interface Hold {
  readonly since: number;
  readonly by: string;
  readonly reason?: string;
  readonly until?: number;
}

export interface Maintenance extends Hold {
  readonly until: number;
}

interface Saved {
  unmonitored?: string[];
  paused?: boolean;
  pause?: Hold;
  maintenance?: Record<string, Maintenance>;
  lastEnded?: Record<string, number>;
}

export class DaemonState {
  readonly unmonitored = new Set<string>();
  readonly lastEnded = new Map<string, number>();
  readonly maintenance = new Map<string, Maintenance>();
  /** The pause in force (its expiry may have passed: see isPaused and expire). */
  pause: Hold | null = null;

  private constructor(
    private readonly file: string,
    private readonly ephemeral: boolean,
  ) {}

  static load(file: string, ephemeral: boolean): DaemonState {
    const s = new DaemonState(file, ephemeral);
    let saved: Saved = {};
    try {
      saved = JSON.parse(readFileSync(file, "utf8")) as Saved;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw new Error(`cannot read ${file}: ${(e as Error).message}`);
    }
    for (const h of saved.unmonitored ?? []) s.unmonitored.add(h);
    for (const [g, t] of Object.entries(saved.lastEnded ?? {})) s.lastEnded.set(g, t);
    for (const [h, m] of Object.entries(saved.maintenance ?? {})) if (typeof m?.until === "number") s.maintenance.set(h, m);
    // A state file from before pauses had a reason and an expiry says only `paused: true`.
    if (saved.paused === true) s.pause = saved.pause ?? { since: 0, by: "unknown (an older failoverd)" };
    return s;
  }

  /** Paused now: a pause whose expiry has passed no longer holds, whether or not `expire` has run yet. */
  isPaused(now: number): boolean {
    return this.pause !== null && (this.pause.until === undefined || this.pause.until > now);
  }

  /** The maintenance windows in force at `now`. */
  maintenanceAt(now: number): ReadonlyMap<string, Maintenance> {
    return new Map([...this.maintenance].filter(([, m]) => m.until > now));
  }

  setMonitored(host: string, monitored: boolean): void {
    if (monitored) this.unmonitored.delete(host);
    else this.unmonitored.add(host);
    this.save();
  }

  recoveryEnded(group: string, at: number): void {
    this.lastEnded.set(group, at);
    this.save();
  }

  setPause(pause: Hold | null): void {
    this.pause = pause;
    this.save();
  }

  setMaintenance(host: string, m: Maintenance | null): void {
    if (m) this.maintenance.set(host, m);
    else this.maintenance.delete(host);
    this.save();
  }

  /** Ends the pause and the maintenance windows whose time has come; returns what ended. */
  expire(now: number): { pause: Hold | null; maintenance: [string, Maintenance][] } {
    const pause = this.pause?.until !== undefined && this.pause.until <= now ? this.pause : null;
    const maintenance = [...this.maintenance].filter(([, m]) => m.until <= now);
    if (pause) this.pause = null;
    for (const [h] of maintenance) this.maintenance.delete(h);
    if (pause || maintenance.length > 0) this.save();
    return { pause, maintenance };
  }

  /** The next time something ends by itself, or null. */
  nextExpiry(): number | null {
    const times = [...this.maintenance.values()].map((m) => m.until);
    if (this.pause?.until !== undefined) times.push(this.pause.until);
    return times.length > 0 ? Math.min(...times) : null;
  }

  private save(): void {
    if (this.ephemeral) return;
    const data: Saved = {
      unmonitored: [...this.unmonitored].sort(),
      paused: this.pause !== null,
      ...(this.pause ? { pause: this.pause } : {}),
      ...(this.maintenance.size > 0 ? { maintenance: Object.fromEntries(this.maintenance) } : {}),
      lastEnded: Object.fromEntries(this.lastEnded),
    };
    writeFileAtomic(this.file, `${JSON.stringify(data, null, 2)}\n`);
  }
}
