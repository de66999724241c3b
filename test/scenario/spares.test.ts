/**
 * Warm spares on the real sandbox (loopback net 152): failed_redis with one stopped spare takes the spare (no launch
 * from the image: the replacement is the spare's machine), keeps the failed machine stopped for the post-mortem, and
 * the pool is refilled after the recovery, never beyond its count. The daemon runs in this process; every process
 * is real (redis-server, haproxy) and stopped by PID.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { PACKAGE_ROOT } from "../../src/package-root.ts";
import { promisify } from "node:util";
import { whyNotConverged } from "../../src/checks/converged.ts";
import { Daemon } from "../../src/daemon/daemon.ts";
import type { SpareCounts } from "../../src/daemon/spares.ts";
import { silentLogger } from "../../src/log.ts";
import { Metrics } from "../../src/ops/metrics.ts";
import { createProviders } from "../../src/providers/index.ts";
import { LocalCompute } from "../../src/providers/local/index.ts";
import { signal as signalProcess } from "../../src/providers/local/processes.ts";
import { sandboxDown, sandboxOf, sandboxUp } from "../../src/providers/local/up.ts";
import type { Spare } from "../../src/providers/types.ts";
import { Inventory } from "../../src/topology/inventory.ts";
import { assertAddressesFree, testTopology } from "../helpers/sandbox.ts";

const tt = testTopology({ net: 152, name: "spares152", provider: "  spares: { redis: { count: 1, state: stopped } }", cooldownMs: 1000 });
const t = tt.topology;
const sandbox = sandboxOf(t);
const compute = new LocalCompute(sandbox);

const REPO = PACKAGE_ROOT;

/** `failoverd <args> --config <topology>`; its exit code does not matter here (status exits 1 when unhealthy). */
async function cli(args: readonly string[]): Promise<{ stdout: string }> {
  try {
    return await promisify(execFile)(process.execPath, ["bin/failoverd.js", ...args, "--config", tt.path], { cwd: REPO, timeout: 180_000 });
  } catch (e) {
    const x = e as { stdout?: string; killed?: boolean; message: string };
    if (x.killed || x.stdout === undefined) throw e;
    return { stdout: x.stdout };
  }
}

async function until<T>(what: string, check: () => Promise<T | null | undefined | false>, ms = 240_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await sleep(100);
  }
  throw new Error(`gave up waiting until ${what}${last ? ` (${(last as Error).message})` : ""}`);
}

describe("failed_redis with one stopped warm spare", () => {
  let daemon: Daemon;
  let metrics: Metrics;
  let spare: Spare;
  const seen: SpareCounts[] = [];

  before(async () => {
    await assertAddressesFree(t);
    await sandboxUp(t);
    const pool = await compute.spares("redis");
    assert.equal(pool.length, 1, "sandbox up provisions the pool");
    spare = pool[0]!;
    daemon = new Daemon({ topology: t, providers: await createProviders(t), log: silentLogger() });
    metrics = new Metrics(daemon, { processMetrics: false });
    daemon.events.on("spares", (c) => seen.push(c));
    await daemon.start();
  });

  after(async () => {
    await daemon?.stop();
    await sandboxDown(t);
    tt.cleanup();
  });

  it("before the fault: the spare is stopped, serves nothing, and the daemon reports it", async () => {
    assert.equal(spare.state, "stopped");
    await until("the daemon listed the pool", async () => (await daemon.status()).spares.find((c) => c.role === "redis"));
    const view = (await daemon.status()).spares.find((c) => c.role === "redis")!;
    assert.deepEqual([view.wanted, view.stopped, view.running], [1, 1, 0]);
    assert.match(await metrics.registry.metrics(), /failoverd_spares\{role="redis",state="stopped"\} 1/);
    assert.match(await metrics.registry.metrics(), /failoverd_spares\{role="redis",state="wanted"\} 1/);
  });

  it("status and preflight show the pool; plan says the launch takes the spare", async () => {
    const status = JSON.parse((await cli(["status", "--json"])).stdout) as { spares: SpareCounts[] };
    assert.deepEqual(status.spares.map((c) => [c.role, c.wanted, c.stopped, c.running]), [["redis", 1, 1, 0]]);
    const pre = JSON.parse((await cli(["preflight", "--json"])).stdout) as { checks: { name: string; ok: boolean; detail: string }[] };
    assert.deepEqual(pre.checks.filter((c) => c.name === "spares redis").map((c) => [c.ok, c.detail.split(" (")[0]]), [[true, "1 of 1 stopped"]]);
    const plan = (await cli(["plan", "--target", "redis1"])).stdout;
    assert.match(plan, new RegExp(`would take the stopped spare ${spare.id} \\(${spare.address.replace(/\./g, "\\.")}\\) for redis1 and start it`));
    assert.doesNotMatch(plan, /would launch a redis machine/);
  });

  it("redis1 crashes: the spare becomes redis1 (no launch from the image), the failed machine is kept stopped", async () => {
    const failed = sandbox.machineOf("redis1")!;
    for (const p of failed.processes) signalProcess(p, "SIGKILL");
    const rec = await until("the recovery of redis1 ended", async () => (await daemon.status()).recoveries.recent.find((r) => r.host === "redis1"));
    assert.equal(rec.outcome, "succeeded", JSON.stringify(rec));
    const replacement = sandbox.machineOf("redis1")!;
    assert.equal(replacement.id, spare.id, "the replacement is the spare");
    assert.equal(replacement.address, spare.address);
    const machines = sandbox.read().machines;
    const launchedForRedis1 = machines.filter((m) => m.host === "redis1" && m.id !== failed.id && m.id !== spare.id);
    assert.deepEqual(launchedForRedis1, [], "no machine launched from the image for redis1");
    const kept = machines.find((m) => m.id === failed.id)!;
    assert.equal(kept.status, "stopped");
    assert.equal(kept.kept?.mode, "stop");
    assert.ok(existsSync(kept.dir), "its directory is kept");
    assert.equal(await whyNotConverged(t, Inventory.load(t, `${t.config.stateDir}/inventory.json`), {}), null);
  });

  it("after the recovery the pool is refilled with a new stopped spare, never beyond one", async () => {
    const refilled = await until("the pool is refilled", async () => {
      const pool = await compute.spares("redis");
      return pool.length === 1 && pool[0]!.id !== spare.id && pool[0]!.state === "stopped" ? pool[0] : null;
    });
    assert.notEqual(refilled.address, spare.address);
    await until("the daemon saw the refill", async () => seen.some((c) => c.role === "redis" && c.stopped === 1 && c.pending === 0 && seen.indexOf(c) > 0));
    assert.ok(seen.every((c) => c.stopped + c.running + c.pending <= 1), `never beyond the count: ${JSON.stringify(seen)}`);
    assert.equal((await compute.spares("redis")).length, 1);
  });
});

