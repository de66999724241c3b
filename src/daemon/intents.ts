/**
 * Operator intents the daemon carries out itself (one actor): a planned switchover is checked here, purely, against
 * what the daemon knows (roles, confirmed statuses, recoveries under way) before it runs as a recovery.
 */
import type { TargetStatus } from "../checks/detector.ts";
import { groupOf } from "../recovery/decider.ts";
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
