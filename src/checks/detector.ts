/**
 * The detector: a pure function of observations, rules, roles and time. No I/O.
 *
 * 1. `observe` folds each observation into a target's health: down after `fall` consecutive failures (monit's
 *    "3 times in a row"), up again after `rise` successes.
 * 2. `diagnose` turns the healths of the whole topology into named diagnoses, using witnesses: a primary is
 *    DeadPrimary only when failoverd cannot reach it AND its replica's link to it is down or every HAProxy that
 *    answers marks it down. Otherwise it is UnreachablePrimary: alert, never act. A monitor cut off from the network
 *    must not fail anything over.
 */
import type { ProbeFailureKind } from "../errors.ts";
import type { Topology } from "../topology/topology.ts";
import type { HaproxyObservation, Observation, RedisObservation } from "./observation.ts";

export interface CheckRules {
  readonly fall: number;
  readonly rise: number;
  readonly intervalMs: number;
  /** Re-check interval after a refused or reset connection (strong evidence of a crash). Never used for timeouts. */
  readonly fastIntervalMs?: number | undefined;
}

export type TargetStatus = "unknown" | "up" | "down";

export interface TargetHealth {
  readonly target: string;
  readonly status: TargetStatus;
  /** Consecutive failures / successes, the current run only. */
  readonly failures: number;
  readonly successes: number;
  /** When the current status began. */
  readonly since: number;
  /** When the current run of failures began (the fault's first sighting). */
  readonly failingSince?: number | undefined;
  readonly last: Observation;
}

export function observe(prev: TargetHealth | undefined, obs: Observation, rules: CheckRules): TargetHealth {
  const status = prev?.status ?? "unknown";
  if (obs.ok) {
    const successes = (prev?.successes ?? 0) + 1;
    const becomesUp = status === "unknown" || (status === "down" && successes >= rules.rise) || status === "up";
    const next: TargetStatus = becomesUp ? "up" : status;
    return {
      target: obs.target,
      status: next,
      failures: 0,
      successes,
      since: next !== status ? obs.at : (prev?.since ?? obs.at),
      last: obs,
    };
  }
  const failures = (prev?.failures ?? 0) + 1;
  const next: TargetStatus = failures >= rules.fall ? "down" : status;
  return {
    target: obs.target,
    status: next,
    failures,
    successes: 0,
    since: next !== status ? obs.at : (prev?.since ?? obs.at),
    failingSince: prev && prev.failures > 0 ? prev.failingSince : obs.at,
    last: obs,
  };
}

const CRASH_EVIDENCE: ReadonlySet<ProbeFailureKind> = new Set(["refused", "reset"]);

/**
 * When to check this target next. After a refused or reset connection (the host answered, the server is gone)
 * re-check at the fast interval so a crash is confirmed sooner; a timeout keeps the normal interval, so a hang is
 * never confirmed sooner than interval x fall.
 */
export function nextCheckDelay(h: TargetHealth, rules: CheckRules): number {
  const f = h.last.failure;
  if (h.status !== "down" && f && CRASH_EVIDENCE.has(f.kind) && rules.fastIntervalMs !== undefined) {
    return Math.min(rules.fastIntervalMs, rules.intervalMs);
  }
  return rules.intervalMs;
}

export type DiagnosisName =
  | "NoProblem"
  | "DeadPrimary"
  | "UnreachablePrimary"
  | "DeadReplica"
  | "UnreachableReplica"
  | "PairDown"
  | "TwoPrimaries"
  | "HaproxyDown"
  | "UnreachableHaproxy"
  | "AppProxyDown";

export const DIAGNOSES: Readonly<Record<DiagnosisName, { readonly description: string; readonly actionable: boolean }>> = {
  NoProblem: { description: "every target is healthy", actionable: false },
  DeadPrimary: {
    description: "a Redis host holding primaries is down, and its replicas or the HAProxies confirm it",
    actionable: true,
  },
  UnreachablePrimary: {
    description: "failoverd cannot reach a primary, but its replica or an HAProxy still can: alert, do not act",
    actionable: false,
  },
  DeadReplica: { description: "a Redis host holding only replicas is down, and its primaries confirm it", actionable: true },
  UnreachableReplica: {
    description: "failoverd cannot reach a replica, but its primary still has it connected: alert, do not act",
    actionable: false,
  },
  PairDown: {
    description: "both hosts of a pair are down or failing on the same port: no healthy survivor to promote",
    actionable: false,
  },
  TwoPrimaries: { description: "both servers of a pair answer as primary (split brain): alert", actionable: false },
  HaproxyDown: { description: "an HAProxy is down, and the app-side HAProxies confirm it", actionable: true },
  UnreachableHaproxy: {
    description: "failoverd cannot reach an HAProxy, but an app-side HAProxy still can: alert, do not act",
    actionable: false,
  },
  AppProxyDown: { description: "an application-side HAProxy is down: failoverd does not manage app hosts", actionable: false },
};

