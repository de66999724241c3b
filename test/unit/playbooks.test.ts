/**
 * Playbooks against a recording provider (STYLE.md point 12): the runbook order of the effects, a failure injected
 * at every step (before the point of no return a rollback, after it forward only), retries, a crash at every
 * journal write followed by a resume, steps run twice, and dry-run. No servers: test/helpers/recording-providers.ts
 * is the world.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { HaproxyCommandError, ProbeError, ProviderError } from "../../src/errors.ts";
import { silentLogger } from "../../src/log.ts";
import { DryRunRecorder, dryRun } from "../../src/providers/dry-run.ts";
import { type Journal, type JournalRecord, MemoryJournal, summarize, unfinished } from "../../src/recovery/journal.ts";
import { failedHaproxy } from "../../src/recovery/playbooks/failed-haproxy.ts";
import { failedRedis } from "../../src/recovery/playbooks/failed-redis.ts";
import { Runner, type RunOutcome, type StepEvent } from "../../src/recovery/runner.ts";
import { whyNotPromotable } from "../../src/recovery/steps/redis.ts";
import type { Playbook, StepContext } from "../../src/recovery/types.ts";
import { Inventory, type Placement } from "../../src/topology/inventory.ts";
import type { Topology } from "../../src/topology/topology.ts";
import {
  isMonitorCall,
  isWrite,
  RecordingMonitor,
  RecordingProviders,
  type TestRecoveryOptions,
  testTopology,
  type WorldOptions,
} from "../helpers/recording-providers.ts";

const R1 = "127.0.1.1";
const R2 = "127.0.1.2";
const HAPROXY_ADMINS = ["127.0.2.1:9999", "127.0.2.2:9999"] as const;
const APP_ADMIN = { address: "127.0.3.1", port: 9999 };
const PORTS = [9001, 9002] as const;

// ---------------------------------------------------------------------------------------------------------------
// A world, a runner and the bookkeeping around them
// ---------------------------------------------------------------------------------------------------------------

interface Setup {
  readonly topology: Topology;
  readonly world: RecordingProviders;
  readonly monitor: RecordingMonitor;
  readonly journal: Journal;
  inventory: Inventory;
  /** What saveInventory last persisted (a restarted daemon loads this). */
  saved: Placement[];
  /** The step the runner is in now (between its step-start and step-end events), or null. */
  current: string | null;
  runner: Runner;
}

interface SetupOptions extends WorldOptions {
  readonly kill?: readonly string[];
  readonly recovery?: TestRecoveryOptions;
  readonly journal?: Journal;
}

function setup(o: SetupOptions = {}): Setup {
  const topology = testTopology(o.recovery);
  const world = new RecordingProviders(topology, o);
  for (const h of o.kill ?? []) world.kill(h);
  const inventory = new Inventory(topology);
  const s: Setup = {
    topology,
    world,
    monitor: new RecordingMonitor(world),
    journal: o.journal ?? new MemoryJournal(),
    inventory,
    saved: inventory.all(),
    current: null,
    runner: undefined as unknown as Runner,
  };
  s.runner = newRunner(s);
  return s;
}

/** A runner over the setup's world; a restarted daemon gets a new one with the inventory it had saved. */
function newRunner(s: Setup): Runner {
  const runner = new Runner({
    topology: s.topology,
    inventory: s.inventory,
    providers: s.world,
    journal: s.journal,
    monitor: s.monitor,
    log: silentLogger(),
    saveInventory: () => {
      s.saved = s.inventory.all();
    },
  });
  runner.on("step-start", (e: StepEvent) => {
    s.current = e.step;
  });
  runner.on("step-end", () => {
    s.current = null;
  });
  return runner;
}

function restart(s: Setup): void {
  s.inventory = new Inventory(s.topology, s.saved);
  s.current = null;
  s.runner = newRunner(s);
}

const META = { diagnosis: "DeadPrimary" };

/** The playbook's failed host, killed (a dead machine is what the playbooks recover). */
const CASES = [
  { name: "failed_redis", playbook: () => failedRedis("redis1"), kill: "redis1" },
  { name: "failed_haproxy", playbook: () => failedHaproxy("haproxy1"), kill: "haproxy1" },
] as const;

async function records(s: Setup): Promise<JournalRecord[]> {
  return s.journal.read();
}

async function endOf(s: Setup) {
  const end = (await records(s)).filter((r) => r.type === "recovery-end");
  assert.equal(end.length, 1, "exactly one recovery-end record");
  return end[0] as Extract<JournalRecord, { type: "recovery-end" }>;
}

function rollbacks(rs: readonly JournalRecord[]) {
  return rs.filter((r): r is Extract<JournalRecord, { type: "rollback" }> => r.type === "rollback");
}

/** The attempts of a step that started: a start written ahead (see the runner's RunJournal.plan) once it has an end. */
function stepStarts(rs: readonly JournalRecord[], step: string): number[] {
  const ended = (id: string) => rs.some((e) => e.type === "step-end" && e.id === id && e.step === step);
  return rs.flatMap((r) => (r.type === "step-start" && r.step === step && (r.ahead !== true || ended(r.id)) ? [r.attempt] : []));
}

/** Writes and monitoring switches, in order: the runbook's effects. */
const actions = (s: Setup) => s.world.calls.filter((c) => isWrite(c) || isMonitorCall(c));

function indexOf(list: readonly string[], call: string): number {
  const i = list.indexOf(call);
  assert.ok(i >= 0, `expected the call '${call}' in:\n  ${list.join("\n  ")}`);
  return i;
}

/** The observable state: the world, where failoverd believes the hosts are, and who is unmonitored. */
function state(s: Setup) {
  return { world: s.world.snapshot(), inventory: s.inventory.all(), unmonitored: [...s.monitor.unmonitored].sort() };
}

