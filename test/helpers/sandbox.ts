/**
 * Test topologies on loopback. Each test file takes its own second octet (127.N.x.y), so files never share an
 * address, and checks the addresses are free before starting anything: a sandbox left running never breaks a test.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseTopology } from "../../src/topology/load.ts";
import type { Topology } from "../../src/topology/topology.ts";
import { declaredListeners, sandboxDown, sandboxUp } from "../../src/providers/local/up.ts";
import { whyNotFree } from "../../src/providers/local/processes.ts";

export interface TestTopologyOptions {
  /** The second octet: 127.<net>.x.y. Unique per test file. */
  readonly net: number;
  readonly ports?: readonly number[];
  readonly intervalMs?: number;
  readonly timeoutMs?: number;
  readonly fall?: number;
  readonly rise?: number;
  /** Extra YAML appended at the top level (e.g. a redis: section). */
  readonly extra?: string;
  readonly cooldownMs?: number;
}

export interface TestTopology {
  readonly dir: string;
  readonly path: string;
  readonly yaml: string;
  readonly topology: Topology;
  cleanup(): void;
}

export function testTopology(o: TestTopologyOptions): TestTopology {
  const n = o.net;
  const ports = o.ports ?? [9001, 9002];
  const fronts = ports.map((p, i) => `${8001 + i}: ${p}`).join(", ");
  const appFronts = ports.map((_, i) => `${7001 + i}: ${8001 + i}`).join(", ");
  const dir = mkdtempSync(join(tmpdir(), `failoverd-t${n}-`));
  const pool = (x: number) => `[${Array.from({ length: 8 }, (_, i) => `127.${n}.${x}.${11 + i}`).join(", ")}]`;
  const yaml = `topology: t${n}
hosts:
  redis1: { role: redis, address: 127.${n}.1.1, ports: [${ports.join(", ")}] }
  redis2: { role: redis, address: 127.${n}.1.2, ports: [${ports.join(", ")}] }
  haproxy1: { role: haproxy, address: 127.${n}.2.1, frontends: { ${fronts} }, adminPort: 9999, dnsName: haproxy1.t${n}.internal }
  haproxy2: { role: haproxy, address: 127.${n}.2.2, frontends: { ${fronts} }, adminPort: 9999, dnsName: haproxy2.t${n}.internal }
  app: { role: app, address: 127.${n}.3.1, frontends: { ${appFronts} }, upstreams: [haproxy1, haproxy2], adminPort: 9999 }
pairs:
  - [redis1, redis2]
checks: { intervalMs: ${o.intervalMs ?? 200}, timeoutMs: ${o.timeoutMs ?? 150}, fall: ${o.fall ?? 3}, rise: ${o.rise ?? 2} }
recovery: { cooldownMs: ${o.cooldownMs ?? 60000}, stepTimeoutMs: 20000, syncTimeoutMs: 30000 }
provider:
  kind: local
  runDir: ${join(dir, "sandbox")}
  addressPool: { redis: ${pool(1)}, haproxy: ${pool(2)} }
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

/** Throws when any address:port of the topology (or of its replacement pools) is in use. */
export async function assertAddressesFree(t: Topology): Promise<void> {
  const busy = (await Promise.all(declaredListeners(t).map((l) => whyNotFree(l.address, l.port)))).filter(Boolean);
  if (busy.length > 0) throw new Error(`test addresses are busy (a sandbox left running?): ${busy.join("; ")}`);
}

/** Starts the sandbox for a test topology; the returned function stops every process it started. */
export async function startSandbox(tt: TestTopology): Promise<() => Promise<void>> {
  await assertAddressesFree(tt.topology);
  try {
    await sandboxUp(tt.topology);
  } catch (e) {
    await sandboxDown(tt.topology);
    throw e;
  }
  return async () => {
    await sandboxDown(tt.topology);
  };
}
