/**
 * Three failoverd instances coordinated through a real 3-member etcd, on one real sandbox (Redis, HAProxy), on
 * 127.181.x.y: the leader killed before each step of failed_redis in turn (each next leader resumes; one recovery,
 * one replacement, no acknowledged write lost).
 */
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, test } from "node:test";
import { signal } from "../../src/providers/local/processes.ts";
import { failedRedis } from "../../src/recovery/playbooks/failed-redis.ts";
import { readBackLost } from "../../src/simulate/scenario.ts";
import { Traffic } from "../../src/simulate/traffic.ts";
import { type Monitors, monitorsTopology, startMonitors, until } from "../helpers/monitors.ts";
import type { TestTopology } from "../helpers/sandbox.ts";

const STEPS = failedRedis("redis1").steps.map((s) => s.name);
// Every instance pauses before every step, except the step a resumed run starts at (where the last leader died).
const CHAOS = { FAILOVERD_CHAOS_PAUSE: STEPS.map((s) => `${s}:60000`).join(",") };

/** How far each log file has been read: markers are looked for after it only. */
const seen = new Map<string, number>();

/** The live instance whose log shows `marker` first (after what earlier waits read). */
async function waitAny(m: Monitors, marker: string | RegExp, ms = 180_000): Promise<string> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    for (const [name, d] of m.daemons) {
      if (d.child.exitCode !== null || d.child.signalCode !== null) continue;
      const text = m.logOf(name);
      const from = seen.get(d.log) ?? 0;
      const rest = text.slice(from);
      const at = typeof marker === "string" ? rest.indexOf(marker) : rest.search(marker);
      if (at >= 0) {
        seen.set(d.log, from + at + 1);
        return name;
      }
    }
    await sleep(50);
  }
  throw new Error(`no instance logged ${String(marker)} within ${ms} ms`);
}


function traffic(tt: TestTopology): Traffic {
  const app = tt.topology.appHosts[0]!;
  return new Traffic({ address: app.address, port: Number(Object.keys(app.frontends)[0]), prefix: `m:${Date.now()}`, probeEveryMs: 0 });
}

const machinesOf = (m: Monitors, host: string) => m.sandbox.read().machines.filter((x) => x.host === host);
const kill = (m: Monitors, host: string) => {
  for (const p of m.sandbox.machineOf(host)?.processes ?? []) signal(p, "SIGKILL");
};

describe("three instances on etcd", { timeout: 1_500_000 }, () => {
  let tt: TestTopology;
  let m: Monitors;
  before(async () => {
    tt = monitorsTopology(181);
    m = await startMonitors(tt);
    // One after the other (m1 leads): three Node processes starting at once on a loaded machine take minutes.
    for (const name of ["m1", "m2", "m3"]) {
      m.start(name, CHAOS);
      await m.waitLog(name, "roles discovered");
    }
    await until(async () => (await m.leader()) !== null, 60_000, "a leader");
  });
  after(async () => {
    await m?.stop();
    if (!process.env["KEEP"]) tt?.cleanup();
  });

  test("the leader killed before each step of failed_redis in turn: each next leader resumes at that step; one recovery, one replacement, no acknowledged write lost", async () => {
    const writes = traffic(tt);
    try {
      writes.start();
      await sleep(300);
      kill(m, "redis1");
      const takeovers: number[] = [];
      const killedBefore: string[] = [];
      for (const step of STEPS) {
        // On a loaded machine a leader may also lose its lease on its own, and its successor resume past this step
        // without pausing: then this step is not killed at (the count is reported).
        let started = false;
        const paused = await Promise.race([
          waitAny(m, `chaos: pausing 60000 ms before ${step}`).catch(() => null),
          until(async () => (await m.recoveries())[0]?.steps.some((s) => s.step === step) === true, 180_000, `${step}`).then(
            () => {
              started = true;
              return null;
            },
            () => null,
          ),
        ]);
        if (paused === null || started) continue;
        const killedAt = Date.now();
        const child = m.daemons.get(paused)!.child;
        child.kill("SIGKILL");
        await new Promise((r) => child.once("exit", r));
        killedBefore.push(step);
        // The next leader resumes: the step is journaled as started.
        await until(async () => (await m.recoveries())[0]?.steps.some((s) => s.step === step) === true, 120_000, `a next leader to start ${step}`);
        takeovers.push(Date.now() - killedAt);
        m.start(paused, CHAOS);
      }
      const [r] = await m.waitEnded(1, 120_000);
      assert.equal(r?.outcome, "succeeded", r?.error);
      const recoveries = await m.recoveries();
      assert.equal(recoveries.length, 1, "one recovery, resumed each time, never a second one");
      // Each step ran (a leader that lost its lease in the middle of one, on a loaded machine, leaves it to the next).
      for (const step of STEPS) assert.ok(recoveries[0]?.steps.some((s) => s.step === step && s.ok === true), `${step} done`);
      assert.equal(recoveries[0]?.steps.filter((s) => s.step === "launch" && s.ok).length, 1, "launched once");
      assert.equal(machinesOf(m, "redis1").length, 2, "the original machine and exactly one replacement");
      await m.waitConverged(60_000);
      await writes.stop();
      assert.ok(writes.acks.length > 0);
      assert.equal(await readBackLost(tt.topology, writes, {}), 0, "acknowledged writes lost");
      assert.ok(killedBefore.length > 0, "the leader was killed at least once mid-recovery");
      process.stdout.write(`# killed before ${killedBefore.join(", ")}; takeovers (kill to the step's start), ms: ${takeovers.join(", ")}\n`);
    } finally {
      await writes.stop().catch(() => {});
    }
  });
});
