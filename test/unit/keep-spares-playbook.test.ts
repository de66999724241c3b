/**
 * failed_redis with recovery.failedMachine stop / quarantine and with a warm spare, against the recording providers:
 * the failed machine is kept (never terminated), the launch step takes the spare (no launch) and launches from the
 * image when the pool is empty or the spare cannot start.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ProviderError } from "../../src/errors.ts";
import { silentLogger } from "../../src/log.ts";
import { MemoryJournal, summarize } from "../../src/recovery/journal.ts";
import { failedRedis } from "../../src/recovery/playbooks/failed-redis.ts";
import { Runner } from "../../src/recovery/runner.ts";
import { Inventory } from "../../src/topology/inventory.ts";
import { RecordingMonitor, RecordingProviders, type TestRecoveryOptions, testTopology } from "../helpers/recording-providers.ts";

async function run(recovery: TestRecoveryOptions, prepare?: (w: RecordingProviders) => void) {
  const topology = testTopology({ stepTimeoutMs: 2000, syncTimeoutMs: 2000, ...recovery });
  const world = new RecordingProviders(topology);
  prepare?.(world);
  world.kill("redis1");
  const journal = new MemoryJournal();
  const runner = new Runner({ topology, inventory: new Inventory(topology), providers: world, journal, monitor: new RecordingMonitor(world), log: silentLogger() });
  const outcome = await runner.run(failedRedis("redis1"), { diagnosis: "DeadPrimary" });
  const rec = summarize(await journal.read())[0]!;
  const result = (step: string) => rec.completed.get(step) as Record<string, unknown> | undefined;
  return { outcome, world, writes: world.writes(), result, recoveryId: rec.id };
}

describe("failed_redis keeps the failed machine", () => {
  for (const mode of ["stop", "quarantine"] as const) {
    it(`${mode}: compute.keep with the recovery id, never compute.terminate; the replacement has another address`, async () => {
      const r = await run({ failedMachine: mode });
      assert.equal(r.outcome, "succeeded");
      assert.deepEqual(r.writes.filter((w) => w.startsWith("compute.keep") || w.startsWith("compute.terminate")), [`compute.keep i-redis1-0 redis1 127.0.1.1 ${mode}`]);
      assert.deepEqual(r.result("terminate"), { machineId: "i-redis1-0", address: "127.0.1.1", fate: mode === "stop" ? "stopped" : "quarantined" });
      const kept = await r.world.compute.kept();
      assert.deepEqual(kept.map((k) => [k.id, k.mode, k.recoveryId]), [["i-redis1-0", mode, r.recoveryId]]);
      assert.notEqual(r.result("launch")?.["address"], "127.0.1.1");
      assert.equal(r.world.isMachineRunning("i-redis1-0"), false, "never started again");
    });
  }

  it("the config's default is stop", () => {
    const yaml = "topology: t\nhosts:\n  r1: { role: redis, address: 127.150.9.1, ports: [1] }\n  r2: { role: redis, address: 127.150.9.2, ports: [1] }\npairs: [[r1, r2]]\n";
    return import("../../src/topology/load.ts").then(({ parseTopology }) => assert.equal(parseTopology(yaml, "t.yaml").config.recovery.failedMachine, "stop"));
  });
});

describe("failed_redis takes a warm spare", () => {
  it("a stopped spare in the pool: compute.claim, no compute.launch; the replacement is the spare", async () => {
    let spare = "";
    const r = await run({ redisSpares: 1 }, (w) => {
      spare = w.addSpare("redis", "stopped").id;
    });
    assert.equal(r.outcome, "succeeded");
    assert.ok(r.writes.includes(`compute.claim redis1 ${spare}`));
    assert.equal(r.writes.filter((w) => w.startsWith("compute.launch")).length, 0, "no launch from the image");
    assert.deepEqual(r.result("launch"), { machineId: spare, address: r.world.machineOf("redis1")!.address, reused: false, spare: true });
  });

  it("an empty pool: the launch goes on from the image", async () => {
    const r = await run({ redisSpares: 1 });
    assert.equal(r.outcome, "succeeded");
    assert.ok(r.writes.includes("compute.claim redis1 (none)"));
    assert.equal(r.writes.filter((w) => w.startsWith("compute.launch redis1")).length, 1);
  });

  it("a spare that cannot start (InsufficientInstanceCapacity): launched from the image instead", async () => {
    const r = await run({ redisSpares: 1 }, (w) => {
      w.addSpare("redis", "stopped");
      w.compute.claim = async () => {
        throw new ProviderError("EC2 StartInstances of i-spare failed: InsufficientInstanceCapacity", true, "InsufficientInstanceCapacity");
      };
    });
    assert.equal(r.outcome, "succeeded");
    assert.equal(r.writes.filter((w) => w.startsWith("compute.launch redis1")).length, 1);
    assert.equal(r.result("launch")?.["spare"], undefined);
  });

  it("no spares configured: the pool is not even asked", async () => {
    const r = await run({});
    assert.equal(r.world.calls.filter((c) => c.startsWith("compute.claim") || c.startsWith("compute.spares")).length, 0);
  });
});
