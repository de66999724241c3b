/**
 * One round of checks over the topology: every Redis server, every HAProxy and app-side HAProxy, concurrently, each
 * under the check timeout. The Checker keeps one connection per endpoint between rounds.
 */
import { HaproxyAdminClient } from "../admin/haproxy.ts";
import type { Endpoint, RedisAuth } from "../admin/redis.ts";
import { RedisProbePool } from "../admin/redis-probe.ts";
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

const ROUND_CONCURRENCY = 256;

export class Checker {
  private readonly pool: RedisProbePool;

  constructor(
    private readonly timeoutMs: number,
    auth: RedisAuth = {},
    private readonly now: () => number = Date.now,
    /** A Redis server closed the checker's kept connection between checks (a crash, most often): check it now. */
    onConnectionLost?: (endpoint: Endpoint) => void,
  ) {
    // One kept probe connection per Redis endpoint; each probe carries the check's deadline.
    this.pool = new RedisProbePool(auth, onConnectionLost);
  }

  /** One check of `target`, under the check timeout (or `timeoutMs`, for a quick re-check). */
  check(target: CheckTarget, timeoutMs = this.timeoutMs): Promise<Observation> {
    if (target.type === "redis") {
      return checkRedis(target, this.pool.get(target), timeoutMs, this.now);
    }
    const admin = new HaproxyAdminClient({ address: target.address, port: target.adminPort }, timeoutMs);
    return checkHaproxy(target, admin, timeoutMs, this.now);
  }

  /**
   * Every target once, at most `ROUND_CONCURRENCY` checks in flight: thousands of connections opened in one burst
   * would let the deadlines of the last ones expire before the monitor has even sent their requests.
   */
  async round(targets: readonly CheckTarget[]): Promise<Observation[]> {
    const out: Observation[] = new Array(targets.length);
    let next = 0;
    const worker = async () => {
      while (next < targets.length) {
        const i = next++;
        out[i] = await this.check(targets[i]!);
      }
    };
    await Promise.all(Array.from({ length: Math.min(ROUND_CONCURRENCY, targets.length) }, worker));
    return out;
  }

  close(): void {
    this.pool.closeAll();
  }
}
