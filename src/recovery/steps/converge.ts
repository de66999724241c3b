/**
 * The last step of every failover playbook: "succeeded" is said only when the topology has converged around the
 * recovered host. For a pair: one primary per port, its replica in sync, and every HAProxy (but one confirmed down)
 * routing to the primary at its current address, with the replica registered at its own. For an HAProxy: it routes to
 * every pair's primary, and every app-side HAProxy that names it relays to it at its new address. Looked at through
 * the providers, polled within the step's deadline (HAProxy's own health checks take a round or two).
 */
import { relayBackendName, redisBackendName } from "../../admin/haproxy-config.ts";
import { errorMessage } from "../../errors.ts";
import { getHost, pairOf } from "../../topology/topology.ts";
import type { Step, StepContext } from "../types.ts";
import { inSync } from "./redis.ts";

export const verifyConverged: Step = {
  name: "converge",
  title: "Check the topology has converged (one primary per port, its replica in sync, every HAProxy routing to it)",
  async run(ctx) {
    // The daemon's own check first: every server of the recovered host (or the HAProxy) answers it.
    const host = getHost(ctx.topology, ctx.host);
    const targets = host.role === "redis" ? host.ports.map((p) => `${ctx.host}:${p}`) : [ctx.host];
    if (!ctx.dryRun) {
      const failing = async () => (await Promise.all(targets.map((t) => ctx.monitor.recheck(t)))).filter((o) => !o.ok);
      // Once outside the wait: a check that cannot run at all fails the step instead of being waited out.
      if ((await failing()).length > 0) {
        await ctx.waitFor(`${ctx.host} answers failoverd's own check`, async () => {
          const failed = await failing();
          return failed.length === 0 ? true : failed.map((o) => `${o.target}: ${o.failure?.kind ?? "failed"}`).join(", ");
        });
      }
    }
    let last = "";
    await ctx.waitFor(
      "the topology has converged",
      async () => {
        last = (await whyNotConverged(ctx)) ?? "";
        return last === "" ? true : last;
      },
      50,
    );
    return { converged: true };
  },
};

async function whyNotConverged(ctx: StepContext): Promise<string | null> {
  try {
    const host = getHost(ctx.topology, ctx.host);
    if (host.role === "redis") return await whyPairNotConverged(ctx);
    return await whyHaproxyNotConverged(ctx);
  } catch (e) {
    return errorMessage(e);
  }
}

/** The primary host of each of the pair's ports, or why there is not exactly one. */
async function primariesOf(ctx: StepContext, hosts: readonly string[], ports: readonly number[]): Promise<Map<number, string> | string> {
  const out = new Map<number, string>();
  for (const port of ports) {
    const roles = await Promise.all(hosts.map(async (h) => ({ h, role: await ctx.providers.redis.role({ address: ctx.inventory.addressOf(h), port }) })));
    const primaries = roles.filter((r) => r.role.role === "primary").map((r) => r.h);
    if (primaries.length !== 1) return `port ${port}: ${primaries.length} primaries in ${hosts.join("/")}`;
    out.set(port, primaries[0]!);
  }
  return out;
}

async function whyPairNotConverged(ctx: StepContext): Promise<string | null> {
  const pair = pairOf(ctx.topology, ctx.host);
  if (!pair) return `${ctx.host} is in no pair`;
  const primaries = await primariesOf(ctx, pair.hosts, pair.ports);
  if (typeof primaries === "string") return primaries;
  for (const port of pair.ports) {
    const primary = primaries.get(port)!;
    const replica = pair.hosts.find((h) => h !== primary)!;
    const r = await inSync(ctx, { address: ctx.inventory.addressOf(replica), port }, { address: ctx.inventory.addressOf(primary), port });
    if (r !== true) return `${replica}:${port}: ${r}`;
  }
  for (const h of ctx.topology.haproxyHosts) {
    if (ctx.monitor.statusOf(h.name) === "down") continue;
    const rows = await ctx.providers.haproxy.serversState({ address: ctx.inventory.addressOf(h.name), port: h.adminPort });
    for (const port of pair.ports) {
      if (!Object.values(h.frontends).includes(port)) continue;
      for (const server of pair.hosts) {
        const row = rows.find((x) => x.backend === redisBackendName(port) && x.server === server);
        if (!row) return `${h.name} has no server ${redisBackendName(port)}/${server}`;
        if (row.address !== ctx.inventory.addressOf(server)) return `${h.name} has ${redisBackendName(port)}/${server} at ${row.address}, not ${ctx.inventory.addressOf(server)}`;
        if (row.inMaint) return `${h.name} has ${redisBackendName(port)}/${server} in maintenance`;
        if (row.inDrain) return `${h.name} has ${redisBackendName(port)}/${server} drained`;
        if (server === primaries.get(port) && !row.isUp) return `${h.name} does not see the primary ${redisBackendName(port)}/${server} up yet`;
      }
    }
  }
  return null;
}

async function whyHaproxyNotConverged(ctx: StepContext): Promise<string | null> {
  const h = getHost(ctx.topology, ctx.host);
  if (h.role !== "haproxy") return null;
  const address = ctx.inventory.addressOf(ctx.host);
  const rows = await ctx.providers.haproxy.serversState({ address, port: h.adminPort });
  for (const pair of ctx.topology.pairs) {
    const ports = pair.ports.filter((p) => Object.values(h.frontends).includes(p));
    if (ports.length === 0) continue;
    const primaries = await primariesOf(ctx, pair.hosts, ports);
    if (typeof primaries === "string") return primaries;
    for (const port of ports) {
      const primary = primaries.get(port)!;
      const row = rows.find((x) => x.backend === redisBackendName(port) && x.server === primary);
      if (!row || row.address !== ctx.inventory.addressOf(primary) || row.inMaint || row.inDrain || !row.isUp) {
        return `${ctx.host} does not route ${redisBackendName(port)} to the primary ${primary} at ${ctx.inventory.addressOf(primary)} yet`;
      }
    }
  }
  for (const app of ctx.topology.appHosts.filter((a) => a.upstreams.includes(ctx.host))) {
    if (ctx.monitor.statusOf(app.name) === "down") continue;
    const appRows = await ctx.providers.haproxy.serversState({ address: ctx.inventory.addressOf(app.name), port: app.adminPort });
    for (const listen of Object.keys(app.frontends)) {
      const row = appRows.find((x) => x.backend === relayBackendName(Number(listen)) && x.server === ctx.host);
      if (!row || row.address !== address || row.inMaint) return `${app.name} does not relay ${listen} to ${ctx.host} at ${address}`;
    }
  }
  return null;
}
