/**
 * The surviving replica's resync, held at the first sign its primary may have restarted.
 *
 * A primary killed and restarted by a supervisor within a check or two comes back empty (no persistence). Its replica
 * reconnects at its next replication cron (within a second), finds a new replication id, resyncs in full and wipes
 * the very copy a failover needs. The recovery's `hold` step comes too late for that race: it runs after detection
 * and the steps before it. So the acting daemon holds the replica's resync (the `hold` step's own mechanism: `CONFIG
 * SET masterauth` to a value no server has; the replica keeps its link, data and offset, it only cannot complete a
 * new handshake) the moment the primary's kept connection closes or a check of it is refused or reset, and releases
 * it as soon as the primary answers as the same process (or restarted with its data). A primary that came back empty
 * keeps its replica held: the recovery promotes the replica (the promotion releases it); while no recovery may run
 * (paused, not leading, a guard refuses), the replica keeps its data and the PrimaryRestartedEmpty alert says why.
 *
 * Reversible, idempotent and on a replica only: it changes nothing a client sees. A hold that a daemon left behind
 * (it died in between) is found and released by the next daemon once the replica's link is up again.
 */
import type { Endpoint } from "../admin/redis.ts";
import { errorMessage } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { RedisAdmin } from "../providers/types.ts";

export class SyncGuard {
  /** The replicas whose resync this daemon holds, each with the primary it follows. */
  private readonly held = new Map<string, string>();
  /** Holds and releases in flight, by replica: one at a time each. */
  private readonly busy = new Set<string>();

  constructor(
    private readonly o: {
      readonly redis: () => Pick<RedisAdmin, "holdSync" | "releaseSync" | "syncHeld">;
      readonly log: Logger;
    },
  ) {}

  /** Whether any resync is held now (the cheap question, asked at every check). */
  get holding(): boolean {
    return this.held.size > 0;
  }

  isHeld(replica: string): boolean {
    return this.held.has(replica);
  }

  /** The replicas held for `primary`. */
  heldFor(primary: string): string[] {
    return [...this.held].filter(([, p]) => p === primary).map(([replica]) => replica);
  }

  /** Holds `replica`'s resync (it follows `primary`), unless it is held already. */
  async hold(primary: string, replica: string, ep: Endpoint, why: string): Promise<void> {
    if (this.held.has(replica) || this.busy.has(replica)) return;
    this.busy.add(replica);
    try {
      await this.o.redis().holdSync(ep);
      this.held.set(replica, primary);
      this.o.log.warn({ replica, primary, why }, `holding ${replica}'s resync (${why}): a primary that restarted empty must not wipe its replica`);
    } catch (e) {
      this.o.log.warn({ replica, primary, err: errorMessage(e) }, `could not hold ${replica}'s resync: ${errorMessage(e)}`);
    } finally {
      this.busy.delete(replica);
    }
  }

  /** Releases the replicas held for `primary`; one that cannot be released stays recorded (the next answer retries). */
  async release(primary: string, endpointOf: (replica: string) => Endpoint | undefined, why: string): Promise<void> {
    await Promise.all(
      this.heldFor(primary).map(async (replica) => {
        const ep = endpointOf(replica);
        if (!ep || this.busy.has(replica)) return;
        this.busy.add(replica);
        try {
          await this.o.redis().releaseSync(ep);
          this.held.delete(replica);
          this.o.log.info({ replica, primary }, `released ${replica}'s resync: ${why}`);
        } catch (e) {
          this.o.log.warn({ replica, primary, err: errorMessage(e) }, `could not release ${replica}'s resync yet: ${errorMessage(e)}`);
        } finally {
          this.busy.delete(replica);
        }
      }),
    );
  }

  /** A held replica that became a primary was released by its promotion: forget it. */
  promoted(replica: string): void {
    this.held.delete(replica);
  }

  /**
   * A replica seen for the first time by this daemon, following its primary with its link up: a hold found on it was
   * left by an earlier daemon (none of this one's), and its primary answers: released.
   */
  async releaseLeftover(replica: string, ep: Endpoint): Promise<void> {
    if (this.held.has(replica) || this.busy.has(replica)) return;
    this.busy.add(replica);
    try {
      if (!(await this.o.redis().syncHeld(ep))) return;
      await this.o.redis().releaseSync(ep);
      this.o.log.warn({ replica }, `released a resync hold on ${replica} left by an earlier failoverd (its link to its primary is up)`);
    } catch (e) {
      this.o.log.debug({ replica, err: errorMessage(e) }, `could not look for a leftover resync hold on ${replica}`);
    } finally {
      this.busy.delete(replica);
    }
  }
}
