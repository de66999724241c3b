/**
 * The other failoverd instances, as the daemon sees them when several coordinate (src/coordination/). Absent in
 * single-instance mode. The daemon knows this interface only, never the store behind it.
 */
import type { Diagnosis, TargetStatus } from "../checks/detector.ts";
import type { Placement } from "../topology/inventory.ts";

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
