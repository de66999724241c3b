/**
 * Three failoverd instances coordinated through a real 3-member etcd, on a real sandbox (Redis, HAProxy), on
 * 127.181.x.y: the leader killed at each step of failed_redis (the next leader resumes; one replacement; no
 * acknowledged write lost); a deposed leader woken after SIGSTOP does nothing; etcd stopped (nobody acts) and
 * started again (normal service).
 */
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, test } from "node:test";
import { signal } from "../../src/providers/local/processes.ts";
import { failedRedis } from "../../src/recovery/playbooks/failed-redis.ts";
import { readBackLost } from "../../src/simulate/scenario.ts";
import { Traffic } from "../../src/simulate/traffic.ts";
import { type Monitors, monitorsTopology, startMonitors, TTL_SECONDS } from "../helpers/monitors.ts";
import type { TestTopology } from "../helpers/sandbox.ts";

const STEPS = failedRedis("redis1").steps.map((s) => s.name);

/** Starts m1 (with `env`), waits until it leads, then m2 and m3. */
async function threeInstances(m: Monitors, env: NodeJS.ProcessEnv = {}): Promise<void> {
  m.start("m1", env);
  await m.waitLog("m1", "leader: m1 (this instance)");
  await m.waitLog("m1", "roles discovered");
  m.start("m2", env);
  m.start("m3", env);
  await m.waitLog("m2", "roles discovered");
  await m.waitLog("m3", "roles discovered");
}

/** The live instance whose log shows `marker` first. */
async function waitAny(m: Monitors, marker: string, ms = 180_000): Promise<string> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    for (const [name, d] of m.daemons) if (d.child.exitCode === null && d.child.signalCode === null && m.logOf(name).includes(marker)) return name;
    await sleep(50);
  }
  throw new Error(`no instance logged ${marker} within ${ms} ms`);
}

async function until(fn: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn().catch(() => false)) return;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

function traffic(tt: TestTopology): Traffic {
  const app = tt.topology.appHosts[0]!;
  return new Traffic({ address: app.address, port: Number(Object.keys(app.frontends)[0]), prefix: `m:${Date.now()}`, probeEveryMs: 0 });
}

describe("three instances on etcd", { timeout: 1_200_000 }, () => {
  let tt: TestTopology;
  before(() => {
    tt = monitorsTopology(181);
  });
  after(() => {
    if (!process.env["KEEP"]) tt.cleanup();
  });

  test("the leader killed before each step of failed_redis in turn: each next leader resumes at that step; one recovery, one replacement, no acknowledged write lost", async () => {
    const m = await startMonitors(tt);
    const writes = traffic(tt);
    // Every instance pauses before every step, except the step a resumed run starts at (where the last leader died).
    const env = { FAILOVERD_CHAOS_PAUSE: STEPS.map((s) => `${s}:60000`).join(",") };
    try {
      await threeInstances(m, env);
      writes.start();
      await sleep(300);
      for (const p of m.sandbox.machineOf("redis1")?.processes ?? []) signal(p, "SIGKILL");
      const takeovers: number[] = [];
      for (const step of STEPS) {
        const paused = await waitAny(m, `chaos: pausing 60000 ms before ${step}`);
        const killedAt = Date.now();
        m.daemons.get(paused)!.child.kill("SIGKILL");
        await new Promise((r) => m.daemons.get(paused)!.child.once("exit", r));
        // The next leader resumes: the step is journaled as started.
        await until(async () => (await m.recoveries())[0]?.steps.some((s) => s.step === step) === true, 120_000, `a next leader to start ${step}`);
        takeovers.push(Date.now() - killedAt);
        m.start(paused, env);
      }
      const [r] = await m.waitEnded(1);
      assert.equal(r?.outcome, "succeeded", r?.error);
      const recoveries = await m.recoveries();
      assert.equal(recoveries.length, 1, "one recovery, resumed each time, never a second one");
      // Each step ran (a leader that lost its lease in the middle of one, on a loaded machine, leaves it to the next).
      for (const step of STEPS) assert.ok(recoveries[0]?.steps.some((s) => s.step === step && s.ok === true), `${step} done`);
      assert.equal(recoveries[0]?.steps.filter((s) => s.step === "launch" && s.ok).length, 1, "launched once");
      assert.equal(m.sandbox.read().machines.filter((x) => x.host === "redis1").length, 2, "the original machine and exactly one replacement");
      await m.waitConverged();
      await writes.stop();
      assert.ok(writes.acks.length > 0);
      assert.equal(await readBackLost(tt.topology, writes, {}), 0, "acknowledged writes lost");
      process.stdout.write(`# takeover (kill to the next step's start), ms: ${takeovers.join(", ")}\n`);
    } finally {
      await writes.stop().catch(() => {});
      await m.stop();
    }
  });

  test("a deposed leader that wakes up after SIGSTOP (longer than the TTL) writes nothing and does nothing", async () => {
    const m = await startMonitors(tt);
    try {
      await threeInstances(m, { FAILOVERD_CHAOS_PAUSE: "promote:1500" });
      for (const p of m.sandbox.machineOf("redis1")?.processes ?? []) signal(p, "SIGKILL");
      await m.waitLog("m1", "chaos: pausing 1500 ms before promote");
      const m1 = m.daemons.get("m1")!.child;
      m1.kill("SIGSTOP");
      const [r] = await m.waitEnded(1);
      assert.equal(r?.outcome, "succeeded", r?.error);
      const before = (await m.records()).length;
      m1.kill("SIGCONT");
      await m.waitLog("m1", "no longer the acting instance: stopping before promote");
      await sleep(TTL_SECONDS * 1000);
      assert.equal((await m.records()).length, before, "the woken leader recorded nothing");
      const recoveries = await m.recoveries();
      assert.equal(recoveries.length, 1);
      assert.equal(recoveries[0]?.steps.filter((s) => s.step === "promote").length, 1, "promote started once, by the successor");
      assert.equal(m.sandbox.read().machines.filter((x) => x.host === "redis1").length, 2, "one replacement");
      await m.waitConverged();
    } finally {
      await m.stop();
    }
  });

  test("etcd stopped entirely: nobody acts, each instance says why; etcd started again: the failure is recovered", async () => {
    const m = await startMonitors(tt);
    try {
      await threeInstances(m);
      for (const e of m.etcd.members) await m.etcd.killMember(e.name);
      for (const name of ["m1", "m2", "m3"]) await m.waitLog(name, "etcd unreachable");
      for (const p of m.sandbox.machineOf("redis1")?.processes ?? []) signal(p, "SIGKILL");
      for (const name of ["m1", "m2", "m3"]) await m.waitLog(name, /DeadPrimary on redis1: etcd: .*no instance acts without etcd/);
      await sleep(2000);
      assert.equal(m.sandbox.read().machines.filter((x) => x.host === "redis1").length, 1, "no replacement launched without etcd");
      for (const name of ["m1", "m2", "m3"]) assert.doesNotMatch(m.logOf(name), /recovery started/);
      for (const e of m.etcd.members) m.etcd.startMember(e.name);
      const [r] = await m.waitEnded(1, 90_000);
      assert.equal(r?.outcome, "succeeded", r?.error);
      assert.equal((await m.recoveries()).length, 1);
      assert.equal(m.sandbox.read().machines.filter((x) => x.host === "redis1").length, 2);
      await m.waitConverged();
    } finally {
      await m.stop();
    }
  });
});
