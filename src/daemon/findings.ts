/**
 * The findings the daemon holds now: each diagnosis with its decision, since when, and whether an operator has
 * acknowledged it. A finding is announced (the `diagnosis` event) when it appears or its decision changes, and
 * `resolved` when it is gone; an acknowledged finding stays quiet until it changes.
 */
import { DIAGNOSES } from "../checks/detector.ts";
import type { Decision } from "../recovery/decider.ts";
import type { ActiveDiagnosis, EventBus } from "./events.ts";

export const findingKey = (d: Decision): string => `${d.diagnosis.name}:${d.host}`;

export class Findings {
  private readonly active = new Map<string, ActiveDiagnosis>();
  /** Several instances: the findings acknowledged through any instance (a finding that appears here later is born acknowledged). */
  private readonly sharedAcks = new Set<string>();
  /** Several instances: each acknowledgement read from the store, and when it was made (a whole read tells only what is new). */
  private readonly toldAcks = new Map<string, number>();

  constructor(
    private readonly bus: EventBus,
    /** Called when a finding acknowledged through the store is gone here (its acknowledgement may be forgotten). */
    private readonly onAckedGone?: (key: string) => void,
  ) {}

  /** Several instances: an acknowledgement read from the store (null: forgotten there). */
  acknowledgeShared(key: string, ack: { readonly by: string; readonly at: number } | null, now: number): void {
    if (ack === null) {
      this.toldAcks.delete(key);
      this.sharedAcks.delete(key);
      return;
    }
    this.toldAcks.set(key, ack.at);
    this.sharedAcks.add(key);
    const f = this.active.get(key);
    if (!f || f.acknowledged) return;
    this.active.set(key, { ...f, acknowledged: true });
    this.bus.emit("ack", { keys: [key], at: now, by: ack.by });
  }

  /**
   * Several instances: every acknowledgement the store has, read whole (after an outage, a cancelled watch): the ones
   * not read before are taken as above, the ones gone from it are forgotten. One read before is not taken again: the
   * finding it acknowledged may have changed since, and a change is news again.
   */
  reconcileShared(acks: ReadonlyMap<string, { readonly by: string; readonly at: number }>, now: number): void {
    for (const key of [...this.toldAcks.keys()]) if (!acks.has(key)) this.acknowledgeShared(key, null, now);
    for (const [key, ack] of acks) if (this.toldAcks.get(key) !== ack.at) this.acknowledgeShared(key, ack, now);
  }

  /** Folds one evaluation's decisions in: new or changed findings are announced, missing ones resolved. */
  update(decisions: readonly Decision[], now: number): void {
    const seen = new Set<string>();
    for (const d of decisions) {
      const key = findingKey(d);
      seen.add(key);
      const decision: ActiveDiagnosis["decision"] = d.kind === "recover" ? { kind: "recover", playbook: d.playbook } : { kind: "alert", reason: d.reason };
      const prev = this.active.get(key);
      if (prev && signature(prev.decision) === signature(decision)) {
        // The same decision in other numbers ("5 of 7 targets", "cooling down for 12 s more"): kept, not announced.
        this.active.set(key, { ...prev, decision });
        continue;
      }
      // A recovery under way for the finding is no change worth announcing again.
      if (prev?.decision.kind === "recover" && decision.kind === "alert" && /already under way/.test(decision.reason)) continue;
      // A finding that changed is news again, whoever acknowledged what it was.
      if (prev) this.sharedAcks.delete(key);
      const finding: ActiveDiagnosis = {
        key,
        diagnosis: d.diagnosis,
        actionable: DIAGNOSES[d.diagnosis.name].actionable,
        decision,
        since: prev?.since ?? now,
        acknowledged: this.sharedAcks.has(key),
      };
      this.active.set(key, finding);
      this.bus.emit("diagnosis", { ...finding, at: now });
    }
    for (const [key, f] of this.active) if (!seen.has(key)) this.resolve(key, f, now, "cleared");
  }

  /** The host went under recovery: its findings are no longer current. */
  resolveHost(host: string, now: number): void {
    for (const [key, f] of this.active) if (f.diagnosis.host === host) this.resolve(key, f, now, "recovering");
  }

  /** Acknowledges every current finding; returns their keys. */
  acknowledge(now: number, by: string): string[] {
    const keys: string[] = [];
    for (const [key, f] of this.active) {
      if (!f.acknowledged) this.active.set(key, { ...f, acknowledged: true });
      keys.push(key);
    }
    this.bus.emit("ack", { keys, at: now, by });
    return keys;
  }

  list(): ActiveDiagnosis[] {
    return [...this.active.values()];
  }

  private resolve(key: string, f: ActiveDiagnosis, now: number, why: "cleared" | "recovering"): void {
    this.active.delete(key);
    if (this.sharedAcks.delete(key)) this.onAckedGone?.(key);
    this.bus.emit("resolved", { key, diagnosis: f.diagnosis, at: now, sinceMs: now - f.since, why });
  }
}

/** A decision without its numbers: what makes a change worth announcing. */
function signature(d: ActiveDiagnosis["decision"]): string {
  return d.kind === "recover" ? `recover ${d.playbook}` : `alert ${d.reason.replace(/\d+/g, "#")}`;
}
