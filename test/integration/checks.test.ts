/**
 * Integration: the Redis and HAProxy checks, the admin clients and one round of the Checker, against real
 * redis-server and haproxy processes of a sandbox on 127.21.x.y. Faults are injected by PID (SIGSTOP, SIGKILL);
 * the destructive one (SIGKILL) runs last.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { cmd, HaproxyAdminClient } from "../../src/admin/haproxy.ts";
import { RedisAdminClient } from "../../src/admin/redis.ts";
import { checkHaproxy, type HaproxyTarget } from "../../src/checks/haproxy.ts";
import type { RedisObservation } from "../../src/checks/observation.ts";
import { checkRedis, type RedisTarget } from "../../src/checks/redis.ts";
import { Checker, checkTargets, targetId } from "../../src/checks/round.ts";
import { HaproxyCommandError, ProbeError } from "../../src/errors.ts";
import { sandboxStatus } from "../../src/providers/local/up.ts";
import { Inventory } from "../../src/topology/inventory.ts";
import { startSandbox, testTopology } from "../helpers/sandbox.ts";
import { descendants, isGone, isStopped } from "../../src/providers/local/processes.ts";

const TIMEOUT_MS = 500;
/** A hung server's check must return within its timeout plus this margin. */
const MARGIN_MS = 300;

const tt = testTopology({ net: 21, timeoutMs: TIMEOUT_MS, intervalMs: 500 });
const t = tt.topology;
const inv = new Inventory(t);
const ADMIN_PORT = 9999;

let stopSandbox: (() => Promise<void>) | undefined;
/** PIDs this file has SIGSTOPped and not yet SIGCONTed: continued before teardown whatever happens. */
const stopped = new Set<number>();
const clients: RedisAdminClient[] = [];

function redisClient(host: string, port: number, password?: string): RedisAdminClient {
  const c = new RedisAdminClient({ address: inv.addressOf(host), port }, TIMEOUT_MS, password ? { password } : {});
  clients.push(c);
  return c;
}

function redisTarget(host: string, port: number): RedisTarget {
  return { host, port, address: inv.addressOf(host) };
}

function haproxyTarget(host: string): HaproxyTarget {
  const h = t.haproxyHosts.find((x) => x.name === host) ?? t.appHosts.find((x) => x.name === host);
  assert.ok(h, `no HAProxy host ${host}`);
  return { host, role: h.role, address: inv.addressOf(host), frontendPorts: Object.keys(h.frontends).map(Number) };
}

function adminOf(host: string, timeoutMs = TIMEOUT_MS): HaproxyAdminClient {
  return new HaproxyAdminClient({ address: inv.addressOf(host), port: ADMIN_PORT }, timeoutMs);
}

/** The PID the sandbox recorded for a host's process (the Redis server on `port`, or the HAProxy master). */
function pidOf(host: string, kind: "redis" | "haproxy", port?: number): number {
  const m = sandboxStatus(t).machines.find((x) => x.host === host);
  assert.ok(m, `the sandbox has no running machine for ${host}`);
  const p = m.processes.find((x) => x.kind === kind && (port === undefined || x.port === port));
  assert.ok(p, `${host} has no ${kind} process${port ? ` on port ${port}` : ""}`);
  return p.pid;
}



function sigstop(pid: number): void {
  stopped.add(pid);
  process.kill(pid, "SIGSTOP");
}

function sigcont(pid: number): void {
  process.kill(pid, "SIGCONT");
  stopped.delete(pid);
}

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const start = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - start };
}

async function waitUntil(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await sleep(25);
  }
}