/** A happy run of each playbook: the calls each step makes, the journal's writes, and the final state. */
async function happyTrace(c: (typeof CASES)[number]) {
  const inner = new MemoryJournal();
  let appends = 0;
  const journal: Journal = {
    append: (r) => inner.appendAll([r]).finally(() => appends++),
    appendAll: (rs) => inner.appendAll(rs).finally(() => appends++),
    read: () => inner.read(),
  };
  const s = setup({ kill: [c.kill], journal });
  // A step's calls: from its start to its end, or to the next step's start (a step whose start was written ahead
  // starts before the end of the one before it is told: the ends are told together, once written).
  const byStep = new Map<string, string[]>();
  let current: string | null = null;
  let from = 0;
  const close = () => {
    if (current !== null) byStep.set(current, s.world.calls.slice(from));
    current = null;
  };
  s.runner.on("step-start", (e: StepEvent) => {
    close();
    current = e.step;
    from = s.world.calls.length;
  });
  s.runner.on("step-end", (e: StepEvent) => {
    if (e.step === current) close();
  });
  const outcome = await s.runner.run(c.playbook(), META);
  assert.equal(outcome, "succeeded", `${c.name}: the happy run must succeed to serve as a reference`);
  return { byStep, appends, final: state(s) };
}

type Trace = Awaited<ReturnType<typeof happyTrace>>;
const TRACES = new Map<string, Trace>(await Promise.all(CASES.map(async (c) => [c.name, await happyTrace(c)] as const)));

function traceOf(name: string) {
  const t = TRACES.get(name);
  assert.ok(t);
  return t;
}

// ---------------------------------------------------------------------------------------------------------------
// failed_redis: the runbook order
// ---------------------------------------------------------------------------------------------------------------

