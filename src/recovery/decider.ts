/**
 * The decider: a pure function from diagnoses, state and time to decisions. Guard rails: no action on a
 * non-actionable diagnosis; one recovery at a time per pair (and one for the HAProxy tier); no promotion that would
 * lose more than the configured bound of acknowledged writes (unless an operator accepted it); anti-flap cooldowns by
 * what happened (a failover of a pair, a rebuild of one HAProxy); none at all while paused, while recovery is
 * disabled, or when so many targets fail at once, with no witness to confirm it, that the monitor's own network is
 * the likelier culprit; none for a group with a host in maintenance (its twin's recovery
 * would promote or resync from that host).
 */
import { DIAGNOSES, type Diagnosis } from "../checks/detector.ts";
import { whyRefusePromotion } from "../checks/replication.ts";
import { pairOf, type Topology } from "../topology/topology.ts";
import { PLAYBOOK_FOR } from "./registry.ts";
import type { PlaybookName } from "./types.ts";

export interface DeciderState {
  readonly paused: boolean;
  /** Groups with a recovery under way. */
  readonly active: ReadonlySet<string>;
  /** When each anti-flap cooldown was armed (see cooldownKeyOf): a failover of a pair, a rebuild of an HAProxy. */
  readonly lastEnded: ReadonlyMap<string, number>;
  /** Groups whose next promotion an operator allowed to lose data (`failoverd promote --accept-data-loss`). */
  readonly acceptDataLoss?: ReadonlySet<string>;
  /** Hosts in maintenance, with when it ends and why: no recovery of their group until then. */
  readonly maintenance?: ReadonlyMap<string, { readonly until: number; readonly reason?: string | undefined }>;
}

export interface DeciderInput {
  readonly topology: Topology;
  readonly diagnoses: readonly Diagnosis[];
  readonly targetsTotal: number;
  readonly targetsDown: number;
  /**
   * Of the targets down, those that a witness still answering this monitor confirms down (`witnessedDown`): a fault
   * in the fleet, not evidence that the monitor is cut off. Only the others count against `maxFailingFraction`.
   */
  readonly targetsConfirmed: number;
  readonly state: DeciderState;
  readonly now: number;
}

export type Decision =
  | { readonly kind: "recover"; readonly playbook: PlaybookName; readonly host: string; readonly group: string; readonly diagnosis: Diagnosis }
  | { readonly kind: "alert"; readonly host: string; readonly diagnosis: Diagnosis; readonly reason: string };

/** The unit of "one recovery at a time": a Redis pair, or the HAProxy tier. */
export function groupOf(t: Topology, host: string): string {
  const p = pairOf(t, host);
  return p ? `pair:${p.hosts.join("+")}` : "haproxy-tier";
}

/** Diagnoses whose recovery promotes a replica: guarded against data loss and against flapping. */
const PROMOTES: ReadonlySet<string> = new Set(["DeadPrimary", "PrimaryRestartedEmpty"]);

/**
 * The anti-flap key a recovery arms and is held by. A failover of a pair's primary arms `failover:<pair>`, which
 * holds the next failover of that pair; an HAProxy rebuild arms `haproxy:<host>`, which holds only that HAProxy. A
 * replica rebuild, or a recovery that changed nothing, arms nothing and is held by nothing.
 */
export function cooldownKeyOf(t: Topology, diagnosis: string, host: string): string | null {
  if (PROMOTES.has(diagnosis)) return `failover:${groupOf(t, host)}`;
  if (diagnosis === "HaproxyDown") return `haproxy:${host}`;
  return null;
}

/** The key a failed recovery of `host` arms: its next recovery waits for the cooldown. */
export function failedKeyOf(host: string): string {
  return `failed:${host}`;
}

/**
 * The cooldown keys an ended recovery arms, from what it did: a failover that promoted arms its pair's, an HAProxy
 * that was rebuilt arms that HAProxy's, a failed one also arms `failed:<host>`. A switchover, a recovery that rolled
 * back, or one not ended arms nothing. The daemon arms them when its recovery ends; a new leader reads them back from
 * the shared journal (the same rule, whichever instance ran the recovery).
 */
