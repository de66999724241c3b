/**
 * Operator intents the daemon carries out itself (one actor): a planned switchover or a forced failover is checked
 * here, purely, against what the daemon knows (roles, confirmed statuses, recoveries under way, maintenance) before it
 * runs as a recovery.
 */
import type { TargetHealth, TargetStatus } from "../checks/detector.ts";
import { groupOf, inMaintenance } from "../recovery/decider.ts";
import type { PlaybookName } from "../recovery/types.ts";
import { type Pair, pairOf, type Topology, twinOf } from "../topology/topology.ts";

export interface SwitchoverRequest {
  /** The host that becomes primary. */
  readonly to?: string | undefined;
  /** The pair: its primaries move to the host that holds its replicas now. */
  readonly pair?: readonly string[] | undefined;
}

export interface SwitchoverPlan {
  readonly to: string;
  readonly from: string;
  readonly group: string;
}

export interface SwitchoverInput {
  readonly topology: Topology;
  readonly request: SwitchoverRequest;
  readonly lastRoles: ReadonlyMap<string, "primary" | "replica">;
  readonly statusOf: (target: string) => TargetStatus;
  readonly unmonitored: ReadonlySet<string>;
  /** Groups with a recovery under way. */
  readonly active: ReadonlySet<string>;
  /** Hosts in maintenance: no switchover of their pair. */
  readonly maintenance?: ReadonlyMap<string, { readonly until: number; readonly reason?: string | undefined }>;
  readonly now?: number;
}

/** The switchover to run, or why not (a sentence naming what to fix). */
export function planSwitchover(input: SwitchoverInput): SwitchoverPlan | { readonly refused: string } {
  const { topology: t, request: r } = input;
  const refuse = (refused: string) => ({ refused });
  let pair: Pair | undefined;
  if (r.pair !== undefined) {
    if (r.pair.length !== 2) return refuse("pair must name two hosts");
    const [a = "", b = ""] = r.pair;
    const p = pairOf(t, a);
    pair = a !== b && p?.hosts.includes(b) ? p : undefined;
    if (!pair) return refuse(`[${r.pair.join(", ")}] is not a declared pair (pairs: ${t.pairs.map((p) => p.hosts.join("+")).join(", ")})`);
  }
  if (r.to !== undefined) {
    const p = pairOf(t, r.to);
    if (!p) return refuse(`${r.to} is not a Redis host of a pair (pairs: ${t.pairs.map((x) => x.hosts.join("+")).join(", ")})`);
    if (pair && pair !== p) return refuse(`${r.to} is not in the pair [${pair.hosts.join(", ")}]`);
    pair = p;
  }
  if (!pair) return refuse("name the pair (pair: [a, b]) or the new primary (to: host)");
  const primaries = (h: string) => pair.ports.filter((p) => input.lastRoles.get(`${h}:${p}`) === "primary").length;
  let to = r.to;
  if (to === undefined) {
    const [a, b] = pair.hosts;
    if (primaries(a) === primaries(b)) {
      return refuse(`the primaries of [${pair.hosts.join(", ")}] are split evenly or unknown; name the new primary (to: host)`);
    }
    to = primaries(a) < primaries(b) ? a : b;
  }
  const from = twinOf(t, to)!;
  const group = groupOf(t, to);
  if (input.active.has(group)) return refuse(`a recovery of ${group} is under way; try again when it has ended`);
  const held = inMaintenance(t, group, { paused: false, active: input.active, lastEnded: new Map(), maintenance: input.maintenance ?? new Map() }, input.now ?? Date.now());
  if (held) return refuse(held);
  for (const h of pair.hosts) if (input.unmonitored.has(h)) return refuse(`${h} is under recovery (unmonitored)`);
  if (primaries(to) === pair.ports.length) return refuse(`${to} is already the primary on every port`);
  for (const h of pair.hosts) {
    for (const p of pair.ports) {
      const s = input.statusOf(`${h}:${p}`);
      if (s !== "up") return refuse(`${h}:${p} is ${s}: a switchover needs both servers of every port up`);
    }
  }
  for (const h of t.haproxyHosts) {
    const s = input.statusOf(h.name);
    if (s !== "up") return refuse(`HAProxy ${h.name} is ${s}: every HAProxy must move in step`);
  }
  return { to, from, group };
}

