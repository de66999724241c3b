/**
 * The other failoverd instances, as the daemon sees them when several coordinate (src/coordination/). Absent in
 * single-instance mode. The daemon knows this interface only, never the store behind it.
 */
import type { Diagnosis, TargetStatus } from "../checks/detector.ts";
import type { Placement } from "../topology/inventory.ts";
import type { Hold, Maintenance } from "./state.ts";

export interface Peers {
  /** The diagnoses with each actionable one confirmed by a majority of the instances, or downgraded to an alert. */
  confirm(diagnoses: readonly Diagnosis[], statusOf: (target: string) => TargetStatus | undefined): Diagnosis[];
  /** Called when the other instances' views changed: the daemon evaluates again. */
  onChange(cb: () => void): void;
  /** Shares where the hosts live now (only the acting instance may: it throws LeaseLostError otherwise). */
  savePlacements(placements: readonly Placement[]): Promise<void>;
  /** Called with the placements the acting instance shared. */
  onPlacements(cb: (placements: readonly Placement[]) => void): void;
  /** The shared placements now (null when none were shared yet). */
  placements(): Promise<readonly Placement[] | null>;
  /** What /status shows of the instances: who leads, who publishes, their verdicts. */
  view(): InstancesView;
  /** The operator's holds and acknowledgements, shared by every instance (any instance writes them, leading or not). */
  readonly controls: SharedControls;
  /** Publishes where this instance's HTTP API answers, so the others can hand the acting instance a request. */
  advertise(url: string): Promise<void>;
  /** The acting instance's name and HTTP API, when another instance acts and has published its API; else null. */
  leaderApi(): Promise<{ readonly instance: string; readonly url: string } | null>;
}

/** The shared holds as read from the store. */
export interface SharedHolds {
  readonly pause: Hold | null;
  readonly maintenance: ReadonlyMap<string, Maintenance>;
  /** Acknowledged finding keys, with who acknowledged them and when. */
  readonly acks: ReadonlyMap<string, { readonly by: string; readonly at: number }>;
  /** Who ended the pause and each host's maintenance, where an operator ended them (an expiry leaves no name). */
  readonly endedBy: { readonly pause: string | null; readonly maintenance: ReadonlyMap<string, string> };
}

/**
 * One change another instance (or this one) wrote, as every instance reads it. An ended hold says who ended it
 * (`by`) when the store kept that.
 */
export type SharedChange =
  | { readonly kind: "pause"; readonly hold: Hold | null; readonly by?: string | undefined }
  | { readonly kind: "maintenance"; readonly host: string; readonly hold: Maintenance | null; readonly by?: string | undefined }
  | { readonly kind: "ack"; readonly key: string; readonly ack: { readonly by: string; readonly at: number } | null };

/**
 * Pause, maintenance and acknowledgements kept in the store: one key each, written whole (two instances writing at
 * once leave one of two whole values, never a mix). Each write throws when the store does not take it.
 */
export interface SharedControls {
  /**
   * Sets the pause (null: resumed). `by` is who asked: the hold's own `by`, or who ended it (kept in the store with
   * the end, so every instance can say who resumed).
   */
  setPause(hold: Hold | null, by: string): Promise<void>;
  setMaintenance(host: string, m: Maintenance | null, by: string): Promise<void>;
  /**
   * Ends an expired hold in the store only if it is still the one given (a newer pause is kept): true for the one
   * instance whose delete took, which journals the expiry.
   */
  endExpired(what: { readonly host?: string | undefined }, hold: Hold): Promise<boolean>;
  acknowledge(keys: readonly string[], by: string, at: number): Promise<void>;
  /** Forgets an acknowledgement (its finding is gone). */
  forgetAck(key: string): Promise<void>;
  read(): Promise<SharedHolds>;
  onChange(cb: (change: SharedChange) => void): void;
  /**
   * Called with every hold the store has after it was read whole again: at start, and whenever changes may have been
   * missed (the store did not answer, or its watch broke or was cancelled). What differs from what this instance
   * holds is a change it missed.
   */
  onResync(cb: (holds: SharedHolds) => void): void;
}

export interface InstancesView {
  /** This instance's name. */
  readonly instance: string;
  /** Instances configured, and how many must agree to confirm a failure. */
  readonly configured: number;
  readonly quorum: number;
  readonly leader: string | null;
  /** Whether this instance acts now, and why not. */
  readonly acting: boolean;
  readonly notActing: string | null;
  /** Whether the store answers this instance. */
  readonly connected: boolean;
  /** Instances publishing now. */
  readonly observers: readonly string[];
  readonly leaderChanges: number;
  readonly lease: { readonly ttlSeconds: number; readonly msLeft: number | null };
  /** The other instances' verdicts that are not "up": instance -> target -> status and evidence. */
  readonly verdicts: Readonly<Record<string, Readonly<Record<string, { readonly status: string; readonly kind?: string | undefined; readonly since: number }>>>>;
}
