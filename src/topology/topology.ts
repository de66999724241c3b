/**
 * The typed, immutable view of a validated config. Addresses here are the *declared* ones; a replacement machine
 * gets a new address, which lives in the Inventory (runtime state), not here.
 */
import type { AppHostConfig, Config, HaproxyHostConfig, RedisHostConfig } from "./schema.ts";

export type Named<T> = Readonly<T> & { readonly name: string };
export type RedisHost = Named<RedisHostConfig>;
export type HaproxyHost = Named<HaproxyHostConfig>;
export type AppHost = Named<AppHostConfig>;
export type Host = RedisHost | HaproxyHost | AppHost;

export interface Pair {
  readonly index: number;
  readonly hosts: readonly [string, string];
  readonly ports: readonly number[];
}

export interface Topology {
  readonly source: string;
  readonly config: Config;
  readonly name: string;
  readonly hosts: ReadonlyMap<string, Host>;
  readonly redisHosts: readonly RedisHost[];
  readonly haproxyHosts: readonly HaproxyHost[];
  readonly appHosts: readonly AppHost[];
  readonly pairs: readonly Pair[];
}

export function buildTopology(config: Config, source: string): Topology {
  const hosts = new Map<string, Host>();
  for (const [name, h] of Object.entries(config.hosts)) hosts.set(name, Object.freeze({ ...h, name }) as Host);
  const all = [...hosts.values()];
  return Object.freeze({
    source,
    config,
    name: config.topology,
    hosts,
    redisHosts: all.filter((h): h is RedisHost => h.role === "redis"),
    haproxyHosts: all.filter((h): h is HaproxyHost => h.role === "haproxy"),
    appHosts: all.filter((h): h is AppHost => h.role === "app"),
    pairs: config.pairs.map(([a, b], index) => {
      const ha = config.hosts[a];
      const ports = ha?.role === "redis" ? [...ha.ports].sort((x, y) => x - y) : [];
      return Object.freeze({ index, hosts: [a, b] as const, ports });
    }),
  });
}

export function getHost(t: Topology, name: string): Host {
  const h = t.hosts.get(name);
  if (!h) throw new Error(`unknown host '${name}' (known: ${[...t.hosts.keys()].join(", ")})`);
  return h;
}

export function pairOf(t: Topology, host: string): Pair | undefined {
  return t.pairs.find((p) => p.hosts.includes(host));
}

/** The other host of a Redis host's pair. */
export function twinOf(t: Topology, host: string): string | undefined {
  const p = pairOf(t, host);
  if (!p) return undefined;
  return p.hosts[0] === host ? p.hosts[1] : p.hosts[0];
}

/** The HAProxy backend and server names failoverd uses for a Redis server: be_redis_9001 / redis1. */
export function backendName(redisPort: number): string {
  return `be_redis_${redisPort}`;
}

/** The ports a warm Redis spare serves: every port of the declared Redis hosts (it may replace any of them). */
export function sparePorts(t: Topology): number[] {
  return [...new Set(t.redisHosts.flatMap((h) => h.ports))].sort((a, b) => a - b);
}
