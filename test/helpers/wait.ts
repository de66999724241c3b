/** Waiting for a condition with a generous deadline (a loaded 2-core machine may take many seconds to start a daemon). */
import type { ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

export interface WaitOptions {
  /** How often `fn` is asked (100 ms by default). */
  readonly everyMs?: number;
  /** A throw from `fn` means "not yet" (the last one is named if the wait times out); by default it ends the wait. */
  readonly retryErrors?: boolean;
}

/** Until `fn` returns something truthy (returned), or throws naming `what` after `ms`. */
export async function waitUntil<T>(what: string, fn: () => T | undefined | null | false | Promise<T | undefined | null | false>, ms = 30_000, o: WaitOptions = {}): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      if (!o.retryErrors) throw e;
      last = e;
    }
    await sleep(o.everyMs ?? 100);
  }
  throw new Error(`timed out after ${ms} ms waiting until ${what}${last ? ` (last error: ${(last as Error).message})` : ""}`);
}

/** Until the daemon's log says `marker`, or the daemon exited. */
export async function waitForLog(log: string, child: ChildProcess, marker: string, ms = 120_000): Promise<void> {
  await waitUntil(
    `the daemon's log says '${marker}'`,
    () => {
      if (child.exitCode !== null) throw new Error(`the daemon exited (code ${child.exitCode}); see ${log}`);
      try {
        return readFileSync(log, "utf8").includes(marker);
      } catch {
        return false;
      }
    },
    ms,
  );
}