describe("failed_redis", () => {
  test("redis1 held the primaries and died: fence everywhere, promote, terminate, launch, replicate, register, monitor", async () => {
    const s = setup({ kill: ["redis1"] });
    const outcome = await s.runner.run(failedRedis("redis1"), META);
    assert.equal(outcome, "succeeded");

    const a = actions(s);
    assert.equal(a[0], "monitor.unmonitor redis1", "unmonitor comes first");
    assert.equal(a[a.length - 1], "monitor.monitor redis1", "monitor comes last");

    const promotes = a.filter((c) => c.startsWith("redis.promote"));
    assert.deepEqual([...promotes].sort(), [`redis.promote ${R2}:9001`, `redis.promote ${R2}:9002`]);
    const firstPromote = a.indexOf(promotes[0]!);
    const lastPromote = Math.max(...promotes.map((p) => a.indexOf(p)));
    for (const admin of HAPROXY_ADMINS) {
      for (const p of PORTS) {
        assert.ok(indexOf(a, `haproxy.setState ${admin} be_redis_${p} redis1 maint`) < firstPromote, `fenced on ${admin} before promoting`);
        assert.ok(indexOf(a, `haproxy.shutdownSessions ${admin} be_redis_${p} redis1`) < firstPromote, `sessions shut on ${admin} before promoting`);
      }
    }
    const terminate = indexOf(a, `compute.terminate i-redis1-0 redis1 ${R1}`);
    assert.ok(terminate > lastPromote, "terminate after the promotion");
    const launch = indexOf(a, "compute.launch redis1 redis 9001,9002");
    assert.ok(launch > terminate, "launch after terminate");
    assert.equal(a.filter((c) => c.startsWith("compute.launch")).length, 1);

    const replacement = s.world.machineOf("redis1");
    assert.ok(replacement && replacement.id !== "i-redis1-0");
    const fresh = replacement.address;
    const replicates = PORTS.map((p) => indexOf(a, `redis.replicate ${fresh}:${p} ${R2}:${p}`));
    for (const r of replicates) assert.ok(r > launch, "replicate after launch");
    for (const admin of HAPROXY_ADMINS) {
      for (const p of PORTS) {
        assert.ok(indexOf(a, `haproxy.setAddr ${admin} be_redis_${p} redis1 ${fresh} ${p}`) > Math.max(...replicates), "register after sync");
      }
    }

    // The world after: redis2 primary, the new servers its replicas in sync, every HAProxy routing to the new address.
    assert.equal(s.world.isMachineRunning("i-redis1-0"), false, "the failed machine is terminated");
    for (const p of PORTS) {
      assert.equal(s.world.redisAt(R2, p)?.role, "primary");
      assert.deepEqual(s.world.redisAt(fresh, p), { role: "replica", primary: `${R2}:${p}`, offset: 1000 });
    }
    for (const admin of HAPROXY_ADMINS) {
      const [address = "", port = ""] = admin.split(":");
      const rows = s.world.rowsAt(address, Number(port)).filter((r) => r.server === "redis1");
      assert.equal(rows.length, 2);
      for (const r of rows) assert.deepEqual([r.address, r.inMaint], [fresh, false]);
    }
    const placed = s.inventory.get("redis1");
    assert.deepEqual([placed.address, placed.machineId, placed.generation], [fresh, replacement.id, 1]);
    assert.deepEqual(s.saved.find((p) => p.host === "redis1")?.address, fresh, "the new placement was persisted");
    assert.deepEqual([...s.monitor.unmonitored], []);

    const rs = await records(s);
    const ended = rs.flatMap((r) => (r.type === "step-end" && r.ok ? [r.step] : []));
    assert.deepEqual(ended, failedRedis("redis1").steps.map((x) => x.name), "every step ended well, in playbook order");
    assert.deepEqual(unfinished(rs), []);
    assert.equal(summarize(rs)[0]?.outcome, "succeeded");
  });

  test("redis1 held only replicas: nothing is promoted, the machine is still rebuilt and registered", async () => {
    const s = setup({ kill: ["redis1"], primaries: { 9001: "redis2", 9002: "redis2" } });
    assert.equal(await s.runner.run(failedRedis("redis1"), { diagnosis: "DeadReplica" }), "succeeded");
    const a = actions(s);
    assert.deepEqual(a.filter((c) => c.startsWith("redis.promote")), []);
    const fresh = s.world.machineOf("redis1")?.address;
    assert.ok(fresh && fresh !== R1);
    indexOf(a, `compute.terminate i-redis1-0 redis1 ${R1}`);
    indexOf(a, "compute.launch redis1 redis 9001,9002");
    for (const p of PORTS) indexOf(a, `redis.replicate ${fresh}:${p} ${R2}:${p}`);
    for (const admin of HAPROXY_ADMINS) for (const p of PORTS) indexOf(a, `haproxy.setAddr ${admin} be_redis_${p} redis1 ${fresh} ${p}`);
    const promote = summarize(await records(s))[0]?.completed.get("promote") as Record<string, unknown>;
    assert.deepEqual({ ...promote, confirmed: undefined, confirmedAt: undefined }, { primary: "redis2", promoted: [], alreadyPrimary: [9001, 9002], confirmed: undefined, confirmedAt: undefined });
  });

  test("mixed roles (redis1 primary on 9001, replica on 9002): only 9001 is promoted", async () => {
    const s = setup({ kill: ["redis1"], primaries: { 9001: "redis1", 9002: "redis2" } });
    assert.equal(await s.runner.run(failedRedis("redis1"), META), "succeeded");
    assert.deepEqual(
      actions(s).filter((c) => c.startsWith("redis.promote")),
      [`redis.promote ${R2}:9001`],
    );
    const promote = summarize(await records(s))[0]?.completed.get("promote") as Record<string, unknown>;
    assert.deepEqual({ ...promote, confirmed: undefined, confirmedAt: undefined, dataLoss: undefined }, { primary: "redis2", promoted: [9001], alreadyPrimary: [9002], confirmed: undefined, confirmedAt: undefined, dataLoss: undefined });
    for (const p of PORTS) assert.equal(s.world.redisAt(R2, p)?.role, "primary");
  });

  test("a fence refused by haproxy1 is undone on haproxy2 too (a rollback leaves no server in maint)", async () => {
    const s = setup({ kill: ["redis1"] });
    s.world.failOn((c) => c === "haproxy.setState 127.0.2.1:9999 be_redis_9001 redis1 maint", new ProviderError("injected: HAProxy refused", false), 1);
    assert.equal(await s.runner.run(failedRedis("redis1"), META), "rolled-back");
    // Precondition of the scenario: haproxy2 was fenced in parallel before the step failed.
    indexOf(s.world.calls, "haproxy.setState 127.0.2.2:9999 be_redis_9001 redis1 maint");
    for (const admin of HAPROXY_ADMINS) {
      const [address = "", port = ""] = admin.split(":");
      for (const r of s.world.rowsAt(address, Number(port)).filter((x) => x.server === "redis1")) {
        assert.equal(r.inMaint, false, `redis1 is back in service on ${admin} (${r.backend}) after the rollback`);
      }
    }
  });

  test("a new address refused on register: the server stays in maint, never ready at the dead machine's address", async () => {
    const s = setup({ kill: ["redis1"] });
    s.world.failOn((c) => c.startsWith("haproxy.setAddr 127.0.2.1:9999 be_redis_9001 redis1 "), new HaproxyCommandError("set server", "Invalid addr."));
    assert.equal(await s.runner.run(failedRedis("redis1"), META), "failed");
    // Precondition of the scenario: the other port's address went through in the same batch (HAProxy runs them all).
    assert.ok(s.world.calls.some((c) => c.startsWith("haproxy.setAddr 127.0.2.1:9999 be_redis_9002 redis1 ")), "9002's address was sent");
    assert.ok(!s.world.calls.some((c) => c.startsWith("haproxy.setState 127.0.2.1:9999") && c.endsWith("redis1 ready")), "no ready on haproxy1");
    for (const r of s.world.rowsAt("127.0.2.1", 9999).filter((x) => x.server === "redis1")) {
      assert.equal(r.inMaint, true, `redis1 stays in maint on haproxy1 (${r.backend})`);
    }
  });

  test("routing lost after the promotion: the retry finds both servers primary and routes them still", async () => {
    const s = setup({ kill: ["redis1"] });
    const hook = s.world.failOn((c) => c === "haproxy.setState 127.0.2.1:9999 be_redis_9001 redis2 ready", new ProbeError("reset", "connection closed"), 1);
    assert.equal(await s.runner.run(failedRedis("redis1"), META), "succeeded");
    assert.equal(hook.hits, 1, "precondition: the first attempt's routing on haproxy1 was lost");
    assert.deepEqual(stepStarts(await records(s), "promote"), [1, 2]);
    const promote = summarize(await records(s))[0]?.completed.get("promote") as Record<string, unknown>;
    assert.deepEqual({ ...promote, confirmed: undefined, confirmedAt: undefined }, { primary: "redis2", promoted: [], alreadyPrimary: [9001, 9002], confirmed: undefined, confirmedAt: undefined });
    for (const p of PORTS) {
      assert.equal(
        s.world.calls.filter((c) => c === `haproxy.setHealth 127.0.2.1:9999 be_redis_${p} redis2 up`).length,
        1,
        `be_redis_${p}: redis2 forced up on haproxy1 by the retry`,
      );
    }
  });

  test("a slow ROLE answer from the survivor, once: asked again, and the recovery goes on (no rollback)", async () => {
    const s = setup({ kill: ["redis1"] });
    const hook = s.world.failOn((c) => c === `redis.role ${R2}:9001`, new ProbeError("timeout", "no answer within the deadline"), 1);
    assert.equal(await s.runner.run(failedRedis("redis1"), META), "succeeded");
    assert.equal(hook.hits, 1);
    assert.deepEqual(rollbacks(await records(s)), []);
    for (const p of PORTS) assert.equal(s.world.redisAt(R2, p)?.role, "primary");
  });

  test("a promotion that fails after promoting one server goes forward: the failed host stays fenced", async () => {
    const s = setup({ kill: ["redis1"] });
    s.world.failOn((c) => c === `redis.promote ${R2}:9001`, new ProviderError("injected: REPLICAOF NO ONE failed", false), 1);
    const outcome = await s.runner.run(failedRedis("redis1"), META);
    // Precondition of the scenario: the other port's promotion went through.
    assert.equal(s.world.redisAt(R2, 9002)?.role, "primary", "redis2:9002 was promoted while 9001 failed");
    assert.equal(outcome, "failed", "a replica is already primary: rolling back the fence would let two primaries take writes");
    assert.deepEqual(rollbacks(await records(s)), []);
    for (const admin of HAPROXY_ADMINS) {
      const [address = "", port = ""] = admin.split(":");
      for (const r of s.world.rowsAt(address, Number(port)).filter((x) => x.server === "redis1")) {
        assert.equal(r.inMaint, true, `redis1 stays in maint on ${admin} (${r.backend})`);
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------
// A failure injected at every step, generated from the playbooks' step lists
// ---------------------------------------------------------------------------------------------------------------

/** The index of the point-of-no-return step: a failure at or after it goes forward only. */
function pointOfNoReturn(p: Playbook): number {
  const i = p.steps.findIndex((x) => x.pointOfNoReturn);
  return i < 0 ? p.steps.length : i;
}

async function assertOutcomeAt(s: Setup, playbook: Playbook, index: number, outcome: RunOutcome, initial: ReturnType<typeof state>) {
  const step = playbook.steps[index]!;
  const rs = await records(s);
  const before = playbook.steps.slice(0, index).map((x) => x.name);
  if (index < pointOfNoReturn(playbook)) {
    assert.equal(outcome, "rolled-back", `a failure at ${step.name} (before the point of no return) rolls back`);
    const expected = playbook.steps
      .slice(0, index)
      .filter((x) => x.rollback)
      .map((x) => x.name)
      .reverse();
    const rb = rollbacks(rs);
    assert.deepEqual(
      rb.filter((r) => before.includes(r.step)).map((r) => r.step),
      expected,
      "every completed step with a rollback is undone, last first",
    );
    for (const r of rb) assert.equal(r.ok, true, `rollback of ${r.step} succeeded (${r.error ?? ""})`);
    assert.deepEqual(state(s), initial, "a rolled-back recovery leaves the world, the inventory and the monitoring as it found them");
    if (before.includes("unmonitor")) {
      assert.equal(actions(s).at(-1), `monitor.monitor ${playbook.host}`, "monitoring is switched back on");
    }
  } else {
    assert.equal(outcome, "failed", `a failure at ${step.name} (at or after the point of no return) goes forward only`);
    assert.deepEqual(rollbacks(rs), [], "forward only: no rollback");
    assert.ok(s.monitor.unmonitored.has(playbook.host), "the host stays unmonitored for an operator");
  }
  const end = await endOf(s);
  assert.equal(end.outcome, outcome);
  assert.ok(end.error?.startsWith(`${step.name}: `), `the recovery's error names the step: ${end.error}`);
  assert.deepEqual(unfinished(rs), [], "an ended recovery is not resumed");
}

for (const c of CASES) {
  describe(`${c.name}: a failure injected at every step`, () => {
    const steps = c.playbook().steps;
    for (const [index, step] of steps.entries()) {
      test(`step ${index + 1} '${step.name}': its first write throws a non-retryable ProviderError`, async () => {
        const s = setup({ kill: [c.kill] });
        const initial = state(s);
        const message = `injected failure at ${step.name}`;
        const hook = s.world.failOn(
          (call) => s.current === step.name && (isWrite(call) || isMonitorCall(call)),
          new ProviderError(message, false),
          1,
        );
        const playbook = c.playbook();
        const outcome = await s.runner.run(playbook, META);
        assert.equal(hook.hits, 1, `step ${step.name} made no write or monitoring call to fail: give it a fault of its own`);
        const rs = await records(s);
        assert.deepEqual(stepStarts(rs, step.name), [1], "a non-retryable error is not retried");
        assert.equal((await endOf(s)).error, `${step.name}: ${message}`);
        for (const later of steps.slice(index + 1)) assert.deepEqual(stepStarts(rs, later.name), [], `${later.name} never starts`);
        await assertOutcomeAt(s, playbook, index, outcome, initial);
      });
    }

    // Steps whose effects can be seen again: writes that silently do nothing must be caught by the step's own check.
    // (A launch is confirmed by the provider's contract: it resolves once the machine runs.)
    const observable = (call: string) => isWrite(call) && !call.startsWith("compute.launch");
    const trace = traceOf(c.name);
    for (const [index, step] of steps.entries()) {
      if (!(trace.byStep.get(step.name) ?? []).some(observable)) continue;
      test(`step ${index + 1} '${step.name}': its writes silently do nothing, so its verification fails`, async () => {
        const s = setup({ kill: [c.kill] });
        const initial = state(s);
        const hook = s.world.ignoreOn((call) => s.current === step.name && observable(call));
        const playbook = c.playbook();
        const outcome = await s.runner.run(playbook, META);
        assert.ok(hook.hits > 0);
        const rs = await records(s);
        const attempts = s.topology.config.recovery.stepAttempts;
        assert.deepEqual(stepStarts(rs, step.name), Array.from({ length: attempts }, (_, i) => i + 1), "a failed verification is retried");
        assert.match((await endOf(s)).error ?? "", /could not confirm|gave up waiting|did not finish within/);
        await assertOutcomeAt(s, playbook, index, outcome, initial);
      });
    }
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Retries
// ---------------------------------------------------------------------------------------------------------------

describe("retries", () => {
  test("a launch that started its machine but missed its deadline: the retry finishes that machine (ready), never a second", async () => {
    const s = setup({ kill: ["redis1"] });
    const launch = s.world.compute.launch;
    let first = true;
    s.world.compute.launch = async (req) => {
      const m = await launch(req);
      if (first) {
        first = false;
        throw new ProviderError(`instance ${m.id} for ${req.host} was launched but did not run before the step's deadline`, true, "Deadline");
      }
      return m;
    };
    assert.equal(await s.runner.run(failedRedis("redis1"), META), "succeeded");
    assert.deepEqual(stepStarts(await records(s), "launch"), [1, 2]);
    const m = s.world.machineOf("redis1");
    assert.ok(m && m.id !== "i-redis1-0");
    assert.deepEqual(
      s.world.writes().filter((c) => c.startsWith("compute.")),
      ["compute.terminate i-redis1-0 redis1 127.0.1.1", "compute.launch redis1 redis 9001,9002", `compute.ready ${m.id} redis1`],
    );
    const launched = summarize(await records(s))[0]?.completed.get("launch");
    assert.deepEqual(launched, { machineId: m.id, address: m.address, reused: true });
  });

  test("a retryable error on launch, once: the step is attempted twice and the recovery succeeds", async () => {
    const s = setup({ kill: ["redis1"] });
    const hook = s.world.failOn((c) => c.startsWith("compute.launch"), new ProviderError("InsufficientInstanceCapacity", true), 1);
    assert.equal(await s.runner.run(failedRedis("redis1"), META), "succeeded");
    assert.equal(hook.hits, 1);
    assert.deepEqual(stepStarts(await records(s), "launch"), [1, 2]);
    assert.equal(s.world.calls.filter((c) => c.startsWith("compute.launch")).length, 2);
    assert.equal(s.world.writes().filter((c) => c.startsWith("compute.launch")).length, 2);
    const m = s.world.machineOf("redis1");
    assert.ok(m && m.id !== "i-redis1-0");
    assert.equal(s.inventory.addressOf("redis1"), m.address);
  });

  for (const stepAttempts of [2, 3]) {
    test(`a retryable error that persists: launch is attempted recovery.stepAttempts (${stepAttempts}) times, then the recovery fails`, async () => {
      const s = setup({ kill: ["redis1"], recovery: { stepAttempts } });
      s.world.failOn((c) => c.startsWith("compute.launch"), new ProviderError("RequestLimitExceeded", true));
      assert.equal(await s.runner.run(failedRedis("redis1"), META), "failed");
      const expected = Array.from({ length: stepAttempts }, (_, i) => i + 1);
      assert.deepEqual(stepStarts(await records(s), "launch"), expected);
      assert.equal(s.world.calls.filter((c) => c.startsWith("compute.launch")).length, stepAttempts);
      assert.match((await endOf(s)).error ?? "", /^launch: RequestLimitExceeded/);
    });
  }
});

// ---------------------------------------------------------------------------------------------------------------
// The journal's writes: a step's end goes with the next step's start
// ---------------------------------------------------------------------------------------------------------------

/** A journal that keeps each write (an append of several records is one) and how far the world's calls were. */
class WritesJournal extends MemoryJournal {
  readonly writes: { readonly records: readonly JournalRecord[]; readonly calls: number }[] = [];
  world: RecordingProviders | null = null;
  override async appendAll(rs: readonly JournalRecord[]): Promise<void> {
    await super.appendAll(rs);
    this.writes.push({ records: rs, calls: this.world?.calls.length ?? 0 });
  }
}

/** What one write held, as `type step` words. */
const wrote = (rs: readonly JournalRecord[]) =>
  rs.map((r) => ("step" in r ? `${r.type} ${r.step}${r.type === "step-start" && r.ahead === true ? " (ahead)" : ""}` : r.type)).join(" + ");

/** The steps whose start is written ahead: those after the first and before the point of no return. */
const aheadOf = (p: Playbook) => p.steps.slice(1, Math.max(1, p.steps.findIndex((x) => x.pointOfNoReturn)));

/**
 * The playbook with every step checking, when it acts, what the journal holds: its own start; and, from the point of
 * no return on, the end of every step before it (a step acts only once the last one is recorded as ended). A step
 * whose start was written ahead acts once the steps before it ran: their ends go with the point of no return's start.
 */
function checkedPlaybook(p: Playbook, journal: MemoryJournal): Playbook {
  const ahead = new Set(aheadOf(p).map((x) => x.name));
  return {
    ...p,
    steps: p.steps.map((step, i) => ({
      ...step,
      run: async (ctx: StepContext) => {
        if (i === 0 || ahead.has(step.name)) {
          // The first step's start goes with the starts written ahead, after them in the same write.
          assert.ok(journal.records.some((r) => r.type === "step-start" && r.step === step.name && (i === 0 || r.ahead === true)), `${step.name}'s start is written`);
          return step.run(ctx);
        }
        const last = journal.records.at(-1);
        assert.equal(last?.type === "step-start" && last.step, step.name, `${step.name} acts after its start is written`);
        for (const before of p.steps.slice(0, i)) {
          assert.ok(summarize(journal.records)[0]?.completed.has(before.name), `${step.name} acts after ${before.name}'s end is written`);
        }
        return step.run(ctx);
      },
    })),
  };
}

/** The records (and the events) of a whole successful run, in order: the starts ahead, then their ends together. */
function runOrder(p: Playbook): string[] {
  const ahead = aheadOf(p).map((x) => x.name);
  const first = p.steps.slice(0, 1 + ahead.length).map((x) => x.name);
  return [
    "recovery-start",
    ...first.map((x) => `step-start ${x}`),
    ...first.map((x) => `step-end ${x}`),
    ...p.steps.slice(first.length).flatMap((x) => [`step-start ${x.name}`, `step-end ${x.name}`]),
    "recovery-end",
  ];
}

describe("the journal's writes", () => {
  test("failed_redis: two writes before the promotion acts: the starts before it ahead, then their ends with its start", async () => {
    const journal = new WritesJournal();
    const s = setup({ kill: ["redis1"], journal });
    journal.world = s.world;
    assert.equal(await s.runner.run(failedRedis("redis1"), META), "succeeded");
    const promoted = s.world.calls.findIndex((c) => c.startsWith("redis.promote"));
    assert.ok(promoted > 0);
    assert.deepEqual(
      journal.writes.filter((w) => w.calls <= promoted).map((w) => wrote(w.records)),
      [
        "recovery-start + step-start unmonitor + step-start fence (ahead) + step-start hold (ahead)",
        "step-end unmonitor + step-end fence + step-end hold + step-start promote",
      ],
      "two fenced etcd transactions before the promotion (one per step: four; one per record: eight)",
    );
    assert.equal(wrote(journal.writes.at(-1)!.records), "step-end monitor + recovery-end", "the last step's end goes with the recovery's end");
    assert.equal(journal.writes.length, failedRedis("redis1").steps.length - 1);
    // The history says when each really started and ended, in order.
    const steps = summarize(journal.records)[0]!.steps;
    assert.deepEqual(steps.map((x) => x.step), failedRedis("redis1").steps.map((x) => x.name));
    for (const [i, x] of steps.entries()) {
      assert.ok(x.endedAt !== undefined && x.startedAt <= x.endedAt, `${x.step} ends after it starts`);
      if (i > 0) assert.ok(x.startedAt >= steps[i - 1]!.endedAt!, `${x.step} starts after ${steps[i - 1]!.step} ended, as the history says`);
    }
  });

  for (const c of CASES) {
    test(`${c.name}: every step acts only once its start and every earlier step's end are written; events follow the journal`, async () => {
      const journal = new MemoryJournal();
      const s = setup({ kill: [c.kill], journal });
      const events: string[] = [];
      for (const e of ["recovery-start", "step-start", "step-end", "recovery-end"]) {
        s.runner.on(e, (x: { step?: string; recoveryId: string }) => {
          events.push(x.step ? `${e} ${x.step}` : e);
          const written = journal.records.map((r) => ("step" in r ? `${r.type} ${r.step}` : r.type));
          assert.ok(written.includes(events.at(-1)!), `${events.at(-1)} is told once written`);
        });
      }
      assert.equal(await s.runner.run(checkedPlaybook(c.playbook(), journal), META), "succeeded");
      assert.deepEqual(events, runOrder(c.playbook()), "told in the journal's order");
      assert.deepEqual(
        journal.records.map((r) => ("step" in r ? `${r.type} ${r.step}` : r.type)),
        runOrder(c.playbook()),
        "the same records in the same order as one write each",
      );
    });
  }

  test("a failed attempt's end is written at once; the retry's start and the step's end after it go as before", async () => {
    const journal = new WritesJournal();
    const s = setup({ kill: ["redis1"], journal });
    s.world.failOn((c) => c.startsWith("compute.launch"), new ProviderError("InsufficientInstanceCapacity", true), 1);
    assert.equal(await s.runner.run(failedRedis("redis1"), META), "succeeded");
    const launch = journal.writes.map((w) => wrote(w.records)).filter((w) => w.includes("launch"));
    assert.deepEqual(launch, ["step-end terminate + step-start launch", "step-end launch", "step-start launch", "step-end launch + step-start replicate"]);
    assert.deepEqual(stepStarts(journal.records, "launch"), [1, 2]);
    assert.deepEqual(unfinished(journal.records), []);
  });

  test("a failure before the point of no return: the rollback and the end follow the failed step's end", async () => {
    const journal = new WritesJournal();
    const s = setup({ kill: ["redis1"], journal });
    s.world.failOn((c) => c === "haproxy.setState 127.0.2.1:9999 be_redis_9001 redis1 maint", new ProviderError("injected: HAProxy refused", false), 1);
    assert.equal(await s.runner.run(failedRedis("redis1"), META), "rolled-back");
    const writes = journal.writes.map((w) => wrote(w.records));
    assert.deepEqual(writes.slice(0, 2), ["recovery-start + step-start unmonitor + step-start fence (ahead) + step-start hold (ahead)", "step-end unmonitor + step-end fence"]);
    assert.equal(writes.at(-1), "recovery-end");
    const summary = summarize(journal.records)[0];
    assert.equal(summary?.outcome, "rolled-back");
    assert.deepEqual(summary?.steps.map((x) => `${x.step} ${x.ok}`), ["unmonitor true", "fence false"], "hold, written ahead, never ran: not shown");
    assert.deepEqual(
      rollbacks(journal.records).map((r) => r.step),
      ["fence", "unmonitor"],
    );
  });

  test("a shutdown between steps writes the held end first; the resumed run's first write is the next step's start alone", async () => {
    const journal = new WritesJournal();
    const s = setup({ kill: ["redis1"], journal });
    // Asked to stop while terminate runs: terminate finishes, its end is written, launch does not start.
    const stop = new AbortController();
    const runner = new Runner({ topology: s.topology, inventory: s.inventory, providers: s.world, journal, monitor: s.monitor, log: silentLogger(), shutdown: stop.signal });
    runner.on("step-start", (e: StepEvent) => e.step === "terminate" && stop.abort());
    assert.equal(await runner.run(failedRedis("redis1"), META), "interrupted");
    assert.equal(wrote(journal.writes.at(-1)!.records), "step-end terminate", "written alone: there is no next start to go with");
    const pending = unfinished(journal.records);
    assert.equal(pending.length, 1);
    assert.ok(pending[0]!.completed.has("terminate"), "the resume does not run terminate again");
    const before = journal.writes.length;
    assert.equal(await s.runner.run(failedRedis("redis1"), META, pending[0]), "succeeded");
    assert.equal(wrote(journal.writes[before]!.records), "step-start launch");
    assert.deepEqual(unfinished(journal.records), []);
    assert.equal(s.world.calls.filter((c) => c.startsWith("compute.terminate")).length, 1);
    assert.equal(s.world.calls.filter((c) => c.startsWith("compute.launch")).length, 1);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Idempotence: a crash at every journal write, then a resume; every step run twice
// ---------------------------------------------------------------------------------------------------------------

class SimulatedCrash extends Error {
  override name = "SimulatedCrash";
}

/**
 * A journal whose `crashAt`-th write (1-based; an append of several records is one write) fails, and every write
 * after it, as if the process had died.
 */
class CrashingJournal implements Journal {
  private readonly inner = new MemoryJournal();
  private appends = 0;
  private crashed = false;
  constructor(private crashAt: number | null) {}
  append(record: JournalRecord): Promise<void> {
    return this.appendAll([record]);
  }
  async appendAll(records: readonly JournalRecord[]): Promise<void> {
    if (this.crashed) throw new SimulatedCrash("the process is gone");
    this.appends++;
    if (this.appends === this.crashAt) {
      this.crashed = true;
      throw new SimulatedCrash(`crash before journal write ${this.appends} (${records.map((r) => r.type).join(" + ")})`);
    }
    await this.inner.appendAll(records);
  }
  read(): Promise<JournalRecord[]> {
    return this.inner.read();
  }
  /** The daemon starts again. */
  restart(): void {
    this.crashed = false;
    this.crashAt = null;
  }
}

for (const c of CASES) {
  describe(`${c.name}: a crash at every journal write, then a resume`, () => {
    const { appends, final } = traceOf(c.name);
    for (let n = 1; n <= appends; n++) {
      test(`crash at journal write ${n} of ${appends}`, async () => {
        const journal = new CrashingJournal(n);
        const s = setup({ kill: [c.kill], journal });
        await assert.rejects(s.runner.run(c.playbook(), META), SimulatedCrash);
        journal.restart();
        restart(s);
        const pending = unfinished(await journal.read());
        if (n === 1) {
          assert.deepEqual(pending, [], "no recovery-start was written: nothing to resume");
          assert.deepEqual(actions(s), [], "and nothing was done");
          return;
        }
        assert.equal(pending.length, 1, "the interrupted recovery is unfinished");
        const outcome = await s.runner.run(c.playbook(), META, pending[0]);
        assert.equal(outcome, "succeeded");
        assert.equal(s.world.calls.filter((x) => x.startsWith("compute.launch")).length, 1, "never a second machine");
        assert.deepEqual(state(s), final, "the resumed recovery converges on the same world as an uninterrupted one");
        const rs = await journal.read();
        assert.deepEqual(unfinished(rs), []);
        assert.deepEqual(
          rs.filter((r) => r.type === "recovery-start").map((r) => r.id),
          [pending[0]!.id],
          "the resume continues the same recovery, it does not start another",
        );
      });
    }
  });

  test(`${c.name}: every step run twice leaves the world as running it once did`, async () => {
    const s = setup({ kill: [c.kill] });
    const playbook = c.playbook();
    const results = new Map<string, unknown>();
    for (const step of playbook.steps) {
      const first = await step.run(contextFor(s, playbook, results));
      const once = state(s);
      await step.run(contextFor(s, playbook, results));
      assert.deepEqual(state(s), once, `running ${step.name} again changed the world`);
      results.set(step.name, first);
    }
    assert.deepEqual(state(s), traceOf(c.name).final, "and the end state is the runner's");
  });
}

/** A StepContext like the runner's, without a runner: for calling a step directly. */
function contextFor(s: Setup, playbook: Playbook, results: ReadonlyMap<string, unknown>): StepContext {
  return {
    topology: s.topology,
    inventory: s.inventory,
    providers: s.world,
    monitor: s.monitor,
    log: silentLogger(),
    signal: new AbortController().signal,
    dryRun: false,
    host: playbook.host,
    recovery: { id: "direct", targets: [], acceptDataLoss: false },
    result: <T>(step: string) => results.get(step) as T | undefined,
    place: (host, address, machineId) => {
      s.inventory.place(host, address, machineId);
    },
    verify: async (what, check) => {
      if (!(await check())) throw new Error(`could not confirm that ${what}`);
    },
    waitFor: async (what, check) => {
      let why = "";
      for (let i = 0; i < 100; i++) {
        const r = await check();
        if (r === true) return;
        why = r;
      }
      throw new Error(`gave up waiting until ${what} (${why})`);
    },
    read: (fn) => fn(),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// whyNotPromotable
// ---------------------------------------------------------------------------------------------------------------

describe("whyNotPromotable", () => {
  const failed = { address: R1, port: 9001 };
  const replicaOf = (address: string, port: number) =>
    ({ role: "replica", primary: { address, port }, linkState: "connect", offset: 10 }) as const;
  const table = [
    { name: "unreachable", role: undefined, why: /redis2:9001 cannot be reached/ },
    { name: "replica of another server", role: replicaOf("127.0.1.9", 9001), why: /replicates 127\.0\.1\.9:9001, not the failed 127\.0\.1\.1:9001/ },
    { name: "replica of the failed address on another port", role: replicaOf(R1, 9002), why: /replicates 127\.0\.1\.1:9002/ },
    { name: "replica of the failed server", role: replicaOf(R1, 9001), why: null },
    { name: "already primary", role: { role: "primary", offset: 10, replicas: [] } as const, why: null },
  ];
  for (const row of table) {
    test(row.name, () => {
      const why = whyNotPromotable("redis2:9001", row.role, failed);
      if (row.why === null) assert.equal(why, null);
      else assert.match(why ?? "<null>", row.why);
    });
  }
});

// ---------------------------------------------------------------------------------------------------------------
// failed_haproxy
// ---------------------------------------------------------------------------------------------------------------

describe("failed_haproxy", () => {
  test("haproxy1 died: terminate, launch, configure like haproxy2, point DNS and the app proxy at it, monitor", async () => {
    const s = setup({ kill: ["haproxy1"] });
    assert.equal(await s.runner.run(failedHaproxy("haproxy1"), { diagnosis: "HaproxyDown" }), "succeeded");
    const a = actions(s);
    assert.equal(a[0], "monitor.unmonitor haproxy1");
    assert.equal(a[a.length - 1], "monitor.monitor haproxy1");
    const terminate = indexOf(a, "compute.terminate i-haproxy1-0 haproxy1 127.0.2.1");
    const launch = indexOf(a, "compute.launch haproxy1 haproxy");
    assert.ok(launch > terminate);
    const m = s.world.machineOf("haproxy1");
    assert.ok(m && m.id !== "i-haproxy1-0");
    const configure = indexOf(a, `proxies.applyConfig ${m.id} haproxy1 reload=true`);
    assert.ok(configure > launch);
    const text = s.world.configOf(m.id) ?? "";
    assert.ok(text.includes(`bind ${m.address}:8001`), "the new config binds the new address");
    assert.ok(text.includes(`ipv4@${m.address}:9999`), "and its admin socket");
    const dns = indexOf(a, `dns.upsert haproxy1.unit.internal ${m.address}`);
    assert.ok(dns > configure);
    assert.equal(s.world.dnsRecord("haproxy1.unit.internal"), m.address);
    assert.equal(s.world.dnsRecord("haproxy2.unit.internal"), "127.0.2.2", "the survivor's record is untouched");
    for (const [listen, port] of [
      [7001, 8001],
      [7002, 8002],
    ]) {
      assert.ok(indexOf(a, `haproxy.setAddr 127.0.3.1:9999 be_relay_${listen} haproxy1 ${m.address} ${port}`) > dns);
    }
    const relays = s.world.rowsAt(APP_ADMIN.address, APP_ADMIN.port).filter((r) => r.server === "haproxy1");
    assert.equal(relays.length, 2);
    for (const r of relays) assert.deepEqual([r.address, r.inMaint], [m.address, false]);
    // The new HAProxy routes each frontend to the current primary.
    const rows = s.world.rowsAt(m.address, 9999);
    for (const p of PORTS) {
      assert.ok(rows.some((r) => r.backend === `be_redis_${p}` && r.server === "redis1" && r.isUp && !r.inMaint), `be_redis_${p} -> redis1`);
    }
    assert.equal(s.inventory.addressOf("haproxy1"), m.address);
    assert.equal(s.world.isMachineRunning("i-haproxy1-0"), false);
  });
  test("a new address refused on the app proxy: the relay is not forced up at the dead HAProxy's address", async () => {
    const s = setup({ kill: ["haproxy1"] });
    s.world.failOn((c) => c.startsWith("haproxy.setAddr 127.0.3.1:9999 be_relay_7001 haproxy1 "), new HaproxyCommandError("set server", "Invalid addr."));
    assert.equal(await s.runner.run(failedHaproxy("haproxy1"), { diagnosis: "HaproxyDown" }), "failed");
    // Precondition of the scenario: the other relay's address went through in the same batch.
    assert.ok(s.world.calls.some((c) => c.startsWith("haproxy.setAddr 127.0.3.1:9999 be_relay_7002 haproxy1 ")), "7002's address was sent");
    const forced = s.world.calls.filter((c) => /^haproxy\.set(State|Health) 127\.0\.3\.1:9999 \S+ haproxy1 (ready|up)$/.test(c));
    assert.deepEqual(forced, [], "nothing forced ready or up on the app proxy");
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Dry run
// ---------------------------------------------------------------------------------------------------------------

for (const c of CASES) {
  test(`${c.name} in dry-run: every write is described, none is made, the inventory is untouched`, async () => {
    const s = setup({ kill: [c.kill] });
    const before = state(s);
    const recorder = new DryRunRecorder();
    const journal = new MemoryJournal();
    const runner = new Runner({
      topology: s.topology,
      inventory: s.inventory,
      providers: dryRun(s.world, recorder),
      journal,
      monitor: s.monitor,
      log: silentLogger(),
      dryRun: true,
      saveInventory: () => assert.fail("a dry run persists nothing"),
    });
    assert.equal(await runner.run(c.playbook(), META), "succeeded");
    assert.deepEqual(s.world.writes(), [], "no write reached the providers");
    assert.ok(s.world.calls.length > 0, "reads pass through");
    assert.deepEqual(s.inventory.all(), before.inventory, "the inventory is unchanged");
    assert.deepEqual(s.world.snapshot(), before.world, "the world is unchanged");
    const described = recorder.actions.map((x) => x.description);
    assert.ok(described.some((d) => d.startsWith(`would terminate i-${c.kill}-0`)), described.join("\n"));
    assert.ok(described.some((d) => d.startsWith(`would launch a ${c.name === "failed_redis" ? "redis" : "haproxy"} machine for ${c.kill}`)));
    if (c.name === "failed_redis") {
      for (const p of PORTS) assert.ok(described.includes(`would send REPLICAOF NO ONE to ${R2}:${p}`));
    } else {
      assert.ok(described.some((d) => d.startsWith("would point haproxy1.unit.internal at")));
    }
    const rs = await journal.read();
    assert.equal(rs[0]?.type === "recovery-start" && rs[0].dryRun, true, "the journal marks the recovery as a dry run");
    assert.deepEqual(unfinished(rs), []);
  });
}
