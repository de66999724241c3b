/**
 * The history of recoveries and operator controls, read from the journal (`failoverd history`, GET /history, the
 * status page): each recovery with its diagnosis, who triggered it, its steps with their durations, its outcome and,
 * when the promote step journaled one, its estimated data loss; each pause, resume and maintenance with who and why.
 */
import { type JournalRecord, type RecoveryOutcome, type RecoveryTrigger, summarize } from "./journal.ts";

export interface StepHistory {
  readonly step: string;
  readonly startedAt: number;
  readonly endedAt?: number;
  readonly durationMs?: number;
  readonly ok?: boolean;
  readonly attempts: number;
  readonly error?: string;
}

export interface RecoveryHistory {
  readonly id: string;
  readonly playbook: string;
  readonly host: string;
  readonly diagnosis: string;
  /** Who triggered it: the decider (`diagnosis`), an operator, a drill; `by` names the operator when known. */
  readonly origin: RecoveryTrigger;
  readonly by?: string;
  readonly reason?: string;
  readonly startedAt: number;
  /** When the fault was first seen. */
  readonly failingSince?: number;
  readonly endedAt?: number;
  readonly durationMs?: number;
  /** Absent while it runs (or was cut short and not yet resumed). */
  readonly outcome?: RecoveryOutcome;
  readonly error?: string;
  readonly dryRun: boolean;
  /** The promote step's estimate of the writes lost, as it journaled it (absent when it journaled none). */
  readonly dataLoss?: unknown;
  readonly steps: readonly StepHistory[];
}

/** An operator's control as the journal has it (pause, resume, maintenance, failover), without the record's framing. */
export type ControlHistory = Omit<Extract<JournalRecord, { type: "control" }>, "type" | "id">;

export interface History {
  readonly recoveries: readonly RecoveryHistory[];
  readonly controls: readonly ControlHistory[];
}

/** The history since `since` (ms since the epoch; everything when absent), newest first. */
export function historyOf(records: readonly JournalRecord[], since = Number.NEGATIVE_INFINITY): History {
  const recoveries = summarize(records)
    .filter((r) => r.startedAt >= since || (r.endedAt ?? Number.POSITIVE_INFINITY) >= since)
    .map((r): RecoveryHistory => {
      const promoted = r.completed.get("promote");
      const dataLoss = typeof promoted === "object" && promoted !== null ? (promoted as { dataLoss?: unknown }).dataLoss : undefined;
      return {
        id: r.id,
        playbook: r.playbook,
        host: r.host,
        diagnosis: r.diagnosis,
        origin: r.origin,
        ...(r.by !== undefined ? { by: r.by } : {}),
        ...(r.reason !== undefined ? { reason: r.reason } : {}),
        startedAt: r.startedAt,
        ...(r.failingSince !== undefined ? { failingSince: r.failingSince } : {}),
        ...(r.endedAt !== undefined ? { endedAt: r.endedAt, durationMs: r.endedAt - r.startedAt } : {}),
        ...(r.outcome !== undefined ? { outcome: r.outcome } : {}),
        ...(r.error !== undefined ? { error: r.error } : {}),
        dryRun: r.dryRun,
        ...(dataLoss !== undefined ? { dataLoss } : {}),
        steps: r.steps.map((s) => ({ ...s, ...(s.endedAt !== undefined ? { durationMs: s.endedAt - s.startedAt } : {}) })),
      };
    })
    .reverse();
  const controls = records
    .flatMap((r): ControlHistory[] =>
      r.type === "control" && r.at >= since
        ? [
            {
              at: r.at,
              action: r.action,
              by: r.by,
              ...(r.host !== undefined ? { host: r.host } : {}),
              ...(r.reason !== undefined ? { reason: r.reason } : {}),
              ...(r.until !== undefined ? { until: r.until } : {}),
            },
          ]
        : [],
    )
    .reverse();
  return { recoveries, controls };
}

/** Who triggered a recovery, in words: `failoverd (DeadPrimary)`, `alice via http 127.0.0.1`, `drill`. */
export function triggeredBy(r: Pick<RecoveryHistory, "origin" | "by" | "diagnosis">): string {
  if (r.origin === "diagnosis") return `failoverd (${r.diagnosis})`;
  if (r.origin === "drill") return `drill${r.by ? ` (${r.by})` : ""}`;
  return r.by ?? "an operator";
}

/**
 * A data-loss estimate as words. The promote step journals a list of estimates, one per promoted port, each with its
 * sentence (`text`); any other shape is shown field by field (a number is bytes).
 */
export function describeDataLoss(v: unknown): string {
  // The promote step's estimates (issue 10): one per promoted port, each with its own sentence.
  if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof (x as { text?: unknown })?.text === "string")) {
    return v.map((x) => (x as { text: string }).text).join("; ");
  }
  if (typeof v === "number") return `${v} bytes`;
  if (typeof v === "string") return v;
  if (Array.isArray(v)) return v.map(describeDataLoss).join("; ");
  if (typeof v === "object" && v !== null) {
    return Object.entries(v as Record<string, unknown>)
      .map(([k, x]) => (typeof x === "object" && x !== null ? `${k}: ${describeDataLoss(x)}` : `${k} ${String(x)}`))
      .join(", ");
  }
  return String(v);
}
