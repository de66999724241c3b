/** Carries one Runner's progress events onto the daemon's bus, tagged with who asked for the recovery and why. */
import type { RunOutcome, Runner, StepEvent } from "../recovery/runner.ts";
import type { EventBus, RecoveryOrigin, RecoveryRef } from "./events.ts";

export interface RecoveryTracker {
  /** The recovery's id once it is known (at its start). */
  id(): string | undefined;
  /** Announces the end; call once with the runner's outcome. */
  ended(outcome: RunOutcome, error?: string, dataLoss?: string): void;
}

export function forwardRunnerEvents(
  runner: Runner,
  bus: EventBus,
  base: { playbook: string; host: string; group: string; diagnosis: string; origin: RecoveryOrigin; resumeId?: string | undefined },
  now: () => number,
): RecoveryTracker {
  let ref: RecoveryRef | undefined;
  let startedAt = now();
  const stepStarts = new Map<string, number>();
  const refOf = (recoveryId: string): RecoveryRef => {
    ref ??= { recoveryId, playbook: base.playbook, host: base.host, group: base.group, diagnosis: base.diagnosis, origin: base.origin };
    return ref;
  };
  if (base.resumeId) bus.emit("recovery-start", { ...refOf(base.resumeId), at: startedAt });
  runner.on("recovery-start", (e: { recoveryId: string; at: number }) => {
    startedAt = e.at;
    bus.emit("recovery-start", { ...refOf(e.recoveryId), at: e.at });
  });
  runner.on("step-start", (e: StepEvent) => {
    stepStarts.set(e.step, e.at);
    bus.emit("step-start", { ...refOf(e.recoveryId), step: e.step, title: e.title, attempt: e.attempt, at: e.at });
  });
  runner.on("step-end", (e: StepEvent) => {
    const durationMs = e.at - (stepStarts.get(e.step) ?? e.at);
    bus.emit("step-end", {
      ...refOf(e.recoveryId),
      step: e.step,
      title: e.title,
      attempt: e.attempt,
      at: e.at,
      ok: e.ok === true,
      durationMs,
      ...(e.error !== undefined ? { error: e.error } : {}),
    });
  });
  let lastError: string | undefined;
  runner.on("recovery-end", (e: { error?: string }) => {
    lastError = e.error;
  });
  return {
    id: () => ref?.recoveryId,
    ended: (outcome, error, dataLoss) => {
      if (!ref || outcome === "not-started") return;
      const at = now();
      const err = error ?? lastError;
      bus.emit("recovery-end", {
        ...ref,
        outcome,
        at,
        durationMs: at - startedAt,
        ...(err !== undefined ? { error: err } : {}),
        ...(dataLoss !== undefined ? { dataLoss } : {}),
      });
    },
  };
}
