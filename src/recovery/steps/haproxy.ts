/**
 * The HAProxy half: configure a new HAProxy like the survivor, point DNS at it and move the app-side HAProxies.
 */
import { cmd } from "../../admin/haproxy.ts";
import { redisBackendName, relayBackendName, renderForHost } from "../../admin/haproxy-config.ts";
import type { Endpoint } from "../../admin/redis.ts";
import { errorMessage, FailoverdError } from "../../errors.ts";
import { getHost, type Topology } from "../../topology/topology.ts";
import type { Step, StepContext } from "../types.ts";
import type { LaunchResult } from "./machines.ts";

/**
 * Which host is primary for each Redis port now, asked of the servers themselves (ROLE), never of the config.
 * `prefer` wins for its pair's ports (the survivor just promoted).
 */
export async function currentPrimaries(ctx: StepContext, prefer?: string): Promise<(port: number) => string | undefined> {
  const map = new Map<number, string>();
  await Promise.all(
    ctx.topology.pairs.flatMap((pair) =>
      pair.ports.map(async (port) => {
        if (prefer && pair.hosts.includes(prefer)) {
          map.set(port, prefer);
          return;
        }
        for (const h of pair.hosts) {
          const role = await ctx.read(() => ctx.providers.redis.role({ address: ctx.inventory.addressOf(h), port })).catch(() => undefined);
          if (role?.role === "primary") map.set(port, h);
        }
      }),
    ),
  );
  return (port) => map.get(port);
}

/** The HAProxy hosts other than the failed one that answer their Runtime API, best first. */
function survivors(t: Topology, failed: string): string[] {
  return t.haproxyHosts.filter((h) => h.name !== failed).map((h) => h.name);
}

export const configureLikeSurvivor: Step = {
  name: "configure",
  title: "Configure the new HAProxy exactly like the surviving one",
  async run(ctx) {
    const host = getHost(ctx.topology, ctx.host);
    if (host.role !== "haproxy") throw new FailoverdError(`${ctx.host} is not an HAProxy host`);
    // The survivor's runtime view says which Redis servers are fenced (maint); copy it.
    const outOfService = new Set<string>();
    let copiedFrom: string | null = null;
    for (const name of survivors(ctx.topology, ctx.host)) {
      const s = getHost(ctx.topology, name);
      if (s.role !== "haproxy") continue;
      try {
        const rows = await ctx.providers.haproxy.serversState({ address: ctx.inventory.addressOf(name), port: s.adminPort });
        for (const r of rows) if (r.inMaint) outOfService.add(r.server);
        copiedFrom = name;
        break;
      } catch (e) {
        ctx.log.warn({ survivor: name, err: errorMessage(e) }, "survivor does not answer; trying the next");
      }
    }
    const primaryOf = await currentPrimaries(ctx);
    const launched = ctx.result<LaunchResult>("launch");
    if (!launched) throw new FailoverdError(`no machine was launched for ${ctx.host}`);
    const machine = { id: launched.machineId, host: ctx.host, role: "haproxy" as const, address: launched.address };
    const text = renderForHost(ctx.topology, ctx.inventory, ctx.host, { outOfService, primaryOf });
    await ctx.providers.proxies.applyConfig(machine, text, ctx.signal, { reload: true });
    const admin: Endpoint = { address: machine.address, port: host.adminPort };
    // Skip `rise`: the primaries were just verified by ROLE.
    await ctx.waitFor(`${ctx.host} answers its Runtime API`, async () => {
      await ctx.providers.haproxy.serversState(admin);
      return true;
    });
    const up = Object.values(host.frontends).flatMap((redisPort) => {
      const p = primaryOf(redisPort);
      return p ? [cmd.health(redisBackendName(redisPort), p, "up")] : [];
    });
    await ctx.providers.haproxy.apply(admin, up);
    await ctx.verify(`${ctx.host} routes every frontend to its primary`, async () => {
      const rows = await ctx.providers.haproxy.serversState(admin);
      return Object.values(host.frontends).every((rp) =>
        rows.some((r) => r.backend === redisBackendName(rp) && r.server === primaryOf(rp) && r.isUp && !r.inMaint),
      );
    });
    return { address: machine.address, copiedFrom, outOfService: [...outOfService].sort() };
  },
};

export const pointDnsAtReplacement: Step = {
  name: "point-dns",
  title: "Point DNS at the new machine's address and move the app-side HAProxies to it",
  async run(ctx) {
    const host = getHost(ctx.topology, ctx.host);
    if (host.role !== "haproxy") throw new FailoverdError(`${ctx.host} is not an HAProxy host`);
    const address = ctx.inventory.addressOf(ctx.host);
    if (host.dnsName) {
      await ctx.providers.dns.upsert(host.dnsName, address, ctx.signal);
      await ctx.verify(`${host.dnsName} resolves to ${address}`, async () => (await ctx.providers.dns.resolve(host.dnsName!, ctx.signal)) === address);
    }
    const moved: string[] = [];
    for (const app of ctx.topology.appHosts.filter((a) => a.upstreams.includes(ctx.host))) {
      const admin = { address: ctx.inventory.addressOf(app.name), port: app.adminPort };
      const relays = Object.entries(app.frontends).map(([listen, port]) => ({ be: relayBackendName(Number(listen)), port }));
      // The addresses first, on their own: HAProxy runs every command of a batch, and a relay must not be forced up at
      // its old address (the dead HAProxy's) because its new one was refused.
      await ctx.providers.haproxy.apply(admin, relays.map((r) => cmd.addr(r.be, ctx.host, address, r.port)));
      // The new HAProxy was verified in `configure`: use it now rather than after `rise` checks.
      await ctx.providers.haproxy.apply(admin, relays.flatMap((r) => [cmd.state(r.be, ctx.host, "ready"), cmd.health(r.be, ctx.host, "up")]));
      await ctx.verify(`${app.name} relays to ${ctx.host} at ${address}`, async () => {
        const rows = await ctx.providers.haproxy.serversState(admin);
        return rows.filter((r) => r.server === ctx.host).every((r) => r.address === address && !r.inMaint);
      });
      const machine = await ctx.read(() => ctx.providers.compute.find(app.name, ctx.signal));
      if (machine) {
        await ctx.providers.proxies.applyConfig(machine, renderForHost(ctx.topology, ctx.inventory, app.name), ctx.signal, { reload: false });
      }
      moved.push(app.name);
    }
    return { record: host.dnsName ?? null, address, appProxies: moved };
  },
};
