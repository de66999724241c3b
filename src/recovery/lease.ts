/**
 * "May this instance act now?" Only the holder of the lease runs recoveries. `LocalLease` is a lock file in the
 * state directory holding the owner's PID: one daemon per state directory on one host. A later implementation
 * holds an etcd lease so that one of several failoverd instances acts.
 */
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { FailoverdError } from "../errors.ts";

export interface Lease {
  /** Takes the lease or throws (naming the holder). */
  acquire(): Promise<void>;
  /** True while this instance holds the lease and may act. */
  isHeld(): boolean;
  release(): Promise<void>;
}

export class LocalLease implements Lease {
  private held = false;
  constructor(readonly path: string) {}

  async acquire(): Promise<void> {
    mkdirSync(dirname(this.path), { recursive: true });
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(this.path, "wx", 0o600);
        writeSync(fd, String(process.pid));
        closeSync(fd);
        this.held = true;
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
        const holder = Number(readFileSync(this.path, "utf8").trim());
        if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && isAlive(holder)) {
          throw new FailoverdError(`another failoverd (pid ${holder}) holds ${this.path}: only one daemon may act on a topology`);
        }
        rmSync(this.path, { force: true }); // left by a daemon that died
      }
    }
    throw new FailoverdError(`cannot take the lease ${this.path}`);
  }

  isHeld(): boolean {
    return this.held;
  }

  async release(): Promise<void> {
    if (this.held) rmSync(this.path, { force: true });
    this.held = false;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}