export interface FailoverInput {
  readonly topology: Topology;
  /** The host to recover as if it had failed. */
  readonly host: string;
  readonly health: ReadonlyMap<string, TargetHealth>;
  readonly lastRoles: ReadonlyMap<string, "primary" | "replica">;
  readonly unmonitored: ReadonlySet<string>;
  readonly active: ReadonlySet<string>;
  readonly maintenance: ReadonlyMap<string, { readonly until: number; readonly reason?: string | undefined }>;
  readonly now: number;
}

export interface FailoverCheck {
  readonly playbook: PlaybookName;
  readonly host: string;
  readonly group: string;
  /** What the operator should know before saying yes (the host still answers; what may be lost). */
  readonly warnings: readonly string[];
}

/**
 * A forced failover of `host`: the recovery of its failure, asked for by an operator while failoverd does not consider
 * it failed. Refused when it cannot work (the twin, or every other HAProxy, is not up) or must not run (recovery off,
 * a recovery of the group under way, a host of the group in maintenance). It ignores the pause (that is for automatic
 * recovery) and the cooldown (an operator decided).
 */
export function checkFailover(input: FailoverInput): FailoverCheck | { readonly refused: string } {
  const { topology: t, host } = input;
  const refuse = (refused: string) => ({ refused });
  const h = t.hosts.get(host);
  if (!h) return refuse(`unknown host '${host}' (hosts: ${[...t.hosts.keys()].join(", ")})`);
  if (h.role === "app") return refuse(`${host} is an app host: failoverd recovers redis and haproxy hosts`);
  if (!t.config.recovery.enabled) return refuse("recovery is disabled in the config (recovery.enabled: false)");
  const group = groupOf(t, host);
  if (input.active.has(group)) return refuse(`a recovery of ${group} is under way; try again when it has ended`);
  const held = inMaintenance(t, group, { paused: false, active: input.active, lastEnded: new Map(), maintenance: input.maintenance }, input.now);
  if (held) return refuse(`${held}: end the maintenance first (failoverd maintenance HOST --end)`);
  if (input.unmonitored.has(host)) return refuse(`${host} is under recovery (unmonitored)`);
  const status = (id: string) => input.health.get(id)?.status ?? "unknown";
  const warnings: string[] = [];
  if (h.role === "redis") {
    const twin = twinOf(t, host);
    const pair = pairOf(t, host);
    if (!twin || !pair) return refuse(`${host} is in no pair`);
    if (input.unmonitored.has(twin)) return refuse(`${twin} is under recovery (unmonitored)`);
    for (const p of pair.ports) {
      const s = status(`${twin}:${p}`);
      if (s !== "up") return refuse(`${twin}:${p} is ${s}: the failover of ${host} needs its twin up on every port`);
    }
    const primaryOn = pair.ports.filter((p) => input.lastRoles.get(`${host}:${p}`) === "primary");
    const answering = pair.ports.filter((p) => status(`${host}:${p}`) === "up");
    if (primaryOn.length > 0 && answering.length > 0) {
      const lags = primaryOn.map((p) => lagOf(input.health, `${host}:${p}`, `${twin}:${p}`)).filter((x): x is number => x !== null);
      const lag = lags.length > 0 ? ` (${twin} was ${Math.max(...lags)} bytes behind at the last check)` : "";
      warnings.push(
        `${host} answers and is primary on ${primaryOn.join(", ")}: writes it acknowledged that ${twin} has not received are lost${lag}; ` +
          `'failoverd switchover --to ${twin}' moves the primaries with no loss`,
      );
    }
    if (answering.length > 0) warnings.push(`${host}'s servers are fenced and its machine terminated although they answer`);
  } else {
    const others = t.haproxyHosts.filter((x) => x.name !== host);
    if (!others.some((x) => status(x.name) === "up")) return refuse(`no other HAProxy is up: ${host} would be replaced by a copy of nothing`);
    if (status(host) === "up") warnings.push(`${host} answers: its machine is terminated and its clients reconnect through the others`);
  }
  const playbook: PlaybookName = h.role === "redis" ? "failed_redis" : "failed_haproxy";
  return { playbook, host, group, warnings };
}

/** How far a replica was behind its primary at their last checks, in bytes (null when unknown). */
function lagOf(health: ReadonlyMap<string, TargetHealth>, primary: string, replica: string): number | null {
  const p = health.get(primary)?.last;
  const r = health.get(replica)?.last;
  if (p?.type !== "redis" || r?.type !== "redis" || p.offset === undefined || r.offset === undefined) return null;
  return Math.max(0, p.offset - r.offset);
}
