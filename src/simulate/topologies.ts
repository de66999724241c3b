/**
 * Generated loopback topologies: the seed's shape (two Redis hosts, two HAProxies, one app host) on 127.<net>.x.y,
 * written to a temporary directory with its own run and state directories. Tests take one second octet per file;
 * the benchmarks take 127.60-69. Nothing is started here.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseTopology } from "../topology/load.ts";
import type { Topology } from "../topology/topology.ts";

export interface LoopbackTopologyOptions {
  /** The second octet: 127.<net>.x.y. Unique per user (test file, benchmark). */
  readonly net: number;
  /** Redis ports of each host; HAProxy frontends are 8001.., app frontends 7001.., in the same order. */
  readonly ports?: readonly number[];
  readonly intervalMs?: number;
  readonly timeoutMs?: number;
  readonly fall?: number;
  readonly rise?: number;
  /** Extra YAML appended at the top level (e.g. a redis: section). */
  readonly extra?: string;
  readonly cooldownMs?: number;
  /** The topology's name; `t<net>` by default. */
  readonly name?: string;
  /** recovery.launchTimeoutMs (a modelled cloud launch takes longer than stepTimeoutMs). */
  readonly launchTimeoutMs?: number;
  /** Extra YAML lines under provider: (two-space indented), e.g. spares or latency. */
  readonly provider?: string;
}

export interface LoopbackTopology {
  readonly dir: string;
  readonly path: string;
  readonly yaml: string;
  readonly topology: Topology;
  /** Removes the directory (stop the sandbox first). */
  cleanup(): void;
}

export function loopbackTopology(o: LoopbackTopologyOptions): LoopbackTopology {
  const n = o.net;
  const name = o.name ?? `t${n}`;
  const ports = o.ports ?? [9001, 9002];
  const fronts = ports.map((p, i) => `${8001 + i}: ${p}`).join(", ");
  const appFronts = ports.map((_, i) => `${7001 + i}: ${8001 + i}`).join(", ");
  const dir = mkdtempSync(join(tmpdir(), `failoverd-${name}-`));
  const pool = (x: number) => `[${Array.from({ length: 8 }, (_, i) => `127.${n}.${x}.${11 + i}`).join(", ")}]`;
  const yaml = `topology: ${name}
hosts:
  redis1: { role: redis, address: 127.${n}.1.1, ports: [${ports.join(", ")}] }
  redis2: { role: redis, address: 127.${n}.1.2, ports: [${ports.join(", ")}] }
  haproxy1: { role: haproxy, address: 127.${n}.2.1, frontends: { ${fronts} }, adminPort: 9999, dnsName: haproxy1.${name}.internal }
  haproxy2: { role: haproxy, address: 127.${n}.2.2, frontends: { ${fronts} }, adminPort: 9999, dnsName: haproxy2.${name}.internal }
  app: { role: app, address: 127.${n}.3.1, frontends: { ${appFronts} }, upstreams: [haproxy1, haproxy2], adminPort: 9999 }
pairs:
  - [redis1, redis2]
checks: { intervalMs: ${o.intervalMs ?? 200}, timeoutMs: ${o.timeoutMs ?? 150}, fall: ${o.fall ?? 3}, rise: ${o.rise ?? 2} }
recovery: { cooldownMs: ${o.cooldownMs ?? 60000}, stepTimeoutMs: 20000, syncTimeoutMs: 30000${o.launchTimeoutMs ? `, launchTimeoutMs: ${o.launchTimeoutMs}` : ""} }
provider:
  kind: local
  runDir: ${join(dir, "sandbox")}
  addressPool: { redis: ${pool(1)}, haproxy: ${pool(2)} }
${o.provider ?? ""}
stateDir: ${join(dir, "state")}
${o.extra ?? ""}
`;
  const path = join(dir, "topology.yaml");
  writeFileSync(path, yaml);
  return {
    dir,
    path,
    yaml,
    topology: parseTopology(yaml, path),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
