/**
 * Quorum confirmation: a failure is confirmed only when a majority of the configured instances see the target down
 * (this one by its own checks, the others by the verdicts they publish). Applied to the detector's diagnoses, on top
 * of the witness rules: an actionable diagnosis that a majority does not confirm becomes its "unreachable" (alert
 * only) counterpart. A pure function: the daemon applies it between diagnosis and decision.
 */
import { CRASH_EVIDENCE, type Diagnosis, type DiagnosisName, type TargetStatus } from "../checks/detector.ts";
import type { ProbeFailureKind } from "../errors.ts";
import type { Verdict, Verdicts } from "./session.ts";

/** What an actionable diagnosis becomes when the majority does not confirm it. */
const UNCONFIRMED: Partial<Record<DiagnosisName, DiagnosisName>> = {
  DeadPrimary: "UnreachablePrimary",
  DeadReplica: "UnreachableReplica",
  HaproxyDown: "UnreachableHaproxy",
};

export interface QuorumInput {
  readonly diagnoses: readonly Diagnosis[];
  /** This instance's name and its own view of each target. */
  readonly self: string;
  readonly statusOf: (target: string) => TargetStatus | undefined;
  /** The other instances' published verdicts. */
  readonly peers: Verdicts;
  /** How many instances are configured: a majority of this number confirms. */
  readonly instances: number;
  /** Why the others' verdicts are unknown now (etcd does not answer), said in the evidence; null when they are known. */
  readonly unknownBecause?: string | null | undefined;
}

export function majority(instances: number): number {
  return Math.floor(instances / 2) + 1;
}

/** The diagnoses with each actionable one confirmed (naming the instances that agree) or downgraded. */
export function confirmByQuorum(input: QuorumInput): Diagnosis[] {
  const need = majority(input.instances);
  return input.diagnoses.map((d) => {
    const unconfirmed = UNCONFIRMED[d.name];
    if (!unconfirmed) return d;
    // Every target of the diagnosis must be seen down by the same majority. A diagnosis started early on crash
    // evidence (see detector.ts) is confirmed as early by a majority seeing the same evidence: its targets down, or
    // failing now with a refused or reset connection (the process is gone, as a majority sees it). What it does before
    // the promotion is undone if the server answers; the promotion still waits for `fall` failed checks.
    const agree: string[] = [];
    if (d.early === true || d.targets.every((t) => input.statusOf(t) === "down")) agree.push(input.self);
    // Sorted by code unit, not localeCompare: its first call loads the ICU collator, 15-30 ms of CPU spent at the
    // moment a crash is first weighed (it delayed every instance's first evaluation of a crash by that much).
    for (const [inst, verdicts] of [...input.peers.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      if (d.targets.every((t) => seesDown(verdicts.get(t), d.early === true))) agree.push(inst);
    }
    if (agree.length >= need) {
      return { ...d, evidence: [...d.evidence, `confirmed${d.early === true ? " early" : ""} by ${agree.length} of ${input.instances} instances (${agree.join(", ")})`] };
    }
    return {
      ...d,
      name: unconfirmed,
      evidence: [
        ...d.evidence,
        `only ${agree.length} of ${input.instances} instances see it down${agree.length > 0 ? ` (${agree.join(", ")})` : ""}; ${need} must agree: not confirmed${input.unknownBecause ? ` (the others' verdicts are unknown: ${input.unknownBecause})` : ""}`,
      ],
    };
  });
}

/** A published verdict that agrees a target has failed: down, or (for an early diagnosis) failing with crash evidence. */
function seesDown(v: Verdict | undefined, early: boolean): boolean {
  return v?.status === "down" || (early && v?.failing !== undefined && CRASH_EVIDENCE.has(v.failing as ProbeFailureKind));
}
