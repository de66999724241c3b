/**
 * Waits that end early when the daemon stops, for thousands of check loops at once.
 *
 * Wake-ups are grouped: a wait ends on the next multiple of `quantumMs` at or after its due time, and every wait due
 * in the same slot shares one timer. The loops of that slot then run their checks in one turn of the event loop, so
 * the process wakes a few hundred times a second instead of once per check: on a large topology most of the cost of
 * a check is waking up for it. A wait is never shorter than asked (unless woken by its key), and at most `quantumMs`
 * longer. One abort listener in all (a listener added and removed per wait would cost a scan of the signal's listener
 * list each time).
 */
export class Sleeper {
  private readonly slots = new Map<number, { readonly timer: NodeJS.Timeout; readonly wake: (() => void)[] }>();
  /** Waits that can be ended early, by key. A waiter resolved twice (early, then by its slot) is harmless. */
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
      let done = resolve;
      if (key !== undefined) {
        done = () => {
          if (this.keyed.get(key) === done) this.keyed.delete(key);
          resolve();
        };
        this.keyed.set(key, done);
      }
      const s = this.slots.get(slot);
      if (s) s.wake.push(done);
      else this.slots.set(slot, { timer: setTimeout(() => this.fire(slot), slot - now), wake: [done] });
    });
  }

  /** Ends the wait of `key` now, if it is waiting. */
  wake(key: string): void {
    this.keyed.get(key)?.();
  }

  private fire(slot: number): void {
    const s = this.slots.get(slot);
    if (!s) return;
    this.slots.delete(slot);
    clearTimeout(s.timer);
    for (const wake of s.wake) wake();
  }
}
