/**
 * The daemon's own durable state: which hosts are unmonitored (mid-recovery), whether it is paused, and when each
 * group last finished a recovery (for the cooldown). Written atomically on every change; never in dry-run.
 */
import { readFileSync } from "node:fs";
import { writeFileAtomic } from "../topology/inventory.ts";

interface Saved {
  unmonitored?: string[];
  paused?: boolean;
  lastEnded?: Record<string, number>;
}

export class DaemonState {
  readonly unmonitored = new Set<string>();
  readonly lastEnded = new Map<string, number>();
  paused = false;

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
    s.paused = saved.paused === true;
    return s;
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

  setPaused(paused: boolean): void {
    this.paused = paused;
    this.save();
  }

  private save(): void {
    if (this.ephemeral) return;
    const data: Saved = { unmonitored: [...this.unmonitored].sort(), paused: this.paused, lastEnded: Object.fromEntries(this.lastEnded) };
    writeFileAtomic(this.file, `${JSON.stringify(data, null, 2)}\n`);
  }
}
