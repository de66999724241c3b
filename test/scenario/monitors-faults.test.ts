/**
 * Three failoverd instances on a real 3-member etcd, a real sandbox (Redis, HAProxy), and two faults of the
 * coordination itself:
 * - a leader stopped (SIGSTOP) mid-recovery for longer than its lease, woken (SIGCONT) after its successor finished
 *   the recovery: it writes nothing more to the etcd journal, launches, terminates, promotes nothing; stopped before
 *   the launch step (127.200.x.y) and inside it, an address taken but no machine recorded (127.202.x.y);
 * - etcd stopped entirely, then the primary killed: nobody fences, promotes or launches, each instance says why;
 *   etcd started again on its data: the pending failure is failed over once (127.201.x.y).
 * Every wait is a condition with a deadline of minutes: on a loaded machine things are slow, never wrong.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, test } from "node:test";
import { Etcd3 } from "etcd3";
import { Redis } from "ioredis";
import { HaproxyAdminClient } from "../../src/admin/haproxy.ts";
import type { StatusView } from "../../src/daemon/status.ts";
import type { JournalRecord } from "../../src/recovery/journal.ts";
import { signal, whyNotFree } from "../../src/providers/local/processes.ts";
import { readBackLost } from "../../src/simulate/scenario.ts";
import { Traffic } from "../../src/simulate/traffic.ts";
import { type Monitors, monitorsTopology, startMonitors, TTL_SECONDS } from "../helpers/monitors.ts";
import type { TestTopology } from "../helpers/sandbox.ts";
import { waitUntil } from "../helpers/wait.ts";

const NAMES = ["m1", "m2", "m3"] as const;

async function until(what: string, fn: () => Promise<boolean> | boolean, ms = 180_000): Promise<void> {
  await waitUntil(what, fn, ms, { retryErrors: true });
}

function traffic(tt: TestTopology): Traffic {
  const app = tt.topology.appHosts[0]!;
  return new Traffic({ address: app.address, port: Number(Object.keys(app.frontends)[0]), prefix: `f:${Date.now()}`, probeEveryMs: 0 });
}

const machinesOf = (m: Monitors, host: string) => m.sandbox.read().machines.filter((x) => x.host === host);
const killHost = (m: Monitors, host: string) => {
  for (const p of m.sandbox.machineOf(host)?.processes ?? []) signal(p, "SIGKILL");
};
const alive = (c: ChildProcess) => c.exitCode === null && c.signalCode === null;

async function redisRole(address: string, port: number): Promise<string> {
  const c = new Redis({ host: address, port, lazyConnect: true, connectTimeout: 10_000, commandTimeout: 10_000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  c.on("error", () => {});
  try {
    await c.connect();
    return String(((await c.call("ROLE")) as unknown[])[0]);
  } finally {
    c.disconnect();
  }
}

/**
 * The journal in etcd, in creation order: each record with its key, `<at>-<writer's nonce>-<seq>`, whose nonce names
 * the process that wrote it.
 */
async function journal(client: Etcd3, tt: TestTopology): Promise<{ key: string; record: JournalRecord }[]> {
  const prefix = `/failoverd/${tt.topology.name}/journal/`;
  const res = await client.getAll().prefix(prefix).sort("Create", "Ascend").exec();
  return res.kvs.map((kv) => ({ key: kv.key.toString().slice(prefix.length), record: JSON.parse(kv.value.toString()) as JournalRecord }));
}
const journalKeys = async (client: Etcd3, tt: TestTopology) => (await journal(client, tt)).map((x) => x.key);
const writerOf = (key: string) => key.split("-")[1] ?? "";

interface Stop {
  readonly net: number;
  /** Where the leader is stopped. */
  readonly where: string;
  /** The chaos pause every instance has, and what the paused one logs. */
  readonly env: NodeJS.ProcessEnv;
  readonly paused: string;
  /** The record, among those journaled when it was stopped, that the stopped instance wrote itself. */
  readonly own: (r: JournalRecord) => boolean;
}

