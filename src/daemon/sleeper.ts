/**
 * Waits that end early when the daemon stops, for thousands of check loops at once.
 *
 * Wake-ups are grouped: a wait ends on the next multiple of `quantumMs` at or after its due time, and every wait due
 * in the same slot shares one timer. A wait is never shorter than asked (unless woken by its key), and at most
 * `quantumMs` longer. One abort listener in all (a listener added and removed per wait would cost a scan of the
 * signal's listener list each time), and no closure per wait: this runs once per check.
 */
interface Slot {
  readonly timer: NodeJS.Timeout;
  readonly waiting: (() => void)[];
}

export class Sleeper {
  private readonly slots = new Map<number, Slot>();
  /**
   * The last wait of each key. It may have ended already (by its slot): resolving it again does nothing, so there is
   * nothing to clean up when a slot fires, and a key's next wait replaces it.
   */
  private readonly keyed = new Map<string, () => void>();

  constructor(
    private readonly signal: AbortSignal,
    private readonly quantumMs = 1,
    private readonly now: () => number = Date.now,
  ) {
    signal.addEventListener("abort", () => {
      for (const slot of [...this.slots.keys()]) this.fire(slot);
    }, { once: true });
  }

  /**
   * Resolves after `ms` (up to one quantum later), at once when (or if) the signal is aborted, or when `wake(key)` is
   * called for the key given. Never rejects.
   */
  sleep(ms: number, key?: string): Promise<void> {
    if (this.signal.aborted) return Promise.resolve();
    const now = this.now();
    const q = this.quantumMs;
    const slot = Math.ceil((now + Math.max(0, ms)) / q) * q;
    return new Promise((resolve) => {
      if (key !== undefined) this.keyed.set(key, resolve);
      const s = this.slots.get(slot);
      if (s) s.waiting.push(resolve);
      else this.slots.set(slot, { timer: setTimeout(() => this.fire(slot), slot - now), waiting: [resolve] });
    });
  }

  /** Ends the wait of `key` now, if it is waiting. */
  wake(key: string): void {
    const resolve = this.keyed.get(key);
    if (!resolve) return;
    this.keyed.delete(key);
    resolve();
  }

  private fire(slot: number): void {
    const s = this.slots.get(slot);
    if (!s) return;
    this.slots.delete(slot);
    clearTimeout(s.timer);
    for (const resolve of s.waiting) resolve();
  }
}
