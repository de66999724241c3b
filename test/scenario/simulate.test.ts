/**
 * Scenario tests on the real sandbox (redis-server, haproxy, the daemon as its own process), through the same code
 * path as `failoverd simulate`. Setup: the seed topology on 127.30.x.y. Fault: as named. Expectation: as named.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { simulate, type SimulateReport } from "../../src/simulate/scenario.ts";
import { assertAddressesFree, type TestTopology, testTopology } from "../helpers/sandbox.ts";

const REDIS_STEPS = ["unmonitor", "fence", "hold", "promote", "terminate", "launch", "replicate", "register", "converge", "monitor"];
const HAPROXY_STEPS = ["unmonitor", "terminate", "launch", "configure", "point-dns", "converge", "monitor"];

describe("simulate on the real sandbox", { timeout: 240_000 }, () => {
  let tt: TestTopology;
  before(() => {
    tt = testTopology({ net: 30 });
  });
  after(() => tt.cleanup());

  async function run(target: string, fault: "crash" | "hang", hangMs?: number): Promise<SimulateReport> {
    await assertAddressesFree(tt.topology);
    return simulate(tt.topology, { target, fault, warmupMs: 500, ...(hangMs ? { hangMs } : {}) });
  }

  function assertRecovered(r: SimulateReport, steps: readonly string[]) {
    assert.equal(r.recovered, true, `not recovered: ${r.why}`);
    assert.equal(r.lostAckedWrites, 0);
    assert.deepEqual(
      r.steps.map((s) => s.name),
      steps,
    );
    assert.ok(r.steps.every((s) => s.outcome === "ok"));
    assert.ok(r.ackedWrites > 0);
    assert.ok(r.redundancyRestoredMs !== null && r.redundancyRestoredMs > 0);
  }

  test("crash of the primary host redis1: failed_redis recovers, no acknowledged write lost, outage within budget + 500 ms", async () => {
    const r = await run("redis1", "crash");
    assertRecovered(r, REDIS_STEPS);
    assert.equal(r.diagnosis, "DeadPrimary");
    assert.equal(r.budgetMs, 600);
    assert.ok(r.outageMs <= r.budgetMs + 500, `outage ${r.outageMs} ms`);
  });

  test("crash of the replica host redis2: failed_redis rebuilds it without touching the primary", async () => {
    const r = await run("redis2", "crash");
    assertRecovered(r, REDIS_STEPS);
    assert.equal(r.diagnosis, "DeadReplica");
    // The primary kept serving: no gap close to the detection budget.
    assert.ok(r.outageMs < r.budgetMs, `outage ${r.outageMs} ms`);
  });

  test("crash of haproxy1 (the app's first choice): failed_haproxy rebuilds it and points DNS at it", async () => {
    const r = await run("haproxy1", "crash");
    assertRecovered(r, HAPROXY_STEPS);
    assert.equal(r.diagnosis, "HaproxyDown");
  });

  test("crash of haproxy2 (the backup): failed_haproxy rebuilds it", async () => {
    const r = await run("haproxy2", "crash");
    assertRecovered(r, HAPROXY_STEPS);
    assert.equal(r.diagnosis, "HaproxyDown");
  });

  test("hang of the primary longer than the budget: failover, not confirmed sooner than a hang can be, nothing lost", async () => {
    const r = await run("redis1", "hang", 3000);
    assertRecovered(r, REDIS_STEPS);
    assert.equal(r.diagnosis, "DeadPrimary");
    // A hang is only confirmed by timeouts: at least (fall - 1) intervals after the fault.
    assert.ok(r.detectMs !== null && r.detectMs >= 400, `detected after ${r.detectMs} ms`);
  });
});
