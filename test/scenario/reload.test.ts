/**
 * SIGHUP during a recovery: the new config is not dropped but applied when the recovery ends; a reload that cannot
 * be applied without a restart is refused with its reason, and the daemon keeps the running config. Real sandbox on
 * 127.132.x.y, the daemon held before `launch` by FAILOVERD_CHAOS_PAUSE.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, test } from "node:test";
import type { StatusView } from "../../src/daemon/status.ts";
import { signal, whyNotFree } from "../../src/providers/local/processes.ts";
import { sandboxDown, sandboxUp } from "../../src/providers/local/up.ts";
import { startDaemon, stopDaemon, waitForDaemon } from "../../src/simulate/daemon-process.ts";
import { assertAddressesFree, type TestTopology, testTopology } from "../helpers/sandbox.ts";

const HTTP = { address: "127.132.9.1", port: 9464 };

async function status(): Promise<StatusView> {
  const res = await fetch(`http://${HTTP.address}:${HTTP.port}/status`);
  assert.equal(res.status, 200);
  return (await res.json()) as StatusView;
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    await sleep(100);
  }
  throw new Error(`timed out waiting until ${what}`);
}

describe("SIGHUP during a recovery", { timeout: 180_000 }, () => {
  let tt: TestTopology;
  let daemon: ChildProcess | undefined;
  before(async () => {
    tt = testTopology({ net: 132 });
    await assertAddressesFree(tt.topology);
    assert.equal(await whyNotFree(HTTP.address, HTTP.port), null);
  });
  after(async () => {
    if (daemon) await stopDaemon(daemon);
    await sandboxDown(tt.topology);
    tt.cleanup();
  });

  test("a new app host and check interval sent mid-recovery are applied when the recovery ends, visible in /status and the log", async () => {
    const t = tt.topology;
    const sandbox = await sandboxUp(t);
    const original = readFileSync(tt.path, "utf8");
    const log = join(tt.dir, "daemon.log");
    daemon = startDaemon(t, log, { FAILOVERD_CHAOS_PAUSE: "launch:4000" }, ["--http", `${HTTP.address}:${HTTP.port}`]);
    await waitForDaemon(log, daemon);
    for (const p of sandbox.machineOf("redis1")?.processes ?? []) signal(p, "SIGKILL");
    await waitForDaemon(log, daemon, "chaos: pausing 4000 ms before launch");

    const app2 = "  app2: { role: app, address: 127.132.3.2, frontends: { 7001: 8001, 7002: 8002 }, upstreams: [haproxy1, haproxy2], adminPort: 9999 }\n";
    writeFileSync(tt.path, original.replace("intervalMs: 200", "intervalMs: 250").replace("pairs:\n", `${app2}pairs:\n`));
    daemon.kill("SIGHUP");
    await waitForDaemon(log, daemon, "config reload postponed: a recovery of pair:redis1+redis2 is under way");
    const during = await status();
    assert.equal(during.recoveries.current.length, 1, "the recovery is still under way");
    assert.ok(!during.hosts.some((h) => h.name === "app2"), "not applied under a running recovery");
    assert.equal(typeof during.config.reloadPendingSince, "number");

    await waitForDaemon(log, daemon, "recovery succeeded");
    const after = await until("app2 is in /status", async () => {
      const s = await status();
      return s.hosts.some((h) => h.name === "app2") ? s : undefined;
    });
    assert.equal(after.config.reloadPendingSince, null);
    assert.equal(typeof after.config.reloadedAt, "number");
    assert.ok((after.config.reloadedAt ?? 0) >= (after.recoveries.recent[0]?.endedAt ?? Number.POSITIVE_INFINITY), "applied after the recovery ended");
    assert.match(readFileSync(log, "utf8"), /config reloaded from \S+ \(postponed \d+ ms, until the recovery ended\): 8 targets, down after 3 failed checks every 250 ms/);
    // The new host is watched: its loop runs (nothing listens there, so it goes down).
    await until("app2 is checked", async () => ((await status()).hosts.find((h) => h.name === "app2")?.targets[0]?.failures ?? 0) > 0 || undefined);
  });

  test("a reload that needs a restart (another stateDir) is refused with the reason; the running config stays", async () => {
    assert.ok(daemon && daemon.exitCode === null, "the daemon of the first test still runs");
    const current = readFileSync(tt.path, "utf8");
    writeFileSync(tt.path, current.replace(/^stateDir: .*$/m, `stateDir: ${join(tt.dir, "elsewhere")}`));
    daemon.kill("SIGHUP");
    await waitForDaemon(join(tt.dir, "daemon.log"), daemon, "config reload refused, keeping the running config");
    assert.match(readFileSync(join(tt.dir, "daemon.log"), "utf8"), /config reload refused, keeping the running config: \S+: stateDir changed/);
    assert.equal(daemon.exitCode, null);
    assert.ok((await status()).hosts.some((h) => h.name === "app2"));
  });
});