export interface Diagnosis {
  readonly name: DiagnosisName;
  readonly host: string;
  /** The Redis servers or HAProxy concerned, e.g. ["redis1:9001", "redis1:9002"]. */
  readonly targets: readonly string[];
  /** Human-readable reasons, in the order they were weighed. */
  readonly evidence: readonly string[];
}

export interface DetectorInput {
  readonly topology: Topology;
  /** Where each host lives now. */
  readonly addressOf: (host: string) => string;
  readonly health: ReadonlyMap<string, TargetHealth>;
  /** The last role each Redis server was seen with (`redis1:9001` -> primary). */
  readonly lastRoles: ReadonlyMap<string, "primary" | "replica">;
  /** Hosts not monitored now (under recovery): never diagnosed. */
  readonly unmonitored?: ReadonlySet<string>;
}

export function diagnose(input: DetectorInput): Diagnosis[] {
  const out: Diagnosis[] = [];
  const skip = input.unmonitored ?? new Set<string>();
  for (const pair of input.topology.pairs) {
    for (const [host, twin] of [pair.hosts, [pair.hosts[1], pair.hosts[0]] as const]) {
      if (skip.has(host)) continue;
      const d = diagnoseRedisHost(input, host, twin, pair.ports, skip.has(twin));
      // A pair that is down as a whole is reported once, by the host that notices it first.
      if (d?.name === "PairDown" && out.some((o) => o.name === "PairDown" && o.targets.some((x) => d.targets.includes(x)))) continue;
      if (d) out.push(d);
    }
    out.push(...twoPrimaries(input, pair.hosts, pair.ports, skip));
  }
  for (const h of input.topology.haproxyHosts) {
    if (skip.has(h.name)) continue;
    const d = diagnoseHaproxy(input, h.name);
    if (d) out.push(d);
  }
  for (const h of input.topology.appHosts) {
    if (skip.has(h.name)) continue;
    if (input.health.get(h.name)?.status === "down") {
      out.push({ name: "AppProxyDown", host: h.name, targets: [h.name], evidence: [failureText(input, h.name)] });
    }
  }
  return out;
}

function diagnoseRedisHost(
  input: DetectorInput,
  host: string,
  twin: string,
  ports: readonly number[],
  twinUnmonitored: boolean,
): Diagnosis | null {
  const down = ports.filter((p) => input.health.get(`${host}:${p}`)?.status === "down");
  if (down.length === 0) return null;
  const targets = down.map((p) => `${host}:${p}`);
  const evidence = targets.map((t) => failureText(input, t));
  // A twin that is down, or failing right now, cannot be promoted: a pair whose hosts fail together is PairDown,
  // whichever of them crossed `fall` first.
  const twinDown = twinUnmonitored
    ? down
    : down.filter((p) => {
        const h = input.health.get(`${twin}:${p}`);
        return h?.status === "down" || (h?.failures ?? 0) > 0;
      });
  if (twinDown.length > 0) {
    // Only the first host of a pair reports PairDown, so the alert is not doubled.
    return {
      name: "PairDown",
      host,
      targets: [...targets, ...twinDown.map((p) => `${twin}:${p}`)],
      evidence: [...evidence, `${twin} is down or failing too on port ${twinDown.join(", ")}: nothing to promote`],
    };
  }
  const address = input.addressOf(host);
  const primaries = down.filter((p) => roleOf(input, host, twin, p, address) === "primary");
  if (primaries.length > 0) {
    const confirmed = primaries.every((p) => {
      const w = primaryWitness(input, host, twin, p, address);
      evidence.push(w.text);
      return w.confirms;
    });
    return { name: confirmed ? "DeadPrimary" : "UnreachablePrimary", host, targets, evidence };
  }
  const confirmed = down.every((p) => {
    const w = replicaWitness(input, twin, p, address);
    evidence.push(w.text);
    return w.confirms;
  });
  return { name: confirmed ? "DeadReplica" : "UnreachableReplica", host, targets, evidence };
}

/** The server's last seen role, or failing that what its twin says (a replica names its primary). */
function roleOf(input: DetectorInput, host: string, twin: string, port: number, address: string): "primary" | "replica" {
  const known = input.lastRoles.get(`${host}:${port}`);
  if (known) return known;
  const t = redisObs(input, `${twin}:${port}`);
  if (t?.ok && t.role === "replica" && t.primaryAddress === address) return "primary";
  if (t?.ok && t.role === "primary") return "replica";
  // Unknown: assume the worst case, which demands the stronger witnesses.
  return "primary";
}

interface Witness {
  readonly confirms: boolean;
  readonly text: string;
}