describe("checks against a real sandbox (net 21)", { timeout: 120_000 }, () => {
  before(async () => {
    stopSandbox = await startSandbox(tt);
  });

  after(async () => {
    for (const c of clients) c.close();
    for (const pid of stopped) {
      try {
        process.kill(pid, "SIGCONT");
      } catch {}
    }
    stopped.clear();
    try {
      if (stopSandbox) await stopSandbox();
    } finally {
      tt.cleanup();
    }
  });

  test("one Checker round gives one ok observation per Redis server and per HAProxy/app host", async () => {
    const targets = checkTargets(t, new Inventory(t));
    const checker = new Checker(TIMEOUT_MS);
    try {
      const observations = await checker.round(targets);
      const expected = ["redis1:9001", "redis1:9002", "redis2:9001", "redis2:9002", "haproxy1", "haproxy2", "app"];
      assert.deepEqual(observations.map((o) => o.target).sort(), [...expected].sort());
      assert.deepEqual(targets.map(targetId).sort(), [...expected].sort());
      for (const o of observations) {
        assert.equal(o.ok, true, `${o.target} is not ok: ${o.failure?.kind}: ${o.failure?.message}`);
        assert.equal(o.failure, undefined);
      }
      assert.equal(observations.filter((o) => o.type === "redis").length, 4);
      assert.equal(observations.filter((o) => o.type === "haproxy").length, 3);
    } finally {
      checker.close();
    }
  });

  test("checkRedis on a primary: ok, role primary, its offset, and the replica online in its list", async () => {
    const o = await checkRedis(redisTarget("redis1", 9001), redisClient("redis1", 9001), TIMEOUT_MS);
    assert.equal(o.ok, true, o.failure?.message);
    assert.equal(o.type, "redis");
    assert.equal(o.target, "redis1:9001");
    assert.equal(o.role, "primary");
    assert.equal(typeof o.offset, "number");
    assert.ok(Number.isFinite(o.offset), `offset ${o.offset}`);
    assert.ok(o.replicas, "a primary's observation lists its replicas");
    const replica = o.replicas.find((r) => r.address === "127.21.1.2");
    assert.ok(replica, `127.21.1.2 is not among the replicas: ${JSON.stringify(o.replicas)}`);
    assert.equal(replica.port, 9001);
    assert.equal(replica.online, true);
  });

  test("checkRedis on a replica: role replica, link up, and its primary's address", async () => {
    const o = await checkRedis(redisTarget("redis2", 9001), redisClient("redis2", 9001), TIMEOUT_MS);
    assert.equal(o.ok, true, o.failure?.message);
    assert.equal(o.target, "redis2:9001");
    assert.equal(o.role, "replica");
    assert.equal(o.linkUp, true);
    assert.equal(o.syncing, false);
    assert.equal(o.primaryAddress, "127.21.1.1");
    assert.equal(o.primaryPort, 9001);
    assert.equal(typeof o.offset, "number");
  });

  test("checkHaproxy on haproxy1: ok, and its view has be_redis_9001/redis1 up", async () => {
    const o = await checkHaproxy(haproxyTarget("haproxy1"), adminOf("haproxy1"), TIMEOUT_MS);
    assert.equal(o.ok, true, o.failure?.message);
    assert.equal(o.target, "haproxy1");
    assert.deepEqual(o.closedFrontends, []);
    const s = o.servers.find((v) => v.backend === "be_redis_9001" && v.server === "redis1");
    assert.ok(s, `no be_redis_9001/redis1 in ${JSON.stringify(o.servers)}`);
    assert.equal(s.up, true);
    assert.equal(s.maint, false);
    assert.equal(s.address, "127.21.1.1");
    assert.equal(s.port, 9001);
  });

  test("HaproxyAdminClient.setState: maint shows in showServersState, ready restores it", async () => {
    const admin = adminOf("haproxy1");
    const row = async () => {
      const states = await admin.showServersState("be_redis_9001");
      const r = states.find((s) => s.server === "redis1");
      assert.ok(r, "no redis1 row in be_redis_9001");
      return r;
    };
    assert.equal((await row()).inMaint, false);
    await admin.setState("be_redis_9001", "redis1", "maint");
    try {
      const r = await row();
      assert.equal(r.inMaint, true);
      assert.equal(r.adminState & 1, 1, `srv_admin_state ${r.adminState} lacks the forced-maint bit`);
    } finally {
      await admin.setState("be_redis_9001", "redis1", "ready");
    }
    const r = await row();
    assert.equal(r.inMaint, false);
    assert.equal(r.adminState, 0);
    // Leaving maint re-runs the health checks: the primary comes back up.
    await waitUntil("be_redis_9001/redis1 is up again on haproxy1", async () => (await row()).isUp);
  });

  test("HaproxyAdminClient: a bad server name rejects with HaproxyCommandError", async () => {
    const admin = adminOf("haproxy1");
    await assert.rejects(admin.setState("be_redis_9001", "no-such-server", "maint"), (e: unknown) => {
      assert.ok(e instanceof HaproxyCommandError, `not a HaproxyCommandError: ${String(e)}`);
      assert.match(e.command, /no-such-server/);
      assert.notEqual(e.reply.trim(), "");
      return true;
    });
    await assert.rejects(admin.setState("be_no_such_backend", "redis1", "maint"), HaproxyCommandError);
  });

  test("HaproxyAdminClient.apply: a batch runs in order; a refused command is named and the others still take effect", async () => {
    const admin = adminOf("haproxy1");
    const maintOf = async () => {
      const rows = await admin.showServersState();
      return ["be_redis_9001", "be_redis_9002"].map((b) => rows.find((r) => r.backend === b && r.server === "redis1")?.inMaint);
    };
    assert.deepEqual(await maintOf(), [false, false]);
    try {
      await assert.rejects(
        admin.apply([
          cmd.state("be_redis_9001", "redis1", "maint"),
          cmd.state("be_redis_9001", "no-such-server", "maint"),
          cmd.addr("be_redis_9002", "redis1", "127.21.1.1", 9002),
          cmd.state("be_redis_9002", "redis1", "maint"),
        ]),
        (e: unknown) => {
          assert.ok(e instanceof HaproxyCommandError, `not a HaproxyCommandError: ${String(e)}`);
          assert.equal(e.command, "set server be_redis_9001/no-such-server state maint");
          assert.match(e.reply, /No such server/);
          return true;
        },
      );
      assert.deepEqual(await maintOf(), [true, true], "the commands before and after the refused one ran");
      // More than one line's worth (about 14 KiB): sent on several connections, every reply checked.
      await admin.apply(Array.from({ length: 300 }, (_, i) => cmd.state(`be_redis_${9001 + (i % 2)}`, "redis1", "ready")));
      assert.deepEqual(await maintOf(), [false, false]);
    } finally {
      await admin.apply([cmd.state("be_redis_9001", "redis1", "ready"), cmd.state("be_redis_9002", "redis1", "ready")]);
    }
    await waitUntil("redis1 is up again on haproxy1", async () => {
      const rows = await admin.showServersState();
      return rows.filter((r) => r.server === "redis1" && r.backend.startsWith("be_redis_")).every((r) => r.isUp);
    });
  });

  test("checkRedis: an error reply (NOAUTH) is ok false with kind error-reply", async () => {
    const admin = redisClient("redis2", 9001);
    assert.equal(await admin.call("CONFIG", "SET", "requirepass", "x"), "OK");
    try {
      const o = await checkRedis(redisTarget("redis2", 9001), redisClient("redis2", 9001), TIMEOUT_MS);
      assert.equal(o.ok, false);
      assert.equal(o.failure?.kind, "error-reply", `failure: ${JSON.stringify(o.failure)}`);
      assert.match(o.failure?.message ?? "", /NOAUTH/);
    } finally {
      const restore = redisClient("redis2", 9001, "x");
      assert.equal(await restore.call("CONFIG", "SET", "requirepass", ""), "OK");
    }
    const o = await checkRedis(redisTarget("redis2", 9001), redisClient("redis2", 9001), TIMEOUT_MS);
    assert.equal(o.ok, true, `after restoring requirepass: ${o.failure?.message}`);
  });

  test("checkRedis on a SIGSTOPped server: timeout within its deadline; after SIGCONT the next check is ok", async () => {
    const target = redisTarget("redis1", 9002);
    const client = redisClient("redis1", 9002);
    const before = await checkRedis(target, client, TIMEOUT_MS);
    assert.equal(before.ok, true, before.failure?.message);

    const pid = pidOf("redis1", "redis", 9002);
    sigstop(pid);
    let hung: { value: RedisObservation; ms: number };
    try {
      hung = await timed(() => checkRedis(target, client, TIMEOUT_MS));
      // A fresh connection to the hung server (TCP connect succeeds, nothing answers) times out too.
      const fresh = await timed(() => checkRedis(target, redisClient("redis1", 9002), TIMEOUT_MS));
      assert.equal(fresh.value.ok, false);
      assert.equal(fresh.value.failure?.kind, "timeout", `failure: ${JSON.stringify(fresh.value.failure)}`);
      assert.ok(fresh.ms <= TIMEOUT_MS + MARGIN_MS, `a fresh check took ${Math.round(fresh.ms)} ms`);
    } finally {
      sigcont(pid);
    }
    assert.equal(hung.value.ok, false);
    assert.equal(hung.value.failure?.kind, "timeout", `failure: ${JSON.stringify(hung.value.failure)}`);
    assert.ok(hung.ms >= TIMEOUT_MS - 50, `the check gave up after ${Math.round(hung.ms)} ms, before its ${TIMEOUT_MS} ms timeout`);
    assert.ok(hung.ms <= TIMEOUT_MS + MARGIN_MS, `the check took ${Math.round(hung.ms)} ms (timeout ${TIMEOUT_MS} ms)`);

    const again = await checkRedis(target, client, TIMEOUT_MS);
    assert.equal(again.ok, true, `after SIGCONT: ${again.failure?.kind}: ${again.failure?.message}`);
    assert.equal(again.role, "primary");
  });

  test("HaproxyAdminClient.raw against a SIGSTOPped HAProxy times out within its deadline", async () => {
    const admin = adminOf("haproxy2");
    assert.match(await admin.raw("show info"), /^Name: HAProxy/m);
    const master = pidOf("haproxy2", "haproxy");
    // Master-worker mode: the worker answers the Runtime API, so the whole process tree is stopped.
    const pids = [master, ...descendants(master)];
    assert.ok(pids.length >= 2, `HAProxy master ${master} has no worker`);
    for (const pid of pids) sigstop(pid);
    try {
      // A signal is delivered asynchronously: a worker running on the other core could still answer one request.
      await waitUntil("every HAProxy process is stopped", () => pids.every((pid) => isStopped({ pid, marker: "" })));
      const start = performance.now();
      await assert.rejects(admin.raw("show servers state"), (e: unknown) => {
        assert.ok(e instanceof ProbeError, `not a ProbeError: ${String(e)}`);
        assert.equal(e.kind, "timeout");
        return true;
      });
      const ms = performance.now() - start;
      assert.ok(ms >= TIMEOUT_MS - 50, `gave up after ${Math.round(ms)} ms, before its ${TIMEOUT_MS} ms deadline`);
      assert.ok(ms <= TIMEOUT_MS + MARGIN_MS, `raw took ${Math.round(ms)} ms (deadline ${TIMEOUT_MS} ms)`);

      const hung = await timed(() => checkHaproxy(haproxyTarget("haproxy2"), admin, TIMEOUT_MS));
      assert.equal(hung.value.ok, false);
      assert.equal(hung.value.failure?.kind, "timeout", `failure: ${JSON.stringify(hung.value.failure)}`);
      assert.ok(hung.ms <= TIMEOUT_MS + MARGIN_MS, `checkHaproxy took ${Math.round(hung.ms)} ms`);
    } finally {
      for (const pid of [...pids].reverse()) sigcont(pid);
    }
    assert.match(await admin.raw("show info"), /^Name: HAProxy/m);
  });

  test("checkRedis on a SIGKILLed server: ok false with kind refused (destructive, runs last)", async () => {
    const pid = pidOf("redis2", "redis", 9002);
    process.kill(pid, "SIGKILL");
    // Wait until every thread has exited (reaped, or a zombie): only then is its listening socket closed. The leader
    // alone turns zombie earlier, while redis-server's other threads still hold the socket, and a connection then is
    // accepted and reset rather than refused.
    await waitUntil("the killed redis-server has exited", () => isGone(pid));
    const rec = sandboxStatus(t).machines.find((x) => x.host === "redis2")?.processes.find((p) => p.pid === pid);
    assert.equal(rec?.state, "gone");
    const o = await checkRedis(redisTarget("redis2", 9002), redisClient("redis2", 9002), TIMEOUT_MS);
    assert.equal(o.ok, false);
    assert.equal(o.failure?.kind, "refused", `failure: ${JSON.stringify(o.failure)}`);
    assert.ok(o.latencyMs < TIMEOUT_MS, `a refused connection took ${o.latencyMs} ms to report`);
    // The other servers are untouched.
    const twin = await checkRedis(redisTarget("redis1", 9002), redisClient("redis1", 9002), TIMEOUT_MS);
    assert.equal(twin.ok, true, twin.failure?.message);
  });
});
