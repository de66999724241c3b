/**
 * What holds back a recovery the decider chose, besides the decider's own guard rails: a journal that cannot be
 * written (no recovery starts before its first record is), and a last recovery of the group that rolled back having
 * changed nothing (no cooldown for it, but no busy loop either: tried again after a short, growing delay).
 *
 * A held decision is shown as an alert with the reason (findings, status page, log); when its time comes it is also
 * tried, quietly: the attempt itself tells whether the journal can be written again, and a recovery that starts is
 * the proof.
 */
import type { Decision } from "../recovery/decider.ts";
import type { JournalFault } from "./journal-health.ts";

type Recover = Extract<Decision, { kind: "recover" }>;

interface Hold {
  readonly until: number;
  readonly attempts: number;
  readonly error: string;
}

export interface GateOptions {
  /** How often a recovery is tried while the journal cannot be written. */
  readonly journalRetryMs: () => number;
  /** The first delay after a recovery that changed nothing; it doubles with each one in a row. */
  readonly retryBaseMs: () => number;
  /** The longest delay (never more than the cooldown a recovery that changed something arms). */
  readonly retryMaxMs: () => number;
}

export class RecoveryGate {
  private readonly holds = new Map<string, Hold>();
  private journalRetryAt = 0;

  constructor(private readonly o: GateOptions) {}

  /**
   * The decision to show for `d`, and whether to try it now. Decisions other than "recover", and recoveries nothing
   * holds, pass unchanged.
   */
  gate(d: Decision, journal: JournalFault | null, now: number): { shown: Decision; attempt: Recover | null } {
    if (d.kind !== "recover") return { shown: d, attempt: null };
    const hold = this.holds.get(d.group);
    if (!journal && !hold) return { shown: d, attempt: d };
    const due = (!journal || now >= this.journalRetryAt) && (!hold || now >= hold.until);
    if (due && journal) this.journalRetryAt = now + this.o.journalRetryMs();
    const reason = journal
      ? `not acting: ${journal.error}; failoverd acts as soon as it can write its journal`
      : `the last recovery of ${d.group} changed nothing (${hold?.error ?? "?"}); trying again in ${Math.max(0, Math.ceil(((hold?.until ?? now) - now) / 1000))} s`;
    return { shown: { kind: "alert", host: d.host, diagnosis: d.diagnosis, reason }, attempt: due ? d : null };
  }

  /** A recovery of `group` ended. Returns the delay before the next try when it changed nothing, else null. */
  ended(group: string, now: number, changedNothing: boolean, error: string | undefined): number | null {
    if (!changedNothing) {
      this.holds.delete(group);
      return null;
    }
    const attempts = (this.holds.get(group)?.attempts ?? 0) + 1;
    const delay = Math.min(this.o.retryMaxMs(), this.o.retryBaseMs() * 2 ** (attempts - 1));
    this.holds.set(group, { until: now + delay, attempts, error: error ?? "rolled back" });
    return delay;
  }

  /** Forgets the holds of groups with nothing to recover any more (and none under way): their fault is gone. */
  sweep(decisions: readonly Decision[], active: ReadonlySet<string>): void {
    const wanted = new Set(decisions.flatMap((d) => (d.kind === "recover" ? [d.group] : [])));
    for (const g of [...this.holds.keys()]) if (!wanted.has(g) && !active.has(g)) this.holds.delete(g);
  }
}
