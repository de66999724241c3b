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
import {
  type DataLossEstimate,
  estimateDataLoss,
  formatBytes,
  isNeverSynced,
  OffsetHistory,
  type PortReplication,
  type RestartEvidence,
  replicationOf,
} from "./replication.ts";

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

/** Failures that say the server's process is gone (not merely slow): the fast re-check and the early start weigh them. */
export const CRASH_EVIDENCE: ReadonlySet<ProbeFailureKind> = new Set(["refused", "reset"]);

/** The kind of a crash-evidence failure of a target failing now but not (yet) down; else undefined. */
export function crashFailing(h: TargetHealth): ProbeFailureKind | undefined {
  const kind = h.last.failure?.kind;
  return h.status !== "down" && h.failures > 0 && kind !== undefined && CRASH_EVIDENCE.has(kind) ? kind : undefined;
}

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
  | "PrimaryRestartedEmpty"
  | "UnreachablePrimary"
  | "DeadReplica"
  | "UnreachableReplica"
  | "PairDown"
  | "TwoPrimaries"
  | "PrimaryRestarted"
  | "ReplicaLinkDown"
  | "ReplicaLagging"
  | "HaproxyDown"
  | "UnreachableHaproxy"
  | "AppProxyDown";

export const DIAGNOSES: Readonly<Record<DiagnosisName, { readonly description: string; readonly actionable: boolean }>> = {
  NoProblem: { description: "every target is healthy", actionable: false },
  DeadPrimary: {
    description: "a Redis host holding primaries is down, and its replicas or the HAProxies confirm it",
    actionable: true,
  },
  PrimaryRestartedEmpty: {
    description: "a primary restarted with its dataset gone: its replica must be promoted before it resyncs from the empty server",
    actionable: true,
  },
  UnreachablePrimary: {
    description: "failoverd cannot reach a primary, but its replica or an HAProxy still can (or no fresh witness says otherwise yet): alert, do not act",
    actionable: false,
  },
  DeadReplica: { description: "a Redis host holding only replicas is down, and its primaries confirm it", actionable: true },
  UnreachableReplica: {
    description: "failoverd cannot reach a replica, but its primary still has it connected: alert, do not act",
    actionable: false,
  },
  PairDown: {
    description: "both hosts of a pair are down or failing on the same port, or the survivor never completed a sync: no healthy survivor to promote",
    actionable: false,
  },
  TwoPrimaries: { description: "both servers of a pair answer as primary (split brain): alert", actionable: false },
  PrimaryRestarted: { description: "a primary restarted (a new run_id) with its dataset: alert", actionable: false },
  ReplicaLinkDown: {
    description: "a replica's link to its primary is down (redundancy lost: the pair cannot fail over without losing data)",
    actionable: false,
  },
  ReplicaLagging: {
    description: "a replica lags behind its primary (redundancy lost: the pair cannot fail over without losing data)",
    actionable: false,
  },
  HaproxyDown: { description: "an HAProxy is down, and the app-side HAProxies confirm it", actionable: true },
  UnreachableHaproxy: {
    description: "failoverd cannot reach an HAProxy, but an app-side HAProxy still can: alert, do not act",
    actionable: false,
  },
  AppProxyDown: { description: "an application-side HAProxy is down: failoverd does not manage app hosts", actionable: false },
};

/** What promoting a failed primary's twin would lose, per port. */
export interface PortDataLoss {
  readonly target: string;
  readonly candidate: string;
  readonly estimate: DataLossEstimate;
}

