/**
 * `failoverd sandbox up|down|status`: the whole declared topology as real processes, and its teardown.
 * The first host of each pair starts as primary; its twin replicates it port by port.
 */
import { existsSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { renderForHost } from "../../admin/haproxy-config.ts";
import type { RedisAuth } from "../../admin/redis.ts";
import { whyNotConverged } from "../../checks/converged.ts";
import { ProviderError } from "../../errors.ts";
import { Inventory } from "../../topology/inventory.ts";
import { sparePorts, type Topology } from "../../topology/topology.ts";
import { LocalCompute } from "./index.ts";
import { isRunning, isStopped, whyNotFree } from "./processes.ts";
import { type MachineRecord, Sandbox } from "./sandbox.ts";

export function sandboxOf(t: Topology): Sandbox {
  const p = t.config.provider;
  if (p.kind !== "local") throw new ProviderError(`the sandbox needs provider.kind local; ${t.source} uses ${p.kind}`, false);
  return new Sandbox(t.name, p);
}

/** Every address:port the declared topology listens on. */
export function declaredListeners(t: Topology): { address: string; port: number; what: string }[] {
  const out: { address: string; port: number; what: string }[] = [];
  for (const h of t.hosts.values()) {
    if (h.role === "redis") for (const port of h.ports) out.push({ address: h.address, port, what: `${h.name} redis` });
    else {
      out.push({ address: h.address, port: h.adminPort, what: `${h.name} admin` });
      for (const l of Object.keys(h.frontends)) out.push({ address: h.address, port: Number(l), what: `${h.name} frontend` });
    }
  }
  return out;
}

export interface UpOptions {
  readonly auth?: RedisAuth;
  readonly timeoutMs?: number;
  readonly onProgress?: (line: string) => void;
}

export async function sandboxUp(t: Topology, opts: UpOptions = {}): Promise<Sandbox> {
  const sandbox = sandboxOf(t);
  const p = sandbox.config;
  const say = opts.onProgress ?? (() => {});
  const live = sandbox.running().filter((m) => m.processes.some(isRunning));
  if (live.length > 0) {
    throw new ProviderError(
      `a sandbox is already running in ${sandbox.runDir} (${live.map((m) => m.host).join(", ")}); run failoverd sandbox down first`,
      false,
    );
  }
  const busy = (await Promise.all(declaredListeners(t).map((l) => whyNotFree(l.address, l.port)))).filter(
    (w): w is string => w !== null,
  );
  if (busy.length > 0) throw new ProviderError(`cannot start the sandbox: ${busy.join("; ")}`, false);
  await sandbox.update((s) => {
    s.machines = [];
    s.dns = {};
  });
  resetDaemonState(t);
  rmSync(join(sandbox.runDir, "machines"), { recursive: true, force: true });

  const password = opts.auth?.password;
  const creds = { password, username: opts.auth?.username };
  const inventory = new Inventory(t);
  for (const pair of t.pairs) {
    const [primaryHost, replicaHost] = pair.hosts;
    const primary = await sandbox.createMachine(primaryHost, "redis", inventory.addressOf(primaryHost));
    for (const port of pair.ports) await sandbox.startRedis(primary, port, creds);
    const replica = await sandbox.createMachine(replicaHost, "redis", inventory.addressOf(replicaHost));
    for (const port of pair.ports) {
      await sandbox.startRedis(replica, port, { replicaOf: { address: primary.address, port }, ...creds });
    }
    say(`redis   ${primaryHost} ${primary.address} ports ${pair.ports.join(", ")} (primary)`);
    say(`redis   ${replicaHost} ${replica.address} ports ${pair.ports.join(", ")} (replica of ${primaryHost})`);
  }
  const primaryOf = (port: number) => t.pairs.find((p) => p.ports.includes(port))?.hosts[0];
  for (const h of t.haproxyHosts) {
    const m = await sandbox.createMachine(h.name, "haproxy", h.address);
    await sandbox.applyHaproxy(m, renderForHost(t, inventory, h.name, { primaryOf }));
    if (h.dnsName) await sandbox.setDns(h.dnsName, h.address);
    say(`haproxy ${h.name} ${h.address} ${Object.entries(h.frontends).map(([l, r]) => `${l}->${r}`).join(", ")}, admin ${h.address}:${h.adminPort}`);
  }
  for (const h of t.appHosts) {
    const m = await sandbox.createMachine(h.name, "app", h.address);
    await sandbox.applyHaproxy(m, renderForHost(t, inventory, h.name));
    say(`app     ${h.name} ${h.address} ${Object.entries(h.frontends).map(([l, r]) => `${l}->${r}`).join(", ")} via ${h.upstreams.join(", ")}`);
  }
  await waitUntilServing(t, inventory, opts.auth ?? {}, opts.timeoutMs ?? 20_000);
  // The warm spares exist before the story starts: launched at once (provider.latency models a recovery, not this).
  const compute = new LocalCompute(sandbox, creds);
  for (const role of ["redis", "haproxy"] as const) {
    const spec = p.spares[role];
    for (let i = 0; i < (spec?.count ?? 0); i++) {
      const spare = await compute.addSpare(role, spec!.state, role === "redis" ? sparePorts(t) : [], AbortSignal.timeout(opts.timeoutMs ?? 20_000));
      say(`spare   ${role} ${spare.address} (${spare.state})`);
    }
  }
  return sandbox;
}

/** Resolves once the topology is whole (see whyNotConverged). */
export async function waitUntilServing(t: Topology, inv: Inventory, auth: RedisAuth, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let why = "";
  while (Date.now() < deadline) {
    why = (await whyNotConverged(t, inv, auth)) ?? "";
    if (why === "") return;
    await sleep(50);
  }
  throw new ProviderError(`the sandbox did not become healthy within ${timeoutMs} ms: ${why}`, true);
}

/**
 * A fresh sandbox is a new world: the daemon's record of where hosts live and what it was doing would be wrong.
 * The journal is kept, renamed, for the record.
 */
function resetDaemonState(t: Topology): void {
  const dir = t.config.stateDir;
  for (const f of ["inventory.json", "daemon.json"]) rmSync(join(dir, f), { force: true });
  const journal = join(dir, "journal.jsonl");
  if (existsSync(journal)) renameSync(journal, join(dir, `journal.${Date.now()}.jsonl`));
}

export async function sandboxDown(t: Topology): Promise<number> {
  return sandboxOf(t).down();
}

export interface MachineStatus {
  readonly host: string;
  readonly id: string;
  readonly role: string;
  readonly address: string;
  readonly processes: { pid: number; kind: string; port?: number; state: "running" | "stopped" | "gone" }[];
}

export function sandboxStatus(t: Topology): { runDir: string; machines: MachineStatus[]; dns: Record<string, string> } {
  const sandbox = sandboxOf(t);
  const s = sandbox.read();
  return {
    runDir: sandbox.runDir,
    dns: s.dns,
    machines: s.machines
      .filter((m: MachineRecord) => m.status === "running")
      .map((m) => ({
        host: m.host,
        id: m.id,
        role: m.role,
        address: m.address,
        processes: m.processes.map((p) => ({
          pid: p.pid,
          kind: p.kind,
          ...(p.port !== undefined ? { port: p.port } : {}),
          state: !isRunning(p) ? ("gone" as const) : isStopped(p) ? ("stopped" as const) : ("running" as const),
        })),
      })),
  };
}
