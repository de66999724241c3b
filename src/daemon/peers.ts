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
}