const STOPS: Stop[] = [
  {
    // Every instance pauses before launch, except one that resumes the recovery at launch (the runner's rule): the
    // paused one did not resume there, so it ran terminate itself.
    net: 200,
    where: "before launch",
    env: { FAILOVERD_CHAOS_PAUSE: "launch:15000" },
    paused: "chaos: pausing 15000 ms before launch",
    own: (r) => r.type === "step-end" && r.step === "terminate" && r.ok,
  },
  {
    // Inside the launch: an address taken, no machine recorded yet (once per process: a successor pauses there too).
    net: 202,
    where: "inside launch",
    env: { FAILOVERD_CHAOS_LOCAL_PAUSE: "allocated:15000" },
    paused: "chaos: local provider pausing 15000 ms at allocated",
    own: (r) => r.type === "step-start" && r.step === "launch",
  },
];

for (const stop of STOPS) describe(`a deposed leader that wakes up (stopped ${stop.where})`, { timeout: 600_000 }, () => {
  let tt: TestTopology;
  let m: Monitors;
  let client: Etcd3;
  const CHAOS = stop.env;
  before(async () => {
    tt = monitorsTopology(stop.net);
    m = await startMonitors(tt);
    client = new Etcd3({ hosts: m.etcd.endpoints, defaultCallOptions: () => ({ deadline: Date.now() + 5000 }) });
    // One after the other: three Node processes starting at once on a loaded machine take minutes.
    for (const name of NAMES) {
      m.start(name, CHAOS);
      await m.waitLog(name, "roles discovered", 180_000);
    }
    await until("a leader", async () => (await m.leader()) !== null, 120_000);
  });
  after(async () => {
    client?.close();
    await m?.stop();
    if (!process.env["KEEP"]) tt?.cleanup();
  });

  test(`stopped ${stop.where} for longer than its lease, woken after its successor finished: no journal record, no launch, one replacement, no acknowledged write lost`, async () => {
    const writes = traffic(tt);
    try {
      writes.start();
      await until("acknowledged writes", () => writes.acks.length > 0, 60_000);
      killHost(m, "redis1");
      // The leader, whoever it is by then, pauses there: terminate is done, the launch is next or under way.
      let victim = "";
      await until(
        `an instance pausing ${stop.where}`,
        () => {
          victim = NAMES.find((n) => m.logOf(n).includes(stop.paused)) ?? "";
          return victim !== "";
        },
        240_000,
      );
      const child = m.daemons.get(victim)!.child;
      process.kill(child.pid!, "SIGSTOP");
      const stoppedAt = Date.now();
      const logWhenStopped = m.logOf(victim).length;
      // A record it wrote itself names (by its nonce) every record it wrote.
      const atStop = await journal(client, tt);
      const keysAtStop = atStop.map((x) => x.key);
      const own = atStop.filter((x) => stop.own(x.record));
      assert.ok(own.length > 0, `the stopped instance's own record was journaled before the pause`);
      const nonce = writerOf(own.at(-1)!.key);
      const victimsAtStop = keysAtStop.filter((k) => writerOf(k) === nonce).length;
      assert.ok(victimsAtStop > 0);

      // Another instance leads and finishes the recovery (it resumes at launch: no pause before it; inside it, once).
      await until("another leader", async () => {
        const l = await m.leader();
        return l !== null && l !== victim;
      });
      const [r] = await m.waitEnded(1, 240_000);
      assert.equal(r?.outcome, "succeeded", r?.error);
      const keysAtEnd = await journalKeys(client, tt);
      assert.ok(keysAtEnd.some((k) => writerOf(k) !== nonce && writerOf(k) !== ""), "the successor journaled the rest");
      // Stopped longer than the lease in any case (two TTLs), however fast the successor was.
      await until("two lease TTLs since the stop", () => Date.now() - stoppedAt > 2 * TTL_SECONDS * 1000, 60_000);

      process.kill(child.pid!, "SIGCONT");
      // It wakes at its pause's end (or at once, if the pause ran out while stopped), finds it no longer leads,
      // stops, and stands for election again with a new lease.
      const woke = () => m.logOf(victim).slice(logWhenStopped);
      await until(`${victim} to stop its recovery`, () => /lost the lease: stopping failed_redis|no longer the acting instance: stopping before/.test(woke()), 240_000);
      await until(`${victim} to see its lease expired`, () => woke().includes("the etcd lease expired"), 120_000);
      await until(`${victim} to stand again`, () => woke().includes(`joined the etcd election as ${victim}`), 120_000);
      await until(`${victim} to name the leader`, () => /leader: m\d/.test(woke()), 120_000);
      // One more TTL for anything it might still do wrong (a window for an absence: a slow machine cannot fail it).
      await sleep(TTL_SECONDS * 1000 + 1000);

      assert.ok(alive(child), `${victim} still runs`);
      const text = woke();
      assert.doesNotMatch(text, /step \w+: /, `${victim} started no step after waking`);
      assert.doesNotMatch(text, /recovery started/, `${victim} started no recovery after waking`);
      const keysAfter = await journalKeys(client, tt);
      assert.equal(keysAfter.filter((k) => writerOf(k) === nonce).length, victimsAtStop, `${victim} recorded nothing after it was stopped`);
      assert.deepEqual(keysAfter, keysAtEnd, "nobody recorded anything after the recovery ended");
      const recoveries = await m.recoveries();
      assert.equal(recoveries.length, 1, "one recovery");
      assert.equal(recoveries[0]?.outcome, "succeeded");
      assert.equal(recoveries[0]?.steps.filter((s) => s.step === "launch" && s.ok).length, 1, "launched once");
      assert.equal(recoveries[0]?.steps.filter((s) => s.step === "promote").length, 1, "promote started once");
      assert.equal(recoveries[0]?.steps.filter((s) => s.step === "terminate").length, 1, "terminate started once");
      const machines = machinesOf(m, "redis1");
      assert.equal(machines.length, 2, "the original machine and exactly one replacement");
      assert.equal(machines.filter((x) => x.status === "running").length, 1, "the replacement runs, the failed machine does not");
      await m.waitConverged(120_000);
      await writes.stop();
      assert.equal(await readBackLost(tt.topology, writes, {}), 0, "acknowledged writes lost");
      process.stdout.write(`# ${victim} stopped ${Math.round((Date.now() - stoppedAt) / 1000)} s ${stop.where}\n`);
    } finally {
      await writes.stop().catch(() => {});
    }
  });
});