export interface Diagnosis {
  readonly name: DiagnosisName;
  readonly host: string;
  /** The Redis servers or HAProxy concerned, e.g. ["redis1:9001", "redis1:9002"]. */
  readonly targets: readonly string[];
  /** Human-readable reasons, in the order they were weighed. */
  readonly evidence: readonly string[];
  /** DeadPrimary, PrimaryRestartedEmpty: what promoting the twin would lose (the promotion guard's input). */
  readonly dataLoss?: readonly PortDataLoss[];
  /**
   * Started on strong evidence (the server refuses connections and its replica's link is down) before `fall` failed
   * checks: the recovery fences at once, and its promotion waits for the failure to be confirmed.
   */
  readonly early?: boolean;
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
  /** Now, for how long a replica's link has been down. Defaults to the newest observation's time. */
  readonly now?: number;
  /** Servers that came back with another identity (see classifyRestart), by target. */
  readonly restarts?: ReadonlyMap<string, RestartEvidence>;
  /** Each server's last healthy observation: what a failed primary had acknowledged at the last check that reached it. */
  readonly lastGood?: (target: string) => RedisObservation | undefined;
  /** Each primary's recent offsets (lag in time, data loss in time). */
  readonly history?: OffsetHistory;
  /** When failoverd first saw each replica's link down. */
  readonly linkDownSince?: ReadonlyMap<string, number>;
}

/** Failing now: its latest check failed (a target still `down` while it answers again, waiting for `rise`, is not). */
export function isFailingNow(h: TargetHealth | undefined): boolean {
  return h !== undefined && h.failures > 0;
}

/** Down and failing now: a failure that may be acted on. */
export function isDownNow(h: TargetHealth | undefined): boolean {
  return h?.status === "down" && h.failures > 0;
}

