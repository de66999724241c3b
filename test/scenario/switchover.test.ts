/**
 * A planned switchover under traffic, asked for with the CLI (`failoverd switchover --wait`), carried out by the
 * daemon: the pair's roles flip, the app-side frontend reaches the new primary, and every acknowledged write reads
 * back from it. Real sandbox on 127.51.x.y.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { after, before, describe, test } from "node:test";
import { Redis } from "ioredis";
import { RedisAdminClient } from "../../src/admin/redis.ts";
import { FileJournal, summarize } from "../../src/recovery/journal.ts";
import { startDaemon, stopDaemon, waitForDaemon } from "../../src/simulate/daemon-process.ts";
import { longestGap, Traffic } from "../../src/simulate/traffic.ts";
import { startSandbox, type TestTopology, testTopology } from "../helpers/sandbox.ts";
import { BIN_PATH } from "../../src/package-root.ts";

const execFileP = promisify(execFile);
const BIN = BIN_PATH;
const TOKEN = "switchover-test-token-51";
const HTTP = "127.51.9.1:9464";

async function roleOf(address: string, port: number) {
  const c = new RedisAdminClient({ address, port }, 1000);
  try {
    return await c.role();
  } finally {
    c.close();
  }
}

describe("planned switchover", { timeout: 120_000 }, () => {
  let tt: TestTopology;
  let stopSandbox: (() => Promise<void>) | null = null;
  before(() => {
    tt = testTopology({ net: 51, extra: `http: { listen: "${HTTP}", token: { env: FAILOVERD_TEST_TOKEN } }\n` });
  });
  after(async () => {
    await stopSandbox?.();
    tt.cleanup();
  });

  test("under traffic: roles flip, the app frontend reaches the new primary, no acknowledged write is lost", async (t) => {
    stopSandbox = await startSandbox(tt);
    const log = join(tt.dir, "daemon.log");
    const daemon = startDaemon(tt.topology, log, { FAILOVERD_TEST_TOKEN: TOKEN });
    const traffic = new Traffic({ address: "127.51.3.1", port: 7001, prefix: "sw", opTimeoutMs: 1000 });
    try {
      await waitForDaemon(log, daemon, "HTTP API on");
      assert.equal((await roleOf("127.51.1.1", 9001)).role, "primary");
      traffic.start();
      await sleep(600);
      const ackedBefore = traffic.acks.length;
      assert.ok(ackedBefore > 10, `traffic flows before the switchover (${ackedBefore} acks)`);

      const env = { ...process.env, FAILOVERD_TOKEN: TOKEN };
      const cli = await execFileP(process.execPath, [BIN, "switchover", "--pair", "redis1,redis2", "--wait", "--config", tt.path], { env });
      assert.match(cli.stdout, /switchover \S+ started: redis1 -> redis2/);
      assert.match(cli.stdout, /ok {3}preflight/);
      assert.match(cli.stdout, /ok {3}failover/);
      assert.match(cli.stdout, /ok {3}route/);
      assert.match(cli.stdout, /switchover succeeded in \d+ ms/);
      const switchedAt = Date.now();
      await sleep(800);
      await traffic.stop();
      const gap = longestGap(traffic.acks, switchedAt - 5000, switchedAt);
      t.diagnostic(`longest pause between two acknowledged writes around the switchover: ${gap.ms} ms; ${traffic.failures.length} failed writes`);

      // Roles flipped on every port of the pair.
      for (const port of [9001, 9002]) {
        assert.equal((await roleOf("127.51.1.2", port)).role, "primary", `redis2:${port} is primary`);
        const r1 = await roleOf("127.51.1.1", port);
        assert.equal(r1.role, "replica", `redis1:${port} is a replica`);
        assert.ok(r1.role === "replica" && r1.primary.address === "127.51.1.2", `redis1:${port} follows redis2`);
      }
      // Writes went on after the switchover, through the app frontend, to the new primary.
      assert.ok(traffic.acks.some((a) => a.at > switchedAt), "writes acknowledged after the switchover");
      const app = new Redis({ host: "127.51.3.1", port: 7001, lazyConnect: true, maxRetriesPerRequest: 0 });
      const primary = new Redis({ host: "127.51.1.2", port: 9001, lazyConnect: true, maxRetriesPerRequest: 0 });
      try {
        await app.connect();
        await primary.connect();
        assert.equal(await app.set("sw:through-app", "yes"), "OK");
        assert.equal(await primary.get("sw:through-app"), "yes");
        // Every acknowledged write reads back from the new primary.
        const keys = traffic.acks.map((a) => traffic.key(a.seq));
        const values: (string | null)[] = [];
        for (let i = 0; i < keys.length; i += 500) values.push(...(await primary.mget(...keys.slice(i, i + 500))));
        const lost = traffic.acks.filter((a, i) => values[i] !== String(a.seq)).map((a) => a.seq);
        assert.deepEqual(lost, [], `${lost.length} of ${traffic.acks.length} acknowledged writes lost`);
      } finally {
        app.disconnect();
        primary.disconnect();
      }

      // One switchover in the journal, its three steps done.
      const recoveries = summarize(await new FileJournal(join(tt.topology.config.stateDir, "journal.jsonl")).read());
      assert.equal(recoveries.length, 1);
      assert.equal(recoveries[0]?.playbook, "switchover");
      assert.equal(recoveries[0]?.host, "redis2");
      assert.equal(recoveries[0]?.outcome, "succeeded");
      assert.deepEqual([...(recoveries[0]?.completed.keys() ?? [])], ["preflight", "failover", "route"]);

      // Again to the same host: refused, nothing started.
      await assert.rejects(
        execFileP(process.execPath, [BIN, "switchover", "--to", "redis2", "--config", tt.path], { env }),
        (e: { code: number; stderr: string }) => {
          assert.equal(e.code, 1);
          assert.match(e.stderr, /refused \/switchover: redis2 is already the primary on every port/);
          return true;
        },
      );
      const metrics = await (await fetch(`http://${HTTP}/metrics`)).text();
      assert.match(metrics, /failoverd_recoveries_total\{playbook="switchover",outcome="succeeded",origin="operator"\} 1/);
    } finally {
      await traffic.stop().catch(() => {});
      await stopDaemon(daemon);
    }
  });
});