function primaryWitness(input: DetectorInput, host: string, twin: string, port: number, address: string): Witness {
  const t = redisObs(input, `${twin}:${port}`);
  if (t?.ok && t.role === "replica" && t.primaryAddress === address && t.linkUp === false) {
    return { confirms: true, text: `${twin}:${port} (replica) confirms: its link to ${host} is down` };
  }
  const views = haproxyViews(input, host, port);
  const answering = views.filter((v) => v.view !== undefined);
  if (answering.length > 0 && answering.every((v) => v.view?.up === false && v.view.maint === false)) {
    return { confirms: true, text: `every answering HAProxy (${answering.map((v) => v.haproxy).join(", ")}) marks ${host}:${port} down` };
  }
  if (t?.ok && t.role === "replica" && t.primaryAddress === address && t.linkUp) {
    return { confirms: false, text: `${twin}:${port} still has a live link to ${host}: not confirmed` };
  }
  const upIn = answering.filter((v) => v.view?.up).map((v) => v.haproxy);
  if (upIn.length > 0) return { confirms: false, text: `${upIn.join(", ")} still see ${host}:${port} up: not confirmed` };
  return { confirms: false, text: `no witness can confirm ${host}:${port} is down (${twin}:${port} ${t?.ok ? "does not follow it" : "cannot be reached"})` };
}

function replicaWitness(input: DetectorInput, twin: string, port: number, address: string): Witness {
  const t = redisObs(input, `${twin}:${port}`);
  if (!t?.ok || t.role !== "primary") return { confirms: false, text: `${twin}:${port} is not a reachable primary to confirm it` };
  const online = t.replicas?.some((r) => r.address === address && r.port === port && r.online);
  return online
    ? { confirms: false, text: `${twin}:${port} (primary) still has it connected: not confirmed` }
    : { confirms: true, text: `${twin}:${port} (primary) confirms: the replica is not connected` };
}

function twoPrimaries(input: DetectorInput, hosts: readonly [string, string], ports: readonly number[], skip: ReadonlySet<string>): Diagnosis[] {
  if (skip.has(hosts[0]) || skip.has(hosts[1])) return [];
  const both = ports.filter((p) =>
    hosts.every((h) => {
      const o = redisObs(input, `${h}:${p}`);
      return o?.ok && o.role === "primary";
    }),
  );
  if (both.length === 0) return [];
  return [
    {
      name: "TwoPrimaries",
      host: hosts[0],
      targets: both.flatMap((p) => hosts.map((h) => `${h}:${p}`)),
      evidence: [`${hosts[0]} and ${hosts[1]} both answer as primary on port ${both.join(", ")}`],
    },
  ];
}

function diagnoseHaproxy(input: DetectorInput, host: string): Diagnosis | null {
  if (input.health.get(host)?.status !== "down") return null;
  const evidence = [failureText(input, host)];
  const address = input.addressOf(host);
  const witnesses = input.topology.appHosts
    .filter((a) => a.upstreams.includes(host))
    .map((a) => ({ app: a.name, obs: haproxyObs(input, a.name) }))
    .filter((w) => w.obs?.ok);
  if (witnesses.length === 0) {
    // No witness: only a refused connection (the host answers, HAProxy is gone) is evidence of a crash rather than
    // of the monitor's own isolation.
    const refused = input.health.get(host)?.last.failure?.kind === "refused";
    evidence.push(refused ? "no app-side HAProxy to ask; the host refuses connections: confirmed" : "no app-side HAProxy to ask and no refusal: not confirmed");
    return { name: refused ? "HaproxyDown" : "UnreachableHaproxy", host, targets: [host], evidence };
  }
  const seesUp = witnesses.filter((w) => w.obs?.servers.some((s) => s.server === host && s.address === address && s.up));
  if (seesUp.length > 0) {
    evidence.push(`${seesUp.map((w) => w.app).join(", ")} still see ${host} up: not confirmed`);
    return { name: "UnreachableHaproxy", host, targets: [host], evidence };
  }
  evidence.push(`${witnesses.map((w) => w.app).join(", ")} confirm: ${host} is down`);
  return { name: "HaproxyDown", host, targets: [host], evidence };
}

function haproxyViews(input: DetectorInput, host: string, port: number) {
  return input.topology.haproxyHosts.map((h) => {
    const o = haproxyObs(input, h.name);
    const view = o?.ok ? o.servers.find((s) => s.server === host && s.port === port) : undefined;
    return { haproxy: h.name, view };
  });
}

function redisObs(input: DetectorInput, target: string): RedisObservation | undefined {
  const o = input.health.get(target)?.last;
  return o?.type === "redis" ? o : undefined;
}

function haproxyObs(input: DetectorInput, target: string): HaproxyObservation | undefined {
  const o = input.health.get(target)?.last;
  return o?.type === "haproxy" ? o : undefined;
}

function failureText(input: DetectorInput, target: string): string {
  const h = input.health.get(target);
  const f = h?.last.failure;
  return `${target}: ${h?.failures ?? 0} failed checks in a row${f ? ` (${f.kind}: ${f.message})` : ""}`;
}
