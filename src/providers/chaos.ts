/**
 * Fault injection for tests and drills: FAILOVERD_CHAOS_FAIL=compute.launch,dns.upsert makes those provider calls
 * fail (retryable ProviderError), so a test can prove bounded retries, a clear alert and a topology that still
 * serves. Never set from a config file; absent in normal operation.
 */
import { ProviderError } from "../errors.ts";
import type { Providers } from "./types.ts";

export function chaosFailuresFromEnv(v = process.env["FAILOVERD_CHAOS_FAIL"]): Set<string> {
  return new Set((v ?? "").split(",").map((s) => s.trim()).filter(Boolean));
}

export function withChaos(real: Providers, failing: ReadonlySet<string>): Providers {
  if (failing.size === 0) return real;
  const fail = (name: string) => {
    if (failing.has(name)) throw new ProviderError(`chaos: ${name} fails (FAILOVERD_CHAOS_FAIL)`, true, "Chaos");
  };
  return {
    ...real,
    // What is not made to fail (find, ready, the dry-run descriptions) is the real one. Named one by one: the real
    // parts are class instances, whose methods a spread would not copy.
    compute: {
      kind: real.compute.kind,
      find: (host, signal) => real.compute.find(host, signal),
      ready: (m, req, signal) => real.compute.ready(m, req, signal),
      kept: (signal) => real.compute.kept(signal),
      spares: (role, signal) => real.compute.spares(role, signal),
      addSpare: (role, state, ports, signal) => real.compute.addSpare(role, state, ports, signal),
      ...(real.compute.describeKeep ? { describeKeep: (m, how) => real.compute.describeKeep!(m, how) } : {}),
      ...(real.compute.describeClaim ? { describeClaim: (sp, req) => real.compute.describeClaim!(sp, req) } : {}),
      ...(real.compute.describeLaunch ? { describeLaunch: (req) => real.compute.describeLaunch!(req) } : {}),
      ...(real.compute.describeTerminate ? { describeTerminate: (m) => real.compute.describeTerminate!(m) } : {}),
      launch: async (req, signal) => {
        fail("compute.launch");
        return real.compute.launch(req, signal);
      },
      terminate: async (m, signal) => {
        fail("compute.terminate");
        return real.compute.terminate(m, signal);
      },
      keep: async (m, how, signal) => {
        fail("compute.keep");
        return real.compute.keep(m, how, signal);
      },
      claim: async (req, signal) => {
        fail("compute.claim");
        return real.compute.claim(req, signal);
      },
    },
    dns: {
      resolve: (name, signal) => real.dns.resolve(name, signal),
      ...(real.dns.describeUpsert ? { describeUpsert: (name, address) => real.dns.describeUpsert!(name, address) } : {}),
      upsert: async (name, address, signal) => {
        fail("dns.upsert");
        return real.dns.upsert(name, address, signal);
      },
    },
    proxies: {
      ...(real.proxies.describeApply ? { describeApply: (m, text, options) => real.proxies.describeApply!(m, text, options) } : {}),
      applyConfig: async (m, text, signal, options) => {
        fail("proxies.applyConfig");
        return real.proxies.applyConfig(m, text, signal, options);
      },
    },
  };
}
