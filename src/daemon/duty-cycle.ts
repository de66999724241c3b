/**
 * Runs a costly function soon after it is asked for, within a budget of the process's time.
 *
 * Requests made before the run share it (one run per turn of the event loop at most), and after a run that took d ms
 * the next waits `waitFactor` x d ms: with a factor of 9, runs take at most a tenth of the time, however often they
 * are asked for. While runs are cheap the wait is nothing. The daemon's diagnosis uses it: it looks at the whole
 * topology, and every check of a down target asks for one.
 */
export interface DutyCycleOptions {
  readonly waitFactor: number;
  /** A clock for the run's cost, in ms (performance.now by default). */
  readonly now?: () => number;
  /** Runs `fn` after `ms` (0: after the current turn of the event loop). */
  readonly schedule?: (fn: () => void, ms: number) => void;
  /** No more runs once this says so. */
  readonly stopped?: () => boolean;
  /** A run that throws: reported here; later requests run again. */
  readonly onError: (e: unknown) => void;
}

export class DutyCycle {
  private queued = false;
  private nextAt = Number.NEGATIVE_INFINITY;
  private readonly now: () => number;
  private readonly schedule: (fn: () => void, ms: number) => void;

  constructor(
    private readonly fn: () => void,
    private readonly opts: DutyCycleOptions,
  ) {
    this.now = opts.now ?? (() => performance.now());
    this.schedule = opts.schedule ?? ((run, ms) => (ms >= 1 ? setTimeout(run, ms).unref() : setImmediate(run)));
  }

  request(): void {
    if (this.queued) return;
    this.queued = true;
    this.schedule(() => this.run(), Math.max(0, this.nextAt - this.now()));
  }

  private run(): void {
    this.queued = false;
    if (this.opts.stopped?.()) return;
    const t0 = this.now();
    try {
      this.fn();
    } catch (e) {
      this.opts.onError(e);
    }
    const t1 = this.now();
    this.nextAt = t1 + this.opts.waitFactor * (t1 - t0);
  }
}