export function diagnose(input: DetectorInput): Diagnosis[] {
  const out: Diagnosis[] = [];
  const skip = input.unmonitored ?? new Set<string>();
  for (const pair of input.topology.pairs) {
    const affected = new Set<string>();
    for (const [host, twin] of [pair.hosts, [pair.hosts[1], pair.hosts[0]] as const]) {
      if (skip.has(host)) continue;
      const d = diagnoseRedisHost(input, host, twin, pair.ports, skip.has(twin));
      if (d) for (const t of d.targets) affected.add(t);
      // A pair that is down as a whole is reported once, by the host that notices it first.
      if (d?.name === "PairDown" && out.some((o) => o.name === "PairDown" && o.targets.some((x) => d.targets.includes(x)))) continue;
      if (d) out.push(d);
    }
    out.push(...twoPrimaries(input, pair.hosts, pair.ports, skip));
    out.push(...replicationFindings(input, pair.hosts, pair.ports, skip, affected));
  }
  for (const h of input.topology.haproxyHosts) {
    if (skip.has(h.name)) continue;
    const d = diagnoseHaproxy(input, h.name);
    if (d) out.push(d);
  }
  for (const h of input.topology.appHosts) {
    if (skip.has(h.name)) continue;
    if (isDownNow(input.health.get(h.name))) {
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
  const address = input.addressOf(host);
  const target = (p: number) => `${host}:${p}`;
  const lost = ports.filter((p) => {
    const r = input.restarts?.get(target(p));
    const o = redisObs(input, target(p));
    return r?.datasetLost === true && o?.ok === true && o.role === "primary";
  });
  const down = ports.filter((p) => !lost.includes(p) && isDownNow(input.health.get(target(p))));
  // Strong evidence before `fall`: the server refuses connections (its process is gone) and its replica, read after
  // the failure began, has lost its link. The recovery may fence at once; its promotion still waits for `fall`.
  const early = ports.filter((p) => {
    if (lost.includes(p) || down.includes(p)) return false;
    const h = input.health.get(target(p));
    if (h === undefined || crashFailing(h) === undefined) return false;
    if (roleOf(input, host, twin, p, address) !== "primary") return false;
    const t = redisObs(input, `${twin}:${p}`);
    return t !== undefined && isFresh(t, h) && t.ok && t.role === "replica" && t.primaryAddress === address && t.linkUp === false && !isNeverSynced(t);
  });
  const affected = [...lost, ...down, ...early].sort((a, b) => a - b);
  if (affected.length === 0) return null;
  const targets = affected.map(target);
  const evidence = affected.map((p) => (lost.includes(p) ? input.restarts!.get(target(p))!.text : failureText(input, target(p))));
  // A twin that is down, or failing right now, cannot be promoted: a pair whose hosts fail together is PairDown,
  // whichever of them crossed `fall` first.
  const twinDown = twinUnmonitored
    ? affected
    : affected.filter((p) => {
        const h = input.health.get(`${twin}:${p}`);
        return h?.status === "down" || (h?.failures ?? 0) > 0;
      });
  if (twinDown.length > 0) {
    return {
      name: "PairDown",
      host,
      targets: [...targets, ...twinDown.map((p) => `${twin}:${p}`)],
      evidence: [...evidence, `${twin} is down or failing too on port ${twinDown.join(", ")}: nothing to promote`],
    };
  }
  const primaries = affected.filter((p) => lost.includes(p) || roleOf(input, host, twin, p, address) === "primary");
  if (primaries.length > 0) {
    // A survivor that never completed a sync holds no copy of the data: it is no candidate (and no witness).
    const unsynced = primaries.filter((p) => isNeverSynced(redisObs(input, `${twin}:${p}`)));
    if (unsynced.length > 0) {
      return {
        name: "PairDown",
        host,
        targets: [...targets, ...unsynced.map((p) => `${twin}:${p}`)],
        evidence: [...evidence, `${twin} never completed a sync on port ${unsynced.join(", ")} since it was (re)started: nothing to promote`],
      };
    }
    const confirmed = primaries.every((p) => {
      if (lost.includes(p)) return true;
      const w = primaryWitness(input, host, twin, p, address);
      evidence.push(w.text);
      return w.confirms;
    });
    const dataLoss = primaries.flatMap((p) => portDataLoss(input, target(p), `${twin}:${p}`));
    const name: DiagnosisName = !confirmed ? "UnreachablePrimary" : lost.length === primaries.length ? "PrimaryRestartedEmpty" : "DeadPrimary";
    const isEarly = confirmed && primaries.some((p) => early.includes(p));
    return { name, host, targets, evidence, ...(dataLoss.length > 0 ? { dataLoss } : {}), ...(isEarly ? { early: true } : {}) };
  }
  // A replica host: only confirmed (`fall`) failures.
  const replicaPorts = affected.filter((p) => down.includes(p));
  if (replicaPorts.length === 0) return null;
  const confirmed = replicaPorts.every((p) => {
    const w = replicaWitness(input, host, twin, p, address);
    evidence.push(w.text);
    return w.confirms;
  });
  return { name: confirmed ? "DeadReplica" : "UnreachableReplica", host, targets: replicaPorts.map(target), evidence };
}

/** What promoting `candidate` would lose of what `failed` had acknowledged at the last check that reached it. */
function portDataLoss(input: DetectorInput, failed: string, candidate: string): PortDataLoss[] {
  const ack = input.restarts?.get(failed)?.before ?? input.lastGood?.(failed);
  const c = redisObs(input, candidate);
  if (!ack || ack.offset === undefined || !c?.ok || c.offset === undefined || c.offset < 0) return [];
  const estimate = estimateDataLoss({ offset: ack.offset, at: ack.at }, c.offset, (o) => input.history?.firstAbove(failed, o));
  return [{ target: failed, candidate, estimate }];
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

/** Evidence taken after the failure run began: older observations say nothing about the failure. */
function isFresh(o: Observation, failed: TargetHealth | undefined): boolean {
  return failed?.failingSince === undefined || o.at >= failed.failingSince;
}

function primaryWitness(input: DetectorInput, host: string, twin: string, port: number, address: string): Witness {
  const failed = input.health.get(`${host}:${port}`);
  const t = redisObs(input, `${twin}:${port}`);
  const tFresh = t !== undefined && isFresh(t, failed);
  const follows = t?.ok === true && t.role === "replica" && t.primaryAddress === address;
  if (follows && tFresh && t.linkUp === false && !isNeverSynced(t)) {
    return { confirms: true, text: `${twin}:${port} (replica) confirms: its link to ${host} is down` };
  }
  const views = haproxyViews(input, host, port);
  const answering = views.filter((v) => v.view !== undefined && v.fresh(failed));
  if (answering.length > 0 && answering.every((v) => v.view?.up === false && v.view.maint === false)) {
    return { confirms: true, text: `every answering HAProxy (${answering.map((v) => v.haproxy).join(", ")}) marks ${host}:${port} down` };
  }
  if (follows && t.linkUp) {
    return { confirms: false, text: `${twin}:${port} still has a live link to ${host}: not confirmed` };
  }
  const upIn = answering.filter((v) => v.view?.up).map((v) => v.haproxy);
  if (upIn.length > 0) return { confirms: false, text: `${upIn.join(", ")} still see ${host}:${port} up: not confirmed` };
  if (views.some((v) => v.view !== undefined) && answering.length === 0) {
    return { confirms: false, text: `no HAProxy has been read since ${host}:${port} began failing: not confirmed yet` };
  }
  return { confirms: false, text: `no witness can confirm ${host}:${port} is down (${twin}:${port} ${t?.ok ? "does not follow it" : "cannot be reached"})` };
}

function replicaWitness(input: DetectorInput, host: string, twin: string, port: number, address: string): Witness {
  const failed = input.health.get(`${host}:${port}`);
  const t = redisObs(input, `${twin}:${port}`);
  if (!t?.ok || t.role !== "primary") return { confirms: false, text: `${twin}:${port} is not a reachable primary to confirm it` };
  if (!isFresh(t, failed)) return { confirms: false, text: `${twin}:${port} has not been read since ${host}:${port} began failing: not confirmed yet` };
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
      return o?.ok && o.role === "primary" && !isFailingNow(input.health.get(`${h}:${p}`));
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

/**
 * Replication health of a pair whose servers answer: a replica whose link has been down too long, or that lags too far
 * behind, means the pair cannot fail over without losing data (alert only); a primary that restarted with its data is
 * reported. Ports already diagnosed (a failure) are left to that diagnosis.
 */
function replicationFindings(
  input: DetectorInput,
  hosts: readonly [string, string],
  ports: readonly number[],
  skip: ReadonlySet<string>,
  affected: ReadonlySet<string>,
): Diagnosis[] {
  if (skip.has(hosts[0]) || skip.has(hosts[1])) return [];
  const cfg = input.topology.config.replication;
  const now = input.now ?? newestObservation(input);
  const rows = replicationOf({
    pairs: [{ hosts, ports: ports.filter((p) => !hosts.some((h) => affected.has(`${h}:${p}`))) }],
    addressOf: input.addressOf,
    latest: (t) => redisObs(input, t),
    history: input.history ?? new OffsetHistory(),
    linkDownSince: input.linkDownSince ?? new Map(),
    now,
  });
  const out: Diagnosis[] = [];
  const linkDown = new Map<string, { targets: string[]; evidence: string[] }>();
  const lagging = new Map<string, { targets: string[]; evidence: string[] }>();
  const add = (m: typeof linkDown, host: string, target: string, text: string) => {
    const e = m.get(host) ?? { targets: [], evidence: [] };
    e.targets.push(target);
    e.evidence.push(text);
    m.set(host, e);
  };
  for (const r of rows) {
    if (!r.primary || !r.replica) continue;
    const target = `${r.replica}:${r.port}`;
    if (isFailingNow(input.health.get(`${r.primary}:${r.port}`)) || isFailingNow(input.health.get(target))) continue;
    if (r.linkUp === false && (r.linkDownMs ?? 0) >= cfg.linkDownAlertMs) {
      const lag = r.lagBytes !== undefined ? `, ${describeLag(r)} behind` : "";
      add(
        linkDown,
        r.replica,
        target,
        `${target}: link to ${r.primary}:${r.port} down for ${((r.linkDownMs ?? 0) / 1000).toFixed(1)} s${r.neverSynced ? " (never completed a sync)" : ""}${lag} (replication.linkDownAlertMs ${cfg.linkDownAlertMs} ms)`,
      );
    } else if (r.linkUp && ((r.lagBytes ?? 0) > cfg.lagAlertBytes || (r.lagMs ?? 0) > cfg.lagAlertMs)) {
      add(lagging, r.replica, target, `${target}: ${describeLag(r)} behind ${r.primary}:${r.port} (replication.lagAlertBytes ${formatBytes(cfg.lagAlertBytes)}, lagAlertMs ${cfg.lagAlertMs} ms)`);
    }
  }
  for (const [host, e] of linkDown) out.push({ name: "ReplicaLinkDown", host, targets: e.targets, evidence: e.evidence });
  for (const [host, e] of lagging) out.push({ name: "ReplicaLagging", host, targets: e.targets, evidence: e.evidence });
  for (const h of hosts) {
    const restarted = ports
      .map((p) => input.restarts?.get(`${h}:${p}`))
      .filter((r): r is RestartEvidence => r !== undefined && !r.datasetLost && !affected.has(r.target));
    if (restarted.length > 0) out.push({ name: "PrimaryRestarted", host: h, targets: restarted.map((r) => r.target), evidence: restarted.map((r) => r.text) });
  }
  return out;
}

function describeLag(r: PortReplication): string {
  const ms = r.lagMs ?? 0;
  return `${formatBytes(r.lagBytes ?? 0)}${ms > 0 ? ` / ${r.lagAtLeast ? "at least " : ""}${(ms / 1000).toFixed(1)} s` : ""}`;
}

function newestObservation(input: DetectorInput): number {
  let at = 0;
  for (const h of input.health.values()) if (h.last.at > at) at = h.last.at;
  return at;
}

function diagnoseHaproxy(input: DetectorInput, host: string): Diagnosis | null {
  const me = input.health.get(host);
  if (!isDownNow(me)) return null;
  const evidence = [failureText(input, host)];
  const address = input.addressOf(host);
  const witnesses = input.topology.appHosts
    .filter((a) => a.upstreams.includes(host))
    .map((a) => ({ app: a.name, obs: haproxyObs(input, a.name) }))
    .filter((w) => w.obs?.ok);
  if (witnesses.length === 0) {
    // No witness: only a refused connection (the host answers, HAProxy is gone) is evidence of a crash rather than
    // of the monitor's own isolation.
    const refused = me?.last.failure?.kind === "refused";
    evidence.push(refused ? "no app-side HAProxy to ask; the host refuses connections: confirmed" : "no app-side HAProxy to ask and no refusal: not confirmed");
    return { name: refused ? "HaproxyDown" : "UnreachableHaproxy", host, targets: [host], evidence };
  }
  const seesUp = witnesses.filter((w) => w.obs?.servers.some((s) => s.server === host && s.address === address && s.up));
  if (seesUp.length > 0) {
    evidence.push(`${seesUp.map((w) => w.app).join(", ")} still see ${host} up: not confirmed`);
    return { name: "UnreachableHaproxy", host, targets: [host], evidence };
  }
  const fresh = witnesses.filter((w) => isFresh(w.obs!, me));
  if (fresh.length === 0) {
    evidence.push(`no app-side HAProxy has been read since ${host} began failing: not confirmed yet`);
    return { name: "UnreachableHaproxy", host, targets: [host], evidence };
  }
  evidence.push(`${fresh.map((w) => w.app).join(", ")} confirm: ${host} is down`);
  return { name: "HaproxyDown", host, targets: [host], evidence };
}

function haproxyViews(input: DetectorInput, host: string, port: number) {
  return input.topology.haproxyHosts.map((h) => {
    const o = haproxyObs(input, h.name);
    const view = o?.ok ? o.servers.find((s) => s.server === host && s.port === port) : undefined;
    return { haproxy: h.name, view, fresh: (failed: TargetHealth | undefined) => o !== undefined && isFresh(o, failed) };
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
