/**
 * Is the topology whole? Every pair has exactly one primary and a replica of it in sync; every HAProxy has the
 * primary up and the replica registered at its current address; every app-side frontend reaches a primary.
 * Null when so, else the first reason why not. Used after `sandbox up` and to call a recovery complete.
 */
import { HaproxyAdminClient } from "../admin/haproxy.ts";
import { redisBackendName } from "../admin/haproxy-config.ts";
import { RedisAdminClient, type RedisAuth } from "../admin/redis.ts";
import { errorMessage } from "../errors.ts";
import type { Inventory } from "../topology/inventory.ts";
import type { Topology } from "../topology/topology.ts";

export async function whyNotConverged(t: Topology, inv: Inventory, auth: RedisAuth = {}, timeoutMs = 1000): Promise<string | null> {
  const clients: RedisAdminClient[] = [];
  const redis = (address: string, port: number) => {
    const c = new RedisAdminClient({ address, port }, timeoutMs, auth);
    clients.push(c);
    return c;
  };
  try {
    const primaryOf = new Map<number, string>();
    for (const pair of t.pairs) {
      for (const port of pair.ports) {
        const [a, b] = pair.hosts.map((h) => ({ host: h, address: inv.addressOf(h) }));
        const infos = await Promise.all([a!, b!].map((x) => redis(x.address, port).info("replication")));
        const primaries = [a!, b!].filter((_, i) => infos[i]?.["role"] === "master");
        if (primaries.length !== 1) return `port ${port}: ${primaries.length} primaries in ${pair.hosts.join("/")}`;
        const primary = primaries[0]!;
        const replica = primary === a ? b! : a!;
        const pInfo = infos[primary === a ? 0 : 1]!;
        const rInfo = infos[primary === a ? 1 : 0]!;
        if (rInfo["master_host"] !== primary.address || Number(rInfo["master_port"]) !== port) {
          return `${replica.host}:${port} does not replicate ${primary.host}`;
        }
        if (rInfo["master_link_status"] !== "up" || rInfo["master_sync_in_progress"] !== "0") {
          return `${replica.host}:${port} is not in sync yet`;
        }
        if (!(pInfo["slave0"] ?? "").includes(`ip=${replica.address},port=${port},state=online`)) {
          return `${primary.host}:${port} does not list ${replica.host} as an online replica`;
        }
        primaryOf.set(port, primary.host);
      }
    }
    for (const h of t.haproxyHosts) {
      const rows = await new HaproxyAdminClient({ address: inv.addressOf(h.name), port: h.adminPort }, timeoutMs).showServersState();
      for (const redisPort of Object.values(h.frontends)) {
        const be = redisBackendName(redisPort);
        const pair = t.pairs.find((p) => p.ports.includes(redisPort));
        for (const host of pair?.hosts ?? []) {
          const row = rows.find((r) => r.backend === be && r.server === host);
          if (!row) return `${h.name} has no server ${be}/${host}`;
          if (row.address !== inv.addressOf(host)) return `${h.name} has ${be}/${host} at ${row.address}, not ${inv.addressOf(host)}`;
          if (row.inMaint) return `${h.name} has ${be}/${host} in maintenance`;
          if (row.inDrain) return `${h.name} has ${be}/${host} drained`;
          if (host === primaryOf.get(redisPort) && !row.isUp) return `${h.name} does not see the primary ${be}/${host} up yet`;
        }
      }
    }
    for (const h of t.appHosts) {
      const rows = await new HaproxyAdminClient({ address: inv.addressOf(h.name), port: h.adminPort }, timeoutMs).showServersState();
      for (const u of h.upstreams) {
        for (const row of rows.filter((r) => r.server === u)) {
          if (row.address !== inv.addressOf(u)) return `${h.name} relays to ${u} at ${row.address}, not ${inv.addressOf(u)}`;
          if (row.inMaint || !row.isUp) return `${h.name} does not see ${u} up`;
        }
      }
      for (const listen of Object.keys(h.frontends)) {
        const role = await redis(inv.addressOf(h.name), Number(listen)).role();
        if (role.role !== "primary") return `${h.name}:${listen} does not reach a primary`;
      }
    }
    return null;
  } catch (e) {
    return errorMessage(e);
  } finally {
    for (const c of clients) c.close();
  }
}
