/** Waiting for a condition with a generous deadline (a loaded 2-core machine may take many seconds to start a daemon). */
import type { ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

export async function waitUntil<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const v = await fn();
    if (v) return v;
    await sleep(100);
  }
  throw new Error(`timed out waiting until ${what}`);
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
