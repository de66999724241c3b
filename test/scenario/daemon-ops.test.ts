/**
 * The daemon as an operator runs it: SIGTERM in the middle of a recovery, SIGHUP, shadow mode (--dry-run), and
 * `plan`. Real sandbox on 127.32.x.y.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { after, before, describe, test } from "node:test";
import { RedisAdminClient } from "../../src/admin/redis.ts";
import { signal } from "../../src/providers/local/processes.ts";
import { sandboxDown, sandboxUp } from "../../src/providers/local/up.ts";
import { FileJournal, summarize } from "../../src/recovery/journal.ts";
import { startDaemon, stopDaemon, waitForDaemon } from "../../src/simulate/daemon-process.ts";
import { assertAddressesFree, type TestTopology, testTopology } from "../helpers/sandbox.ts";
import { BIN_PATH } from "../../src/package-root.ts";

const execFileP = promisify(execFile);
const BIN = BIN_PATH;

describe("the daemon under operation", { timeout: 180_000 }, () => {
  let tt: TestTopology;
  before(async () => {
    tt = testTopology({ net: 32 });
    await assertAddressesFree(tt.topology);
  });
  after(async () => {
    await sandboxDown(tt.topology);
    tt.cleanup();
  });

  test("SIGTERM during a recovery: the daemon exits 0 promptly, the recovery stays open in the journal, and the next start finishes it", async () => {
    const t = tt.topology;
    const sandbox = await sandboxUp(t);
    try {
      const log1 = join(tt.dir, "term-1.log");
      const d1 = startDaemon(t, log1, { FAILOVERD_CHAOS_PAUSE: "launch:60000" });
      await waitForDaemon(log1, d1);
      for (const p of sandbox.machineOf("redis2")?.processes ?? []) signal(p, "SIGKILL");
      await waitForDaemon(log1, d1, "chaos: pausing 60000 ms before launch");
      const exited = new Promise<number | null>((r) => d1.once("exit", (code) => r(code)));
      const t0 = Date.now();
      d1.kill("SIGTERM");
      assert.equal(await exited, 0);
      assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms to stop`);
      assert.match(readFileSync(log1, "utf8"), /failoverd stopped/);
      const journal = new FileJournal(join(t.config.stateDir, "journal.jsonl"));
      const open = summarize(await journal.read());
      assert.equal(open.length, 1);
      assert.equal(open[0]?.outcome, undefined);
      assert.deepEqual([...(open[0]?.completed.keys() ?? [])], ["unmonitor", "fence", "hold", "promote", "terminate"]);

      const log2 = join(tt.dir, "term-2.log");
      const d2 = startDaemon(t, log2);
      try {
        await waitForDaemon(log2, d2, "recovery succeeded");
        const done = summarize(await journal.read());
        assert.equal(done.length, 1);
        assert.equal(done[0]?.outcome, "succeeded");
      } finally {
        await stopDaemon(d2);
      }
    } finally {
      await sandboxDown(t);
    }
  });

  test("SIGHUP reloads the config; a broken config is refused and the daemon keeps running on the old one", async () => {
    const t = tt.topology;
    await sandboxUp(t);
    const original = readFileSync(tt.path, "utf8");
    const log = join(tt.dir, "hup.log");
    const d = startDaemon(t, log);
    try {
      await waitForDaemon(log, d);
      writeFileSync(tt.path, original.replace("intervalMs: 200", "intervalMs: 300"));
      d.kill("SIGHUP");
      await waitForDaemon(log, d, "config reloaded");
      writeFileSync(tt.path, "topology: [\n");
      d.kill("SIGHUP");
      await waitForDaemon(log, d, "config reload refused");
      assert.equal(d.exitCode, null, "still running");
    } finally {
      writeFileSync(tt.path, original);
      await stopDaemon(d);
      await sandboxDown(t);
    }
  });

  test("--dry-run on a dead primary: describes the whole recovery, changes nothing", async () => {
    const t = tt.topology;
    const sandbox = await sandboxUp(t);
    const log = join(tt.dir, "dry.log");
    const shadow = startDaemon(t, log, {}, ["--dry-run"]);
    try {
      await waitForDaemon(log, shadow);
      const before = JSON.stringify(sandbox.read().machines.map((m) => [m.id, m.status]));
      for (const p of sandbox.machineOf("redis1")?.processes ?? []) signal(p, "SIGKILL");
      await waitForDaemon(log, shadow, "recovery succeeded");
      const text = readFileSync(log, "utf8");
      assert.match(text, /would send REPLICAOF NO ONE to 127\.32\.1\.2:9001/);
      assert.match(text, /would send 'set server be_redis_9001\/redis1 state maint' to HAProxy 127\.32\.2\.1:9999/);
      // The failed machine is kept for the post-mortem (recovery.failedMachine: stop, the default).
      assert.match(text, /would stop t32-redis1-\d+ \(redis1 at 127\.32\.1\.1\) and keep it/);
      // ... and the step says it would keep it: nothing was kept.
      assert.match(text, /would keep t32-redis1-\d+ \(redis1\) for the post-mortem \(stop\): dry-run, nothing done/);
      assert.doesNotMatch(text, /kept t32-redis1-\d+ \(redis1\) for the post-mortem/);
      assert.match(text, /would launch a redis machine for redis1/);
      // Nothing changed: redis2 is still a replica, no machine launched or terminated, no journal written.
      const c = new RedisAdminClient({ address: "127.32.1.2", port: 9001 }, 1000);
      try {
        assert.equal((await c.role()).role, "replica");
      } finally {
        c.close();
      }
      await sleep(300);
      assert.equal(JSON.stringify(sandbox.read().machines.map((m) => [m.id, m.status])), before);
      assert.deepEqual(await new FileJournal(join(t.config.stateDir, "journal.jsonl")).read(), []);
    } finally {
      await stopDaemon(shadow);
      await sandboxDown(t);
    }
  });

  test("plan prints the resolved failed_redis and failed_haproxy playbooks and changes nothing", async () => {
    const t = tt.topology;
    const sandbox = await sandboxUp(t);
    try {
      const before = JSON.stringify(sandbox.read());
      const redis = await execFileP(process.execPath, [BIN, "plan", "--target", "redis1", "--config", tt.path]);
      assert.match(redis.stdout, /^failed_redis for redis1/);
      assert.match(redis.stdout, / 4\. Make the remaining Redis the primary {3}\[point of no return\]/);
      assert.match(redis.stdout, /would send REPLICAOF NO ONE to 127\.32\.1\.2:9002/);
      assert.match(redis.stdout, /would stop t32-redis1-\d+ \(redis1 at 127\.32\.1\.1\) and keep it for the post-mortem/);
      assert.match(redis.stdout, /would send REPLICAOF 127\.32\.1\.2 9001 to <new redis1 address>:9001/);
      const hap = await execFileP(process.execPath, [BIN, "plan", "--target", "haproxy1", "--config", tt.path, "--json"]);
      const plan = JSON.parse(hap.stdout) as { playbook: string; steps: { name: string; actions: string[] }[] };
      assert.equal(plan.playbook, "failed_haproxy");
      assert.deepEqual(
        plan.steps.map((s) => s.name),
        ["unmonitor", "terminate", "launch", "configure", "point-dns", "converge", "monitor"],
      );
      assert.ok(plan.steps.find((s) => s.name === "point-dns")?.actions.some((a) => a.includes("haproxy1.t32.internal")));
      assert.equal(JSON.stringify(sandbox.read()), before);
      const c = new RedisAdminClient({ address: "127.32.1.1", port: 9001 }, 1000);
      try {
        assert.equal((await c.role()).role, "primary");
      } finally {
        c.close();
      }
      await assert.rejects(execFileP(process.execPath, [BIN, "plan", "--target", "nope", "--config", tt.path]), (e: { code: number; stderr: string }) => {
        assert.equal(e.code, 2);
        assert.match(e.stderr, /^failoverd: --target: unknown host 'nope'/);
        return true;
      });
    } finally {
      await sandboxDown(t);
    }
  });
});
