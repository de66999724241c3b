/**
 * sd_notify for `Type=notify` with a watchdog. Node has no unix datagram sockets, so the messages go through
 * `systemd-notify` (from the systemd package that runs the unit), which waits until the service manager has read
 * each one (its default since systemd 246; nothing is lost when it exits). It runs as a child of the daemon, so the
 * unit sets `NotifyAccess=all`.
 *
 * READY=1 once the daemon has discovered the roles and the HTTP API listens; WATCHDOG=1 at half the watchdog
 * interval, but only while the check loops turn (the last complete cycle is recent), so a daemon whose loops stall
 * is restarted by systemd; STOPPING=1 on shutdown. Without NOTIFY_SOCKET (not under systemd) nothing is sent.
 */
import { execFile } from "node:child_process";
import { errorMessage } from "../errors.ts";
import type { Logger } from "../log.ts";

export interface SystemdNotifierOptions {
  readonly log: Logger;
  readonly env?: NodeJS.ProcessEnv;
  /** The systemd-notify binary. */
  readonly command?: string;
  /** When every monitored target was last checked (null before the first round). */
  readonly lastCycleAt: () => number | null;
  /** How old the last complete cycle may be for the daemon to count as alive. */
  readonly staleAfterMs: number;
  readonly now?: () => number;
}

export class SystemdNotifier {
  private timer: NodeJS.Timeout | null = null;
  private readonly env: NodeJS.ProcessEnv;
  private readonly now: () => number;
  private inFlight: Promise<void> = Promise.resolve();
  private warnedStale = false;

  constructor(private readonly o: SystemdNotifierOptions) {
    this.env = o.env ?? process.env;
    this.now = o.now ?? Date.now;
  }

  /** True when a service manager listens (NOTIFY_SOCKET is set). */
  get enabled(): boolean {
    return (this.env["NOTIFY_SOCKET"] ?? "") !== "";
  }

  /** The watchdog interval systemd asks for (WatchdogSec), if it is meant for this process. */
  get watchdogMs(): number | null {
    const usec = Number(this.env["WATCHDOG_USEC"]);
    const pid = this.env["WATCHDOG_PID"];
    if (!Number.isFinite(usec) || usec <= 0) return null;
    if (pid !== undefined && pid !== "" && Number(pid) !== process.pid) return null;
    return Math.floor(usec / 1000);
  }

  /** READY=1 with a status line, then the watchdog pings. */
  async ready(status: string): Promise<void> {
    if (!this.enabled) return;
    await this.send(["--ready", `--status=${status}`]);
    const wd = this.watchdogMs;
    if (wd !== null) {
      this.timer = setInterval(() => this.ping(), Math.max(100, Math.floor(wd / 2)));
      this.timer.unref();
      this.o.log.info({ watchdogMs: wd }, `systemd watchdog: WATCHDOG=1 every ${Math.floor(wd / 2)} ms while the check loops turn`);
    }
  }

  async stopping(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.enabled) await this.send(["STOPPING=1"]);
  }

  private ping(): void {
    const at = this.o.lastCycleAt();
    const age = at === null ? null : this.now() - at;
    if (age === null || age > this.o.staleAfterMs) {
      // No WATCHDOG=1: systemd restarts the daemon when the watchdog interval passes without one.
      if (!this.warnedStale) this.o.log.error({ lastCycleAgeMs: age }, "the check loops have stalled: not petting the systemd watchdog");
      this.warnedStale = true;
      return;
    }
    this.warnedStale = false;
    void this.send(["WATCHDOG=1"]);
  }

  /** One message at a time, in order; a failure is logged, never thrown. */
  private send(args: readonly string[]): Promise<void> {
    const next = this.inFlight.then(
      () =>
        new Promise<void>((resolve) => {
          execFile(this.o.command ?? "systemd-notify", [...args], { env: this.env, timeout: 10_000 }, (err, _out, stderr) => {
            if (err) this.o.log.warn({ args, err: errorMessage(err), stderr: String(stderr).trim() }, "systemd-notify failed");
            resolve();
          });
        }),
    );
    this.inFlight = next;
    return next;
  }
}
