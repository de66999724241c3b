/**
 * Restored redundancy: with 100,000 keys in each primary server, the primary host crashes; how long until the
 * replacement replica is in sync and registered with every HAProxy?
 *
 * Each trial is `simulate()` on the sandbox topology (127.65.x.y), the keys loaded (and replicated) before the fault.
 * Figures from the recovery journal, in ms after the fault: `registeredMs` (the `register` step ended: the new
 * servers are in sync, per the `replicate` step, and registered on every HAProxy), the same after the failure was
 * confirmed (`afterConfirmedMs`, target under 3 s), and the `replicate` step alone.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { RedisAdminClient } from "../src/admin/redis.ts";
import { declaredListeners } from "../src/providers/local/up.ts";
import { simulate } from "../src/simulate/scenario.ts";
import { loopbackTopology } from "../src/simulate/topologies.ts";
import type { Topology } from "../src/topology/topology.ts";
import { assertFree, say, stopRequested } from "./common.ts";
import { type Summary, summarize } from "./stats.ts";

export interface RedundancyTrial {
  readonly ok: boolean;
  readonly why?: string;
  readonly keys: number;
  readonly detectMs: number | null;
  readonly registeredMs: number | null;
  readonly afterConfirmedMs: number | null;
  readonly replicateMs: number | null;
  readonly recoveryEndMs: number | null;
  readonly lostAckedWrites: number | null;
}

export interface RedundancyResults {
  readonly keysPerServer: number;
  readonly registeredMs: Summary;
  readonly afterConfirmedMs: Summary;
  readonly replicateMs: Summary;
  readonly detectMs: Summary;
  readonly failedTrials: number;
  readonly trials: RedundancyTrial[];
}

export async function runRedundancy(o: { trials: number; keys: number }): Promise<RedundancyResults> {
  const trials: RedundancyTrial[] = [];
  for (let i = 1; i <= o.trials; i++) {
    if (stopRequested()) break;
    say(`redundancy: ${o.keys} keys per server, trial ${i}/${o.trials}`);
    const t = await trial(o.keys).catch((e: unknown): RedundancyTrial => ({
      ok: false,
      why: (e as Error).message,
      keys: o.keys,
      detectMs: null,
      registeredMs: null,
      afterConfirmedMs: null,
      replicateMs: null,
      recoveryEndMs: null,
      lostAckedWrites: null,
    }));
    say(`  detect ${t.detectMs} ms, in sync and registered ${t.registeredMs} ms (${t.afterConfirmedMs} ms after confirmation)${t.ok ? "" : `; FAILED: ${t.why}`}`);
    trials.push(t);
  }
  const ok = trials.filter((t) => t.ok);
  return {
    keysPerServer: o.keys,
    registeredMs: summarize(ok.map((t) => t.registeredMs)),
    afterConfirmedMs: summarize(ok.map((t) => t.afterConfirmedMs)),
    replicateMs: summarize(ok.map((t) => t.replicateMs)),
    detectMs: summarize(ok.map((t) => t.detectMs)),
    failedTrials: trials.length - ok.length,
    trials,
  };
}

async function trial(keys: number): Promise<RedundancyTrial> {
  const lt = loopbackTopology({ net: 65, name: "bench-redundancy" });
  try {
    const t = lt.topology;
    await assertFree(declaredListeners(t));
    const report = await simulate(t, {
      target: "redis1",
      fault: "crash",
      warmupMs: 1000 + Math.floor(Math.random() * 200),
      timeoutMs: 60_000,
      hooks: { beforeFault: () => load(t, keys) },
    });
    const step = (name: string) => report.steps.find((s) => s.name === name);
    const register = step("register")?.endMs ?? null;
    const replicate = step("replicate");
    const why = report.recovered ? (report.lostAckedWrites > 0 ? `${report.lostAckedWrites} acknowledged writes lost` : null) : (report.why ?? "not recovered");
    const recoveryEnd = report.redundancyRestoredMs;
    return {
      ok: why === null && register !== null,
      ...(why ? { why } : {}),
      keys,
      detectMs: report.detectMs,
      registeredMs: register,
      afterConfirmedMs: register !== null && report.detectMs !== null ? register - report.detectMs : null,
      replicateMs: replicate?.endMs != null ? replicate.endMs - replicate.startMs : null,
      recoveryEndMs: recoveryEnd,
      lostAckedWrites: report.lostAckedWrites,
    };
  } finally {
    lt.cleanup();
  }
}

/** `keys` keys of ~100 bytes into every primary server of the first pair, then waits until its replica caught up. */
async function load(t: Topology, keys: number): Promise<void> {
  const pair = t.pairs[0]!;
  const [primaryHost, replicaHost] = pair.hosts.map((h) => t.hosts.get(h)!.address);
  const value = "v".repeat(100);
  await Promise.all(
    pair.ports.map(async (port) => {
      const c = new RedisAdminClient({ address: primaryHost!, port }, 10_000);
      const r = new RedisAdminClient({ address: replicaHost!, port }, 10_000);
      try {
        for (let i = 0; i < keys; i += 1000) {
          const args: string[] = [];
          for (let k = i; k < Math.min(keys, i + 1000); k++) args.push(`bench:data:${k}`, value);
          await c.call("MSET", ...args);
        }
        for (let i = 0; i < 200; i++) {
          const p = await c.info("replication");
          const q = await r.info("replication");
          if (Number(q["slave_repl_offset"]) >= Number(p["master_repl_offset"])) return;
          await sleep(50);
        }
        throw new Error(`the replica of port ${port} did not catch up with ${keys} keys`);
      } finally {
        c.close();
        r.close();
      }
    }),
  );
}
