/**
 * "May this instance act now?" Only the holder of the lease runs recoveries. `LocalLease` is an exclusive flock(2)
 * on a lock file in the state directory: one daemon per state directory on one host. `src/coordination/` holds an
 * etcd lease instead, so that one of several failoverd instances acts (the leader), and only until its own deadline.
 *
 * Why flock: the kernel releases it when the holder's last descriptor closes, which happens when the process dies,
 * however it dies. A lock that only names a PID goes stale after an unclean stop, and once that PID belongs to an
 * unrelated live process it blocks every start. Node has no flock binding, so util-linux's `flock` (always present:
 * Debian marks util-linux essential) locks the descriptor the daemon passes it: the lock belongs to the open file
 * description both share, so it stays held by the daemon after `flock` exits, and only the daemon's death (or
 * `release`) frees it. libuv opens files close-on-exec, so no process the daemon starts later inherits it.
 */
import { spawn } from "node:child_process";
import { closeSync, constants, fstatSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { errorMessage, FailoverdError } from "../errors.ts";

export interface Lease {
  /** Takes the lease or throws (naming the holder). */
  acquire(): Promise<void>;
  /** True while this instance holds the lease and may act. */
  isHeld(): boolean;
  release(): Promise<void>;
  /**
   * Who acts now, for operators and for the reason a decision became an alert. Absent: this instance alone
   * (single-instance mode).
   */
  holder?(): LeaseHolder;
  /** Called whenever `isHeld()` may have changed (taken, lost); the daemon resumes the journal when it takes over. */
  onChange?(listener: (held: boolean) => void): void;
}

export interface LeaseHolder {
  /** The acting instance's name; null when nobody acts (no quorum, store unreachable, election under way). */
  readonly leader: string | null;
  /** Why this instance does not act now (null when it does). */
  readonly notActing: string | null;
}

/** A fenced write refused: this instance no longer holds the lease, so it must not record (or start) another step. */
export class LeaseLostError extends FailoverdError {
  override name = "LeaseLostError";
}

/** flock's exit code when the lock is held by someone else (`--conflict-exit-code`). */
const CONFLICT = 75;

export class LocalLease implements Lease {
  private fd: number | null = null;
  constructor(readonly path: string) {}

  async acquire(): Promise<void> {
    if (this.fd !== null) return;
    mkdirSync(dirname(this.path), { recursive: true });
    // The file can be removed between open and lock (by a daemon releasing it): then the lock is on a file the path
    // no longer names, and a new open finds the file it names now.
    for (let attempt = 0; attempt < 3; attempt++) {
      const fd = openLockFile(this.path);
      try {
        if (!(await flock(fd, this.path))) {
          throw new FailoverdError(
            `another failoverd${holderOf(this.path)} holds the lock ${this.path}: only one daemon may act on a state directory`,
          );
        }
        if (!sameFile(fd, this.path)) {
          closeSync(fd);
          continue;
        }
        // The PID is for people (`cat daemon.lock`); the lock itself is what counts.
        ftruncateSync(fd, 0);
        writeSync(fd, `${process.pid}\n`, 0);
        fsyncSync(fd);
        this.fd = fd;
        return;
      } catch (e) {
        closeSync(fd);
        throw e;
      }
    }
    throw new FailoverdError(`cannot take the lock ${this.path}: the file keeps being replaced`);
  }

  isHeld(): boolean {
    return this.fd !== null;
  }

  /**
   * Removes the file, then closes the descriptor, which releases the lock. A daemon that opened the file before the
   * removal and locks it after the close holds a lock on a file the path no longer names: `acquire` checks that and
   * opens again.
   */
  async release(): Promise<void> {
    const fd = this.fd;
    if (fd === null) return;
    this.fd = null;
    try {
      rmSync(this.path, { force: true });
    } finally {
      closeSync(fd);
    }
  }
}

function openLockFile(path: string): number {
  try {
    return openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new FailoverdError(`cannot open the lock file ${path}: ${code ?? errorMessage(e)} (stateDir must be a writable directory)`);
  }
}

/** Takes an exclusive, non-blocking flock on `fd` through util-linux's flock. False: someone else holds it. */
function flock(fd: number, path: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const child = spawn("flock", ["--exclusive", "--nonblock", "--conflict-exit-code", String(CONFLICT), "3"], {
      stdio: ["ignore", "ignore", "pipe", fd],
    });
    let stderr = "";
    child.stderr?.setEncoding("utf8").on("data", (s: string) => {
      stderr += s;
    });
    child.once("error", (e: NodeJS.ErrnoException) => {
      const why = e.code === "ENOENT" ? "the flock command (util-linux) is not installed" : errorMessage(e);
      reject(new FailoverdError(`cannot lock ${path}: ${why}`));
    });
    child.once("close", (code) => {
      if (code === 0) resolve(true);
      else if (code === CONFLICT) resolve(false);
      else reject(new FailoverdError(`cannot lock ${path}: flock exited with ${code}: ${stderr.trim().split("\n")[0] ?? ""}`));
    });
  });
}

function sameFile(fd: number, path: string): boolean {
  try {
    const a = fstatSync(fd);
    const b = statSync(path);
    return a.ino === b.ino && a.dev === b.dev;
  } catch {
    return false;
  }
}

/** " (pid N)" from the lock file, for the refusal; empty when it says nothing usable. */
function holderOf(path: string): string {
  try {
    const pid = Number(readFileSync(path, "utf8").trim());
    return Number.isInteger(pid) && pid > 0 ? ` (pid ${pid})` : "";
  } catch {
    return "";
  }
}
