/**
 * Fault injection inside the local provider's launch, for crash tests: FAILOVERD_CHAOS_LOCAL_PAUSE=<point>:<ms>[,...]
 * makes the process pause at that point (once per point), so a test can SIGKILL the daemon there. Points, in the
 * order a launch passes them: `allocated` (an address taken, no machine recorded), `recorded` (the machine recorded,
 * no process started), `spawned` (a server started, its PID not recorded yet), `started` (its PID recorded, the port
 * not yet answering). An environment variable for tests only, never a config key; absent in normal operation.
 */
import { setTimeout as sleep } from "node:timers/promises";

export const LOCAL_CHAOS_POINTS = ["allocated", "recorded", "spawned", "started"] as const;
export type LocalChaosPoint = (typeof LOCAL_CHAOS_POINTS)[number];

const fired = new Set<string>();

function pauses(v = process.env["FAILOVERD_CHAOS_LOCAL_PAUSE"]): Map<string, number> {
  const out = new Map<string, number>();
  for (const part of (v ?? "").split(",")) {
    const m = /^([a-z]+):(\d+)$/.exec(part.trim());
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

/** Pauses here when FAILOVERD_CHAOS_LOCAL_PAUSE names this point (the first time only), saying so on stderr. */
export async function chaosPoint(point: LocalChaosPoint, what: string): Promise<void> {
  const ms = pauses().get(point);
  if (ms === undefined || fired.has(point)) return;
  fired.add(point);
  process.stderr.write(`chaos: local provider pausing ${ms} ms at ${point} (${what})\n`);
  await sleep(ms);
}
