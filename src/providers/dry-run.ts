/**
 * Dry-run: wraps a provider set. Reads pass through to the real world; every write is recorded and described
 * ("would terminate sandbox-redis1-1 (redis1 at 127.0.1.1)") and changes nothing.
 */
import { commandText, type ServerCommand } from "../admin/haproxy.ts";
import { type Endpoint, endpointId } from "../admin/redis.ts";
import type { KeepMode, LaunchRequest, Machine, MachineRole, Providers, Spare, SpareState } from "./types.ts";

export interface DescribedAction {
  readonly provider: "compute" | "dns" | "proxies" | "redis" | "haproxy";
  readonly description: string;
}

/** The address a dry-run launch pretends the new machine has. */
export const dryRunAddress = (host: string) => `<new ${host} address>`;

export function isDryRunAddress(address: string): boolean {
  return address.startsWith("<new ");
}

export class DryRunRecorder {
  readonly actions: DescribedAction[] = [];
  constructor(private readonly onAction?: (a: DescribedAction) => void) {}
  record(provider: DescribedAction["provider"], description: string): void {
    const a = { provider, description };
    this.actions.push(a);
    this.onAction?.(a);
  }
}

export function dryRun(real: Providers, recorder: DryRunRecorder): Providers {
  const r = recorder;
  const hap = (h: Endpoint) => `HAProxy ${endpointId(h)}`;
  return {
    compute: {
      kind: `dry-run(${real.compute.kind})`,
      async launch(req: LaunchRequest): Promise<Machine> {
        r.record("compute", `would launch a ${req.role} machine for ${req.host}${req.ports ? ` serving ports ${req.ports.join(", ")}` : ""} (${real.compute.kind})`);
        for (const line of real.compute.describeLaunch?.(req) ?? []) r.record("compute", `  ${line}`);
        return { id: `<new ${req.host} machine>`, host: req.host, role: req.role, address: dryRunAddress(req.host) };
      },
      async terminate(m: Machine): Promise<void> {
        r.record("compute", `would terminate ${m.id} (${m.host} at ${m.address})`);
        for (const line of real.compute.describeTerminate?.(m) ?? []) r.record("compute", `  ${line}`);
      },
      async ready(m: Machine): Promise<Machine> {
        r.record("compute", `would finish ${m.id} (${m.host}), launched by an earlier attempt: wait until it runs and serves (${real.compute.kind})`);
        return m;
      },
      async keep(m: Machine, how: { mode: KeepMode; recoveryId: string }): Promise<void> {
        const what = how.mode === "stop" ? "stop" : "quarantine (no ingress, tagged with the recovery id) and stop";
        r.record("compute", `would ${what} ${m.id} (${m.host} at ${m.address}) and keep it for the post-mortem`);
        for (const line of real.compute.describeKeep?.(m, how) ?? []) r.record("compute", `  ${line}`);
      },
      kept: (signal) => real.compute.kept(signal),
      spares: (role, signal) => real.compute.spares(role, signal),
      async addSpare(role: MachineRole, state: SpareState): Promise<Spare> {
        r.record("compute", `would launch a ${role} spare from the image and keep it ${state}`);
        return { id: `<new ${role} spare>`, role, address: `<new ${role} spare address>`, state };
      },
      async claim(req: LaunchRequest, signal: AbortSignal): Promise<Machine | null> {
        let pool: Spare[];
        try {
          pool = (await real.compute.spares(req.role, signal)).filter((x) => x.state !== "pending");
        } catch {
          r.record("compute", `would take a warm ${req.role} spare for ${req.host} if the pool has one (looked up at run time), else:`);
          return null;
        }
        const spare = pool.find((x) => x.state === "running") ?? pool[0];
        if (!spare) {
          r.record("compute", `no warm ${req.role} spare is left: would launch from the image`);
          return null;
        }
        r.record("compute", `would take the ${spare.state} spare ${spare.id} (${spare.address}) for ${req.host}${spare.state === "stopped" ? " and start it" : ""}`);
        for (const line of real.compute.describeClaim?.(spare, req) ?? []) r.record("compute", `  ${line}`);
        return { id: spare.id, host: req.host, role: req.role, address: spare.address };
      },
      find: (host, signal) => real.compute.find(host, signal),
    },
    dns: {
      async upsert(name: string, address: string): Promise<void> {
        r.record("dns", `would point ${name} at ${address} and wait until the change is in sync`);
        for (const line of real.dns.describeUpsert?.(name, address) ?? []) r.record("dns", `  ${line}`);
      },
      resolve: (name, signal) => real.dns.resolve(name, signal),
    },
    proxies: {
      async applyConfig(m: Machine, text: string, _signal: AbortSignal, options?: { reload?: boolean }): Promise<void> {
        const then = options?.reload === false ? "keep it for the next reload" : "start or reload HAProxy";
        r.record("proxies", `would write failoverd's HAProxy file (${text.split("\n").length} lines) on ${m.host}, check it with haproxy -c beside the host's own config, and ${then}`);
        for (const line of real.proxies.describeApply?.(m, text, options) ?? []) r.record("proxies", `  ${line}`);
      },
    },
    redis: {
      role: (ep) => real.redis.role(ep),
      info: (ep, s) => real.redis.info(ep, s),
      async promote(ep: Endpoint): Promise<void> {
        r.record("redis", `would send REPLICAOF NO ONE to ${endpointId(ep)}`);
      },
      async replicate(ep: Endpoint, primary: Endpoint): Promise<void> {
        r.record("redis", `would send REPLICAOF ${primary.address} ${primary.port} to ${endpointId(ep)}`);
      },
      async failover(ep: Endpoint, to: Endpoint, timeoutMs: number): Promise<void> {
        r.record("redis", `would send FAILOVER TO ${to.address} ${to.port} TIMEOUT ${timeoutMs} to ${endpointId(ep)}`);
      },
      async abortFailover(ep: Endpoint): Promise<void> {
        r.record("redis", `would send FAILOVER ABORT to ${endpointId(ep)}`);
      },
      syncHeld: (ep) => real.redis.syncHeld(ep),
      async holdSync(ep: Endpoint): Promise<void> {
        r.record("redis", `would hold ${endpointId(ep)}'s resync (CONFIG SET masterauth to a random value)`);
      },
      async releaseSync(ep: Endpoint): Promise<void> {
        r.record("redis", `would release ${endpointId(ep)}'s resync (CONFIG SET masterauth back)`);
      },
      close: () => real.redis.close(),
    },
    haproxy: {
      serversState: (h, b) => real.haproxy.serversState(h, b),
      async apply(h: Endpoint, commands: readonly ServerCommand[]): Promise<void> {
        for (const c of commands) r.record("haproxy", `would send '${commandText(c)}' to ${hap(h)}`);
      },
    },
    close: () => real.close(),
  };
}
