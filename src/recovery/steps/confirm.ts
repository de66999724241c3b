/**
 * Deciding on the present at the point of no return. Right before a promotion (and before an HAProxy is terminated)
 * every failed target is checked once more with the check's own deadline: one that answers as it was means the
 * failure is over, and the recovery stops there and rolls back, saying why. A recovery that started early, on strong
 * evidence (a refused connection and a replica whose link dropped), has not yet seen `fall` failed checks: it keeps
 * checking, at the daemon's pace, until the failure is confirmed or the target answers.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { Observation } from "../../checks/observation.ts";
import { classifyRestart } from "../../checks/replication.ts";
import { PreconditionError } from "../runner.ts";
import type { StepContext } from "../types.ts";

const CRASH_KINDS = new Set(["refused", "reset"]);

/** The failed targets of the recovery's host: the diagnosis' own, else every port (or the HAProxy itself). */
export function failedTargets(ctx: StepContext, all: readonly string[]): string[] {
  const named = ctx.recovery.targets.filter((t) => t === ctx.host || t.startsWith(`${ctx.host}:`));
  return named.length > 0 ? named : [...all];
}

export interface Confirmation {
  /** One line of evidence per target. */
  readonly evidence: string[];
  /** The failure was not yet confirmed when the step began (an early start): it was watched until it was. */
  readonly waited: boolean;
  /**
   * When the failure was confirmed, for a recovery that started before it was (early, on crash evidence): now, when
   * this step's re-checks confirmed it; else when the daemon's checks after the unmonitor did (the last target marked
   * down). Undefined when it was confirmed before the recovery began.
   */
  readonly confirmedAt?: number;
}

/**
 * Resolves once every target's failure is confirmed (`fall` failed checks in a row, counting those seen before the
 * recovery began) or its dataset is known lost (a primary that restarted empty). Throws PreconditionError("recovered
 * before <what>") when a target answers as it was. A failure confirmed already is re-checked once with a short
 * deadline (a server that answers again answers at once; a hung one need not be waited for a whole check timeout).
 */
export async function confirmStillFailed(ctx: StepContext, targets: readonly string[], what: string): Promise<Confirmation> {
  if (ctx.dryRun) return { evidence: targets.map((t) => `${t}: re-checked at run time`), waited: false };
  if (ctx.recovery.forced) return { evidence: targets.map((t) => `${t}: failed over by an operator (forced), not re-checked`), waited: false };
  const rules = ctx.monitor.rules;
  const timeoutMs = ctx.topology.config.checks.timeoutMs;
  const short = Math.max(10, Math.min(timeoutMs, Math.floor(Math.min(rules.fastIntervalMs ?? rules.intervalMs, rules.intervalMs) / 2)));
  let waited = false;
  const evidence = await Promise.all(
    targets.map(async (t) => {
      let failures = ctx.monitor.failuresOf(t);
      if (failures < rules.fall) waited = true;
      for (;;) {
        const o = await ctx.monitor.recheck(t, failures >= rules.fall ? short : undefined);
        if (o.ok) {
          const why = answered(ctx, t, o);
          if (why.lost) return why.text;
          throw new PreconditionError(`recovered before ${what}: ${why.text}`);
        }
        failures++;
        if (failures >= rules.fall) return `${t} re-checked: ${o.failure?.kind ?? "failed"} (${failures} failed checks in a row)`;
        const every = o.failure && CRASH_KINDS.has(o.failure.kind) ? Math.min(rules.fastIntervalMs ?? rules.intervalMs, rules.intervalMs) : rules.intervalMs;
        await sleep(every, undefined, { signal: ctx.signal });
      }
    }),
  );
  if (waited) return { evidence, waited, confirmedAt: Date.now() };
  const startedAt = ctx.recovery.startedAt;
  const downSince = targets.map((t) => ctx.monitor.downSince?.(t));
  const last = downSince.every((d) => d !== undefined) ? Math.max(...(downSince as number[])) : undefined;
  return { evidence, waited, ...(startedAt !== undefined && last !== undefined && last > startedAt ? { confirmedAt: last } : {}) };
}

/** A target that answered: is its failure over, or did it come back without its data? */
function answered(ctx: StepContext, target: string, o: Observation): { lost: boolean; text: string } {
  if (o.type !== "redis") return { lost: false, text: `${target} answers again` };
  const before = ctx.monitor.lastGood(target);
  const restart = before ? classifyRestart(before, o) : null;
  if (restart?.datasetLost) return { lost: true, text: `${restart.text}: its replica is promoted before it resyncs from it` };
  return { lost: false, text: `${target} answers again as ${o.role ?? "a server"}${restart ? ` (${restart.text})` : ""}` };
}