describe("etcd stopped entirely", { timeout: 600_000 }, () => {
  let tt: TestTopology;
  let m: Monitors;
  const api = (i: number) => `127.201.5.${i + 1}:9464`;
  const status = async (i: number) => (await (await fetch(`http://${api(i)}/status`, { signal: AbortSignal.timeout(5000) })).json()) as StatusView;
  const metric = async (i: number, name: string) => {
    const text = await (await fetch(`http://${api(i)}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
    const line = text.split("\n").find((l) => l.startsWith(`${name} `));
    return line === undefined ? undefined : Number(line.split(" ")[1]);
  };
  before(async () => {
    tt = monitorsTopology(201);
    const busy = (await Promise.all(NAMES.map((_, i) => whyNotFree(api(i).split(":")[0]!, 9464)))).filter(Boolean);
    if (busy.length > 0) throw new Error(`test addresses are busy: ${busy.join("; ")}`);
    m = await startMonitors(tt);
    for (const [i, name] of NAMES.entries()) {
      m.start(name, {}, undefined, ["--http", api(i)]);
      await m.waitLog(name, "roles discovered", 180_000);
    }
    await until("a leader", async () => (await m.leader()) !== null, 120_000);
    await until("every instance to see quorum", async () => (await Promise.all(NAMES.map((_, i) => metric(i, "failoverd_quorum")))).every((q) => q === 1), 120_000);
  });
  after(async () => {
    await m?.stop();
    if (!process.env["KEEP"]) tt?.cleanup();
  });

  test("no instance acts while etcd is down and each says why; etcd back: the dead primary is failed over once, no acknowledged write lost", async () => {
    const t = tt.topology;
    const r1 = t.hosts.get("redis1")!.address;
    const r2 = t.hosts.get("redis2")!.address;
    const haproxies = t.haproxyHosts.map((h) => new HaproxyAdminClient({ address: h.address, port: h.adminPort! }, 10_000));
    const writes = traffic(tt);
    try {
      writes.start();
      await until("acknowledged writes", () => writes.acks.length > 0, 60_000);
      const logAt = new Map(NAMES.map((n) => [n, m.logOf(n).length]));
      await m.etcd.stopAll();
      const since = (n: (typeof NAMES)[number]) => m.logOf(n).slice(logAt.get(n));
      for (const [i, n] of NAMES.entries()) {
        await until(`${n} to say etcd is unreachable`, async () => {
          const s = await status(i);
          return s.instances?.connected === false && /^etcd: .+; no instance acts without etcd$/.test(s.instances.notActing ?? "") && s.instances.acting === false;
        });
        await until(`${n}'s failoverd_quorum to be 0`, async () => (await metric(i, "failoverd_quorum")) === 0 && (await metric(i, "failoverd_leader")) === 0);
      }
      for (const n of NAMES) assert.match(since(n), /etcd unreachable: .*; not acting/, `${n} logs why it does not act`);

      const stoppedPrimaryAt = Date.now();
      killHost(m, "redis1");
      // Every instance sees redis1 down and alerts instead of acting.
      for (const [i, n] of NAMES.entries()) {
        await until(`${n} to alert about redis1 without acting`, async () => {
          const s = await status(i);
          const down = s.hosts.find((h) => h.name === "redis1")?.targets.some((x) => x.status === "down");
          const d = s.diagnoses.find((x) => x.diagnosis.host === "redis1");
          // The alert says why it is not confirmed: not that the others disagree, but that etcd does not answer.
          const why = d?.diagnosis.evidence.some((e) => /not confirmed \(the others' verdicts are unknown: etcd: .+; no instance acts without etcd\)/.test(e));
          return down === true && d !== undefined && d.decision.kind === "alert" && why === true;
        });
      }
      // A generous window (three lease TTLs and then some) in which nothing may change in the world.
      const worldUnchanged = async () => {
        assert.equal(machinesOf(m, "redis1").length, 1, "no machine launched");
        assert.equal(machinesOf(m, "redis1")[0]?.status, "running", "the failed machine was not terminated");
        assert.equal(await redisRole(r2, 9001), "slave", "redis2 was not promoted");
        for (const h of haproxies) {
          const states = await h.showServersState();
          const r1s = states.filter((s) => s.address === r1);
          assert.ok(r1s.length > 0, `${h.name} still lists redis1`);
          assert.ok(r1s.every((s) => !s.inMaint), `redis1 was not fenced on ${h.name}`);
        }
        for (const n of NAMES) assert.doesNotMatch(since(n), /recovery started|step \w+: /, `${n} started nothing`);
      };
      const windowEnd = Date.now() + 3 * TTL_SECONDS * 1000 + 5000;
      while (Date.now() < windowEnd) {
        await worldUnchanged();
        await sleep(1000);
      }
      for (const [i, n] of NAMES.entries()) {
        const s = await status(i);
        assert.equal(s.instances?.acting, false, `${n} does not act`);
        assert.match(s.instances?.notActing ?? "", /^etcd: .+; no instance acts without etcd$/);
        assert.equal(s.recoveries.current.length, 0, `${n} runs no recovery`);
      }
      // Once per outage (a hiccup of etcd under load before the stop would be an outage of its own).
      const count = (text: string, re: RegExp) => text.match(re)?.length ?? 0;
      for (const n of NAMES) assert.equal(count(since(n), /etcd unreachable: /g) - count(since(n), /etcd answers again/g), 1, `${n} says once that etcd is unreachable`);
      process.stdout.write(`# etcd down ${Math.round((Date.now() - stoppedPrimaryAt) / 1000)} s after the primary was killed; nothing acted\n`);

      // etcd again, on its data: the instances reconnect, and the failure still pending is failed over once.
      const restartedAt = Date.now();
      await m.etcd.startAgain(120_000);
      for (const n of NAMES) await until(`${n} to reconnect`, () => since(n).includes("etcd answers again"), 180_000);
      const [r] = await m.waitEnded(1, 240_000);
      assert.equal(r?.outcome, "succeeded", r?.error);
      const recoveries = await m.recoveries();
      assert.equal(recoveries.length, 1, "one recovery");
      assert.ok((recoveries[0]?.startedAt ?? 0) >= restartedAt, "started once etcd was back");
      assert.equal(recoveries[0]?.steps.filter((s) => s.step === "launch" && s.ok).length, 1, "launched once");
      assert.equal(machinesOf(m, "redis1").length, 2, "the original machine and exactly one replacement");
      await m.waitConverged(120_000);
      for (const [i, n] of NAMES.entries()) {
        await until(`${n}'s quorum back`, async () => (await metric(i, "failoverd_quorum")) === 1 && (await status(i)).instances?.connected === true, 120_000);
      }
      await writes.stop();
      assert.ok(writes.acks.length > 0);
      assert.equal(await readBackLost(t, writes, {}), 0, "acknowledged writes lost");
    } finally {
      await writes.stop().catch(() => {});
      // However the test ended, etcd runs again for the teardown (stop() kills it by PID).
      if (m.etcd.members.some((x) => x.pid === null)) await m.etcd.startAgain().catch(() => {});
    }
  });
});
