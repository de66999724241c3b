/**
 * The decider: a pure function from diagnoses, state and time to decisions. Guard rails: no action on a
 * non-actionable diagnosis; one recovery at a time per pair (and one for the HAProxy tier); a cooldown after a
 * recovery of the same group; none at all while paused, while recovery is disabled, or when so many targets fail
 * at once, with no witness to confirm it, that the monitor's own network is the likelier culprit.
 */
import { DIAGNOSES, type Diagnosis } from "../checks/detector.ts";
import { pairOf, type Topology } from "../topology/topology.ts";
import { PLAYBOOK_FOR } from "./registry.ts";
import type { PlaybookName } from "./types.ts";

export interface DeciderState {
  readonly paused: boolean;
  /** Groups with a recovery under way. */
  readonly active: ReadonlySet<string>;
  /** When the last recovery of each group ended. */
  readonly lastEnded: ReadonlyMap<string, number>;
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
    if (!cfg.enabled) {
      alert("recovery is disabled in the config (recovery.enabled: false)");
    } else if (state.paused) {
      alert("failoverd is paused; not acting");
    } else if (state.active.has(group) || claimed.has(group)) {
      alert(`a recovery of ${group} is already under way`);
    } else if (now - (state.lastEnded.get(group) ?? Number.NEGATIVE_INFINITY) < cfg.cooldownMs) {
      const left = Math.ceil((cfg.cooldownMs - (now - (state.lastEnded.get(group) ?? 0))) / 1000);
      alert(`${group} recovered less than recovery.cooldownMs ago; cooling down for ${left} s more`);
    } else {
      claimed.add(group);
      out.push({ kind: "recover", playbook, host: d.host, group, diagnosis: d });
    }
  }
  return out;
}
