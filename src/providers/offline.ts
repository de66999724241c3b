/**
 * Offline planning: wraps a provider set so that no read touches anything. Machines of managed hosts are stand-ins
 * at their recorded address (`<machine of redis1>`); every other read (ROLE, INFO, the Runtime API, DNS, configs)
 * fails at once, which a dry-run step answers with "looked up at run time". Writes and their descriptions go to
 * the wrapped set, which under dry-run records them and changes nothing.
 *
 * `plan` uses it where the fleet cannot be reached: with the AWS provider and no AWS credentials, failoverd is not
 * on the monitoring host, and the machines' private addresses are not to be contacted.
 */
import { ProviderError } from "../errors.ts";
import type { Machine, MachineRole, Providers } from "./types.ts";

export function offlineReads(real: Providers, placeOf: (host: string) => { address: string; role: MachineRole }): Providers {
  const notContacted = (what: string) => Promise.reject(new ProviderError(`${what}: not contacted (offline plan)`, false, "Offline"));
  const c = real.compute;
  const d = real.dns;
  const p = real.proxies;
  return {
    compute: {
      kind: c.kind,
      launch: (req, signal) => c.launch(req, signal),
      ready: (m, req, signal) => c.ready(m, req, signal),
      terminate: (m, signal) => c.terminate(m, signal),
      keep: (m, how, signal) => c.keep(m, how, signal),
      kept: () => notContacted("the kept machines"),
      spares: (role) => notContacted(`the ${role} spares`),
      addSpare: (role, state, ports, signal) => c.addSpare(role, state, ports, signal),
      claim: (req, signal) => c.claim(req, signal),
      ...(c.describeKeep ? { describeKeep: (m, how) => c.describeKeep!(m, how) } : {}),
      ...(c.describeClaim ? { describeClaim: (sp, req) => c.describeClaim!(sp, req) } : {}),
      async find(host: string): Promise<Machine | null> {
        const { address, role } = placeOf(host);
        // App machines are not failoverd's: the provider would not find one.
        return role === "app" ? null : { id: `<machine of ${host}>`, host, role, address };
      },
      ...(c.describeLaunch ? { describeLaunch: (req) => c.describeLaunch!(req) } : {}),
      ...(c.describeTerminate ? { describeTerminate: (m) => c.describeTerminate!(m) } : {}),
    },
    dns: {
      upsert: (name, address, signal) => d.upsert(name, address, signal),
      resolve: (name) => notContacted(`DNS ${name}`),
      ...(d.describeUpsert ? { describeUpsert: (name, address) => d.describeUpsert!(name, address) } : {}),
    },
    proxies: {
      applyConfig: (m, text, signal, options) => p.applyConfig(m, text, signal, options),
      ...(p.describeApply ? { describeApply: (m, text, options) => p.describeApply!(m, text, options) } : {}),
    },
    redis: {
      role: (ep) => notContacted(`ROLE of ${ep.address}:${ep.port}`),
      info: (ep) => notContacted(`INFO of ${ep.address}:${ep.port}`),
      promote: (ep) => real.redis.promote(ep),
      replicate: (ep, primary) => real.redis.replicate(ep, primary),
      failover: (ep, to, ms) => real.redis.failover(ep, to, ms),
      abortFailover: (ep) => real.redis.abortFailover(ep),
      holdSync: (ep) => real.redis.holdSync(ep),
      syncHeld: (ep) => notContacted(`CONFIG GET masterauth of ${ep.address}:${ep.port}`),
      releaseSync: (ep) => real.redis.releaseSync(ep),
      close: () => real.redis.close(),
    },
    haproxy: {
      serversState: (h) => notContacted(`the Runtime API of ${h.address}:${h.port}`),
      apply: (h, commands) => real.haproxy.apply(h, commands),
    },
    close: () => real.close(),
  };
}
