/**
 * The switchover playbook against the recording world (test/helpers/recording-providers.ts): the order of its
 * effects, the refusals of its preflight (nothing changed), a FAILOVER that never completes (aborted, HAProxies
 * untouched), a resumed run (nothing done twice), a failure injected at each write, and dry-run.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { HaproxyCommandError, ProbeError } from "../../src/errors.ts";
import { silentLogger } from "../../src/log.ts";
import { DryRunRecorder, dryRun } from "../../src/providers/dry-run.ts";
import { type JournalRecord, MemoryJournal, summarize } from "../../src/recovery/journal.ts";
import { switchover } from "../../src/recovery/playbooks/switchover.ts";
import { Runner } from "../../src/recovery/runner.ts";
import { Inventory } from "../../src/topology/inventory.ts";
import { parseTopology } from "../../src/topology/load.ts";
import { isWrite, RecordingMonitor, RecordingProviders, sandboxYaml } from "../helpers/recording-providers.ts";

const R1 = "127.0.1.1";
const R2 = "127.0.1.2";

/** The unit topology with a short FAILOVER TIMEOUT, so a FAILOVER that never completes is given up quickly. */
const topology = () =>
  parseTopology(sandboxYaml({ stepTimeoutMs: 5000 }).replace('"maxFailingFraction"', '"switchoverTimeoutMs":200,"maxFailingFraction"'), "test");

function setup() {
  const t = topology();
  const world = new RecordingProviders(t);
  const journal = new MemoryJournal();
  const runner = (providers = world as ConstructorParameters<typeof Runner>[0]["providers"], dry = false) =>
    new Runner({ topology: t, inventory: new Inventory(t), providers, journal, monitor: new RecordingMonitor(world), log: silentLogger(), dryRun: dry });
  return { t, world, journal, runner };
}

const ends = (rs: readonly JournalRecord[]) => rs.filter((r): r is Extract<JournalRecord, { type: "recovery-end" }> => r.type === "recovery-end");

