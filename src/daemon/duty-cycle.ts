/**
 * Runs a costly function soon after it is asked for, within a budget of the main thread's time.
 *
 * Requests made before the run share it (one run per turn of the event loop at most), and after runs that took d ms
 * of CPU time (smoothed over the recent runs) the next waits `waitFactor` x d ms: with a factor of 9, runs take at
 * most about a tenth of the time, however often they are asked for. While runs are cheap the wait is nothing. The
 * daemon's diagnosis uses it: it looks at the whole topology, and every check of a down target asks for one.
 */
export interface DutyCycleOptions {
  readonly waitFactor: number;
  /** A clock for when the next run may start, in ms (performance.now by default). */
  readonly now?: () => number;
  /**
   * What a run costs, in ms: a reading before and after it. By default the main thread's CPU time
   * (`process.threadCpuUsage`), not the wall clock: on a busy machine a run preempted halfway would otherwise count the
   * time other processes ran, and put off the next evaluation (a decision waiting on fresh evidence) by nine times
   * that. With `now` given (tests), that clock.
   */
  readonly cost?: () => number;
  /** Runs `fn` after `ms` (0: after the current turn of the event loop). */
  readonly schedule?: (fn: () => void, ms: number) => void;
  /**
   * The least wait between two runs, asked after each run (0 when absent). An instance that only observes (another
   * leads) weighs the evidence at most once per fast interval: its evaluations decide nothing, and on a crash they
   * competed for the CPU with the checks and the etcd writes the acting instance waits for.
   */
  readonly minWaitMs?: () => number;
  /** No more runs once this says so. */
  readonly stopped?: () => boolean;
  /** A run that throws: reported here; later requests run again. */
  readonly onError: (e: unknown) => void;
}

export class DutyCycle {
  private queued = false;
  private nextAt = Number.NEGATIVE_INFINITY;
  /** The runs' cost, smoothed (an exponential moving average); null before the first run. */
  private avgCost: number | null = null;
  private readonly now: () => number;
  private readonly cost: () => number;
  private readonly schedule: (fn: () => void, ms: number) => void;

  constructor(
    private readonly fn: () => void,
    private readonly opts: DutyCycleOptions,
  ) {
    this.now = opts.now ?? (() => performance.now());
    this.cost = opts.cost ?? opts.now ?? cpuMs;
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
    const c0 = this.cost();
    try {
      this.fn();
    } catch (e) {
      this.opts.onError(e);
    }
    const spent = this.cost() - c0;
    // The wait follows the runs' usual cost, not one run's: the first run on a path the process never took (the first
    // failure since the start: code compiled on first use) costs ten to a hundred times the usual, and nine times that
    // would put off the very decision the next piece of evidence asks for. Costs that last raise it within runs.
    this.avgCost = this.avgCost === null ? spent : this.avgCost + SMOOTHING * (spent - this.avgCost);
    this.nextAt = this.now() + Math.max(this.opts.waitFactor * this.avgCost, this.opts.minWaitMs?.() ?? 0);
  }
}

/** The weight of the latest run in the smoothed cost. */
const SMOOTHING = 0.1;

/**
 * The main thread's CPU time so far (user and system), in ms: where the runs execute. Not the process's: its other
 * threads (V8's concurrent garbage collection and compilation) charged a run that blocked 50 ms with 10-20 ms of
 * their work now and then.
 */
function cpuMs(): number {
  const u = process.threadCpuUsage();
  return (u.user + u.system) / 1000;
}
