/**
 * One round of checks over the topology: every Redis server, every HAProxy and app-side HAProxy, concurrently, each
 * under the check timeout. The Checker keeps one connection per endpoint between rounds.
 */
import { HaproxyAdminClient } from "../admin/haproxy.ts";
import { type RedisAuth, RedisClientPool } from "../admin/redis.ts";
import type { Inventory } from "../topology/inventory.ts";
import type { Topology } from "../topology/topology.ts";
import { checkHaproxy, type HaproxyTarget } from "./haproxy.ts";
import type { Observation } from "./observation.ts";
import { checkRedis, type RedisTarget } from "./redis.ts";

export type CheckTarget = ({ type: "redis" } & RedisTarget) | ({ type: "haproxy"; adminPort: number } & HaproxyTarget);

export function targetId(t: CheckTarget): string {
  return t.type === "redis" ? `${t.host}:${t.port}` : t.host;
}

/** Every target of the topology at its current address. */
export function checkTargets(t: Topology, inv: Inventory): CheckTarget[] {
  const out: CheckTarget[] = [];
  for (const h of t.redisHosts) {
    for (const port of h.ports) out.push({ type: "redis", host: h.name, port, address: inv.addressOf(h.name) });
  }
  for (const h of [...t.haproxyHosts, ...t.appHosts]) {
    out.push({
      type: "haproxy",
      host: h.name,
      role: h.role,
      address: inv.addressOf(h.name),
      adminPort: h.adminPort,
      frontendPorts: Object.keys(h.frontends).map(Number),
    });
  }
  return out;
}

export class Checker {
  private readonly pool: RedisClientPool;

  constructor(
    private readonly timeoutMs: number,
    auth: RedisAuth = {},
    private readonly now: () => number = Date.now,
  ) {
    // The pool's own per-command deadline is a backstop; the check's deadline is what bounds a round.
    this.pool = new RedisClientPool(timeoutMs, auth);
  }

  check(target: CheckTarget): Promise<Observation> {
    if (target.type === "redis") {
      return checkRedis(target, this.pool.get(target), this.timeoutMs, this.now);
    }
    const admin = new HaproxyAdminClient({ address: target.address, port: target.adminPort }, this.timeoutMs);
    return checkHaproxy(target, admin, this.timeoutMs, this.now);
  }

  round(targets: readonly CheckTarget[]): Promise<Observation[]> {
    return Promise.all(targets.map((t) => this.check(t)));
  }

  close(): void {
    this.pool.closeAll();
  }
}
