/**
 * SyncGuard's drain of a primary whose process may have restarted: sent to every HAProxy of its route, released only
 * where it is still drained and not in maintenance (a fence is never undone), a release asked while the drain is
 * being sent runs right after it, the time limit calls back, and a recovery's ownership stops that limit.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { ServerCommand, ServerState } from "../../src/admin/haproxy.ts";
import type { Endpoint } from "../../src/admin/redis.ts";
import { type Route, SyncGuard } from "../../src/daemon/sync-guard.ts";
import { silentLogger } from "../../src/log.ts";
import type { HaproxyAdmin } from "../../src/providers/types.ts";

/** HAProxies by admin port, each with one server's admin state; every command recorded. */
class FakeHaproxies implements HaproxyAdmin {
  readonly state = new Map<number, "ready" | "maint" | "drain">();
  readonly sent: string[] = [];
  readonly down = new Set<number>();
  /** Delays every apply (a slow HAProxy). */
  delayMs = 0;

  async serversState(h: Endpoint, backend?: string): Promise<ServerState[]> {
    if (this.down.has(h.port)) throw new Error(`connect ECONNREFUSED ${h.address}:${h.port}`);
    const s = this.state.get(h.port) ?? "ready";
    return [
      { backend: backend ?? "be_redis_9001", server: "redis1", address: "127.0.0.1", port: 9001, opState: 2, adminState: s === "maint" ? 1 : s === "drain" ? 8 : 0, inMaint: s === "maint", inDrain: s === "drain", isUp: true },
    ];
  }

  async apply(h: Endpoint, commands: readonly ServerCommand[]): Promise<void> {
    if (this.delayMs > 0) await sleep(this.delayMs);
    if (this.down.has(h.port)) throw new Error(`connect ECONNREFUSED ${h.address}:${h.port}`);
    for (const c of commands) {
      if (c.op !== "state") continue;
      this.sent.push(`${h.port} ${c.backend}/${c.server} ${c.state}`);
      this.state.set(h.port, c.state);
    }
  }
}

const route: Route = {
  backend: "be_redis_9001",
  server: "redis1",
  haproxies: [
    { name: "haproxy1", admin: { address: "127.0.0.1", port: 1 } },
    { name: "haproxy2", admin: { address: "127.0.0.1", port: 2 } },
  ],
};

function guard(h: FakeHaproxies, o: { limitMs?: number; onLimit?: (p: string) => void } = {}) {
  return new SyncGuard({
    redis: () => ({ holdSync: async () => {}, releaseSync: async () => {}, syncHeld: async () => false }),
    haproxy: () => h,
    log: silentLogger(),
    drainLimitMs: () => o.limitMs ?? 60_000,
    onDrainLimit: o.onLimit ?? (() => {}),
  });
}

describe("SyncGuard: the drain of a primary that may have restarted", () => {
  test("drained on every HAProxy of its route, once; released on every one", async () => {
    const h = new FakeHaproxies();
    const g = guard(h);
    await g.drain("redis1:9001", route, "its connection closed");
    await g.drain("redis1:9001", route, "a check was refused");
    assert.deepEqual(h.sent, ["1 be_redis_9001/redis1 drain", "2 be_redis_9001/redis1 drain"]);
    assert.equal(g.isDrained("redis1:9001"), true);
    await g.undrain("redis1:9001", "it answers as the same server");
    assert.deepEqual(h.sent.slice(2), ["1 be_redis_9001/redis1 ready", "2 be_redis_9001/redis1 ready"]);
    assert.equal(g.isDrained("redis1:9001"), false);
    assert.equal(g.draining, false);
  });

  test("a release never undoes a fence: a server in maintenance stays there", async () => {
    const h = new FakeHaproxies();
    const g = guard(h);
    await g.drain("redis1:9001", route, "its connection closed");
    h.state.set(1, "maint"); // a recovery's fence on haproxy1 meanwhile
    await g.undrain("redis1:9001", "it is a replica now");
    assert.equal(h.state.get(1), "maint");
    assert.equal(h.state.get(2), "ready");
  });

  test("a release asked while the drain is being sent runs right after it", async () => {
    const h = new FakeHaproxies();
    h.delayMs = 50;
    const g = guard(h);
    const draining = g.drain("redis1:9001", route, "its connection closed");
    await g.undrain("redis1:9001", "it answers as the same server");
    assert.equal(g.isDrained("redis1:9001"), true, "not released before the drain is sent");
    await draining;
    assert.equal(g.isDrained("redis1:9001"), false);
    assert.deepEqual([h.state.get(1), h.state.get(2)], ["ready", "ready"]);
  });

  test("an HAProxy that does not answer: the others are drained, and the release goes on without it", async () => {
    const h = new FakeHaproxies();
    h.down.add(2);
    const g = guard(h);
    await g.drain("redis1:9001", route, "its connection closed");
    assert.deepEqual(h.sent, ["1 be_redis_9001/redis1 drain"]);
    await g.undrain("redis1:9001", "it answers as the same server");
    assert.equal(h.state.get(1), "ready");
    assert.equal(g.isDrained("redis1:9001"), false);
  });

  test("the time limit calls back; a recovery that owns the drain stops it", async () => {
    const h = new FakeHaproxies();
    const limited: string[] = [];
    const g = guard(h, { limitMs: 20, onLimit: (p) => limited.push(p) });
    await g.drain("redis1:9001", route, "its connection closed");
    await g.drain("redis1:9002", { ...route, backend: "be_redis_9002" }, "its connection closed");
    g.recoveryOwns("redis1:9002");
    await sleep(200);
    assert.deepEqual(limited, ["redis1:9001"]);
  });

  test("a leftover drain (not this daemon's) is set ready where it is still drained", async () => {
    const h = new FakeHaproxies();
    h.state.set(1, "drain");
    h.state.set(2, "maint");
    const g = guard(h);
    await g.releaseLeftoverDrain("redis1:9001", route);
    assert.deepEqual(h.sent, ["1 be_redis_9001/redis1 ready"]);
    assert.equal(h.state.get(2), "maint");
  });
});