export function cooldownKeysOf(
  t: Topology,
  r: {
    readonly playbook: string;
    readonly host: string;
    readonly outcome?: string | undefined;
    readonly completed: ReadonlyMap<string, unknown>;
    readonly steps: readonly { readonly step: string }[];
  },
): string[] {
  if (r.playbook === "switchover" || (r.outcome !== "succeeded" && r.outcome !== "failed")) return [];
  const keys = r.outcome === "failed" ? [failedKeyOf(r.host)] : [];
  let key: string | null = null;
  if (r.playbook === "failed_redis") {
    const promote = r.completed.get("promote") as { promoted?: readonly unknown[] } | undefined;
    if ((promote?.promoted?.length ?? 0) > 0) key = cooldownKeyOf(t, "DeadPrimary", r.host);
  } else if (r.playbook === "failed_haproxy" && r.steps.some((s) => s.step === "terminate")) {
    key = cooldownKeyOf(t, "HaproxyDown", r.host);
  }
  if (key !== null) keys.push(key);
  return keys;
}

export function decide(input: DeciderInput): Decision[] {
  const { topology: t, state, now } = input;
  const cfg = t.config.recovery;
  const out: Decision[] = [];
  const claimed = new Set<string>();
  const unconfirmed = Math.max(0, input.targetsDown - input.targetsConfirmed);
  const isolated = input.targetsTotal > 0 && unconfirmed / input.targetsTotal > cfg.maxFailingFraction;
  for (const d of input.diagnoses) {
    const alert = (reason: string) => out.push({ kind: "alert", host: d.host, diagnosis: d, reason });
    const playbook = PLAYBOOK_FOR[d.name];
    if (isolated) {
      // Said first and for every finding: whatever the diagnosis, the likelier culprit is the monitor itself.
      alert(`${unconfirmed} of ${input.targetsTotal} targets fail at once and no witness confirms it: the monitor's own network is suspect; not acting`);
      continue;
    }
    if (!playbook || !DIAGNOSES[d.name].actionable) {
      alert(DIAGNOSES[d.name].description);
      continue;
    }
    const group = groupOf(t, d.host);
    const key = cooldownKeyOf(t, d.name, d.host);
    const armed = key === null ? undefined : state.lastEnded.get(key);
    // A recovery of this very host that failed (forward, past its point of no return) is not tried again at once:
    // a provider that cannot launch must not be asked in a loop. Other hosts are not held by it.
    const failedAt = state.lastEnded.get(failedKeyOf(d.host));
    const refusal = PROMOTES.has(d.name) && !state.acceptDataLoss?.has(group) ? whyNoPromotion(d, t) : null;
    const held = inMaintenance(t, group, state, now);
    if (!cfg.enabled) {
      alert("recovery is disabled in the config (recovery.enabled: false)");
    } else if (state.paused) {
      alert("failoverd is paused; not acting");
    } else if (held) {
      alert(held);
    } else if (state.active.has(group) || claimed.has(group)) {
      alert(`a recovery of ${group} is already under way`);
    } else if (refusal) {
      alert(refusal);
    } else if (failedAt !== undefined && now - failedAt < cfg.cooldownMs) {
      alert(`the last recovery of ${d.host} failed at ${iso(failedAt)}: cooling down until ${iso(failedAt + cfg.cooldownMs)} before trying it again (recovery.cooldownMs)`);
    } else if (armed !== undefined && now - armed < cfg.cooldownMs) {
      const what = key?.startsWith("failover:") ? `${group} failed over` : `${d.host} was rebuilt`;
      alert(
        `${what} at ${iso(armed)}: recovery.cooldownMs guards against repeated failovers; cooling down until ${iso(armed + cfg.cooldownMs)}`,
      );
    } else {
      claimed.add(group);
      out.push({ kind: "recover", playbook, host: d.host, group, diagnosis: d });
    }
  }
  return out;
}

/** The promotion guard: null when promoting the failed primary's twin loses at most the configured bound. */
function whyNoPromotion(d: Diagnosis, t: Topology): string | null {
  const refused = (d.dataLoss ?? [])
    .map((l) => whyRefusePromotion(l.candidate, l.target, l.estimate, t.config.recovery))
    .filter((x): x is string => x !== null);
  if (refused.length === 0) return null;
  const candidate = d.dataLoss?.[0]?.candidate.split(":")[0] ?? "the replica";
  return `automatic promotion refused: ${refused.join("; ")}; to promote anyway: failoverd promote --host ${candidate} --accept-data-loss`;
}

function iso(at: number): string {
  return new Date(at).toISOString().replace(/\.\d+Z$/, "Z");
}

/** Why a group may not be recovered because one of its hosts is in maintenance, or null. */
export function inMaintenance(t: Topology, group: string, state: DeciderState, now: number): string | null {
  for (const [host, m] of state.maintenance ?? []) {
    if (m.until <= now || groupOf(t, host) !== group) continue;
    const until = new Date(m.until).toISOString().replace(/\.\d+Z$/, "Z");
    return `${host} is in maintenance until ${until}${m.reason ? ` (${m.reason})` : ""}; not acting on ${group}`;
  }
  return null;
}