describe("switchover playbook", () => {
  test("reads like its runbook", () => {
    assert.deepEqual(
      switchover("redis2").steps.map((s) => [s.name, s.pointOfNoReturn === true]),
      [
        ["preflight", false],
        ["failover", true],
        ["route", false],
      ],
    );
  });

  test("FAILOVER TO on every port, then every HAProxy moves: new primary ready and up, old one down and its sessions shut", async () => {
    const { world, runner } = setup();
    assert.equal(await runner().run(switchover("redis2"), { diagnosis: "switchover" }), "succeeded");
    for (const port of [9001, 9002]) {
      assert.deepEqual(world.redisAt(R2, port), { role: "primary", primary: null, offset: 1000 });
      assert.deepEqual(world.redisAt(R1, port), { role: "replica", primary: `${R2}:${port}`, offset: 1000 });
    }
    const writes = world.writes().filter((w) => !w.startsWith("proxies."));
    assert.deepEqual(writes.slice(0, 2).sort(), [`redis.failover ${R1}:9001 ${R2}:9001 200`, `redis.failover ${R1}:9002 ${R2}:9002 200`]);
    const haproxy1 = writes.filter((w) => w.includes("127.0.2.1:9999"));
    assert.deepEqual(haproxy1, [
      "haproxy.setState 127.0.2.1:9999 be_redis_9001 redis2 ready",
      "haproxy.setHealth 127.0.2.1:9999 be_redis_9001 redis2 up",
      "haproxy.setHealth 127.0.2.1:9999 be_redis_9001 redis1 down",
      "haproxy.shutdownSessions 127.0.2.1:9999 be_redis_9001 redis1",
      "haproxy.setState 127.0.2.1:9999 be_redis_9002 redis2 ready",
      "haproxy.setHealth 127.0.2.1:9999 be_redis_9002 redis2 up",
      "haproxy.setHealth 127.0.2.1:9999 be_redis_9002 redis1 down",
      "haproxy.shutdownSessions 127.0.2.1:9999 be_redis_9002 redis1",
    ]);
    assert.equal(writes.filter((w) => w.includes("127.0.2.2:9999")).length, 8, "haproxy2 moves too");
    assert.ok(!writes.some((w) => w.includes(" maint")), "the old primary is not fenced");
    // The config files keep it across a reload: the new primary is the non-backup server.
    const cfg = world.configOf("i-haproxy1-0") ?? "";
    assert.match(cfg, /server redis2 127\.0\.1\.2:9001 check\n/);
    assert.match(cfg, /server redis1 127\.0\.1\.1:9001 check backup/);
    // The first thing done is looking: PING (ROLE) of the target before any write.
    const first = world.calls.findIndex(isWrite);
    assert.ok(world.calls.slice(0, first).includes(`redis.role ${R2}:9001`));
  });

  test("refused before any change: the target does not answer, or is not an in-sync replica of its twin", async () => {
    const dead = setup();
    dead.world.kill("redis2");
    assert.equal(await dead.runner().run(switchover("redis2"), { diagnosis: "switchover" }), "rolled-back");
    assert.deepEqual(dead.world.writes(), []);
    assert.match(ends(await dead.journal.read())[0]?.error ?? "", /^preflight: cannot switch over: redis2:9\d{3} does not answer/);

    const already = setup();
    assert.equal(await already.runner().run(switchover("redis1"), { diagnosis: "switchover" }), "succeeded");
    assert.deepEqual(
      already.world.writes().filter((w) => w.startsWith("redis.")),
      [],
      "redis1 is already primary everywhere: no FAILOVER",
    );
  });

  test("a FAILOVER that does not complete is aborted; the old primary stays; the HAProxies are untouched", async () => {
    const { world, journal, runner } = setup();
    world.ignoreOn((c) => c.startsWith("redis.failover "));
    assert.equal(await runner().run(switchover("redis2"), { diagnosis: "switchover" }), "failed");
    assert.deepEqual(world.writes().filter((w) => w.startsWith("redis.abortFailover")).sort(), [`redis.abortFailover ${R1}:9001`, `redis.abortFailover ${R1}:9002`]);
    assert.ok(!world.writes().some((w) => w.startsWith("haproxy.")), "no HAProxy was touched");
    assert.equal(world.redisAt(R1, 9001)?.role, "primary");
    assert.match(ends(await journal.read())[0]?.error ?? "", /failover: switchover to redis2: 900\d: did not complete within 2200 ms and was aborted; redis1:900\d is still the primary/);
  });

  test("a FAILOVER refused (one already in progress, from an attempt cut short) is watched, and aborted when it does not complete", async () => {
    const { world, journal, runner } = setup();
    world.failOn((c) => c.startsWith(`redis.failover ${R1}:9001 `), new Error("ERR FAILOVER already in progress."), 1);
    assert.equal(await runner().run(switchover("redis2"), { diagnosis: "switchover" }), "failed");
    assert.ok(world.writes().includes(`redis.abortFailover ${R1}:9001`), "the failover in progress is aborted");
    assert.equal(world.redisAt(R1, 9001)?.role, "primary");
    assert.match(ends(await journal.read())[0]?.error ?? "", /9001: did not complete within 2200 ms and was aborted; redis1:9001 is still the primary/);
  });

  test("the target stops answering after the preflight: no FAILOVER is sent to its primary", async () => {
    const { world, journal, runner } = setup();
    let asked = 0;
    // The preflight reads the target's ROLE once; every later read times out.
    world.failOn((c) => c === `redis.role ${R2}:9001` && ++asked > 1, new ProbeError("timeout", "no answer within the deadline"));
    assert.equal(await runner().run(switchover("redis2"), { diagnosis: "switchover" }), "failed");
    assert.ok(!world.writes().some((w) => w.startsWith(`redis.failover ${R1}:9001 `)), "no FAILOVER on 9001");
    assert.equal(world.redisAt(R1, 9001)?.role, "primary");
    assert.match(ends(await journal.read())[0]?.error ?? "", /9001: redis2:9001 does not answer; redis1:9001 was left primary \(no FAILOVER sent\)/);
  });

  test("a port whose target is primary already and whose old primary does not answer: switched, no FAILOVER sent", async () => {
    const t = topology();
    const world = new RecordingProviders(t, { primaries: { 9001: "redis2" } });
    const runner = new Runner({ topology: t, inventory: new Inventory(t), providers: world, journal: new MemoryJournal(), monitor: new RecordingMonitor(world), log: silentLogger() });
    world.failOn((c) => c === `redis.role ${R1}:9001`, new ProbeError("timeout", "no answer within the deadline"));
    assert.equal(await runner.run(switchover("redis2"), { diagnosis: "switchover" }), "succeeded");
    assert.ok(!world.writes().some((w) => w.startsWith(`redis.failover ${R1}:9001 `)), "no FAILOVER on 9001");
    assert.ok(world.writes().includes(`redis.failover ${R1}:9002 ${R2}:9002 200`), "9002 is switched as usual");
    assert.ok(world.writes().includes("haproxy.setHealth 127.0.2.1:9999 be_redis_9001 redis2 up"), "9001 routed to redis2");
  });

  test("one port switched, the other not: the switched one is routed, and the recovery says which", async () => {
    const { world, journal, runner } = setup();
    world.ignoreOn((c) => c.startsWith(`redis.failover ${R1}:9002 `));
    assert.equal(await runner().run(switchover("redis2"), { diagnosis: "switchover" }), "failed");
    assert.equal(world.redisAt(R2, 9001)?.role, "primary");
    assert.equal(world.redisAt(R1, 9002)?.role, "primary");
    assert.ok(world.writes().includes("haproxy.setHealth 127.0.2.1:9999 be_redis_9001 redis2 up"));
    assert.ok(!world.writes().some((w) => w.includes("be_redis_9002")));
    assert.match(ends(await journal.read())[0]?.error ?? "", /9002: did not complete .*; port 9001 switched and routed$/);
  });

  test("resumed after the FAILOVER (a daemon restart): nothing is done twice", async () => {
    const { world, journal, runner } = setup();
    world.failOn((c) => c.startsWith("haproxy.setState 127.0.2.1:9999 be_redis_9001"), new HaproxyCommandError("set server", "No such server."));
    assert.equal(await runner().run(switchover("redis2"), { diagnosis: "switchover" }), "failed");
    world.clearFaults();
    const before = world.writes().filter((w) => w.startsWith("redis.failover")).length;
    const rec = summarize(await journal.read())[0]!;
    // As if the recovery had not ended: resume from its steps.
    const resumed = { ...rec, outcome: undefined, endedAt: undefined };
    assert.equal(await runner().run(switchover("redis2"), { diagnosis: "switchover" }, resumed), "succeeded");
    assert.equal(world.writes().filter((w) => w.startsWith("redis.failover")).length, before, "no second FAILOVER");
    assert.ok(world.writes().includes("haproxy.setHealth 127.0.2.1:9999 be_redis_9001 redis2 up"));
  });

  test("dry-run describes FAILOVER and the HAProxy moves and changes nothing", async () => {
    const { world, runner } = setup();
    const recorder = new DryRunRecorder();
    const before = world.snapshot();
    assert.equal(await runner(dryRun(world, recorder), true).run(switchover("redis2"), { diagnosis: "plan" }), "succeeded");
    assert.deepEqual(world.snapshot(), before);
    const actions = recorder.actions.map((a) => a.description);
    assert.ok(actions.includes(`would send FAILOVER TO ${R2} 9001 TIMEOUT 200 to ${R1}:9001`));
    assert.ok(actions.includes("would send 'set server be_redis_9001/redis2 health up' to HAProxy 127.0.2.1:9999"));
    assert.ok(actions.includes("would send 'shutdown sessions server be_redis_9002/redis1' to HAProxy 127.0.2.2:9999"));
  });
});
