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
 *
 * The same first sign also drains the primary on every HAProxy that routes its port (`set server ... state drain`):
 * clients that HAProxy holds through the outage (it retries a refused connection, with redispatch) would otherwise
 * land on the restarted, empty process the moment it listens, and their writes would be acknowledged there and lost
 * when the replica is promoted. A drained server takes no new connection, keeps the ones it has, and is still
 * checked by HAProxy. The drain ends with the hold (the primary answers as it was), when a recovery of its host takes
 * over (its fence and its rollback own the server's state then), or after `limitMs` without a recovery of its host
 * (its failure was not confirmed: failoverd does not keep a server out on a doubt). A release sets `ready` only a
 * server still drained and not in maintenance, so it never undoes a fence. A drain a daemon left behind (it died in
 * between) is released by the next daemon once the primary answers, as a primary, with its replica's link up.
 */
import { cmd } from "../admin/haproxy.ts";
import type { Endpoint } from "../admin/redis.ts";
import { errorMessage } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { HaproxyAdmin, RedisAdmin } from "../providers/types.ts";

/** Where a primary is routed: its backend and server name on each HAProxy (by name and Runtime API endpoint). */
export interface Route {
  readonly backend: string;
  readonly server: string;
  readonly haproxies: readonly { readonly name: string; readonly admin: Endpoint }[];
}

interface Drained {
  readonly route: Route;
  readonly since: number;
  readonly timer: NodeJS.Timeout;
}

export class SyncGuard {
  /** The replicas whose resync this daemon holds, each with the primary it follows. */
  private readonly held = new Map<string, string>();
  /** Holds and releases in flight, by replica: one at a time each. */
  private readonly busy = new Set<string>();

  /** The primaries this daemon drained on the HAProxies, by target. */
  private readonly drained = new Map<string, Drained>();
  /** Releases asked while the drain was still being sent, with why. */
  private readonly releaseAsked = new Map<string, string>();

  constructor(
    private readonly o: {
      readonly redis: () => Pick<RedisAdmin, "holdSync" | "releaseSync" | "syncHeld">;
      readonly haproxy: () => HaproxyAdmin;
      readonly log: Logger;
      /** How long a drain may last without a recovery of the primary's host taking it over. */
      readonly drainLimitMs: () => number;
      /** Called when a drain reaches `drainLimitMs`: the daemon releases it unless a recovery owns it or it must stay. */
      readonly onDrainLimit: (primary: string) => void;
      readonly now?: () => number;
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

  /** Whether this daemon drained `primary` (and has not released it). */
  isDrained(primary: string): boolean {
    return this.drained.has(primary);
  }

  /** When this daemon drained `primary` (undefined: it did not). */
  drainedSince(primary: string): number | undefined {
    return this.drained.get(primary)?.since;
  }

  /** Whether any primary is drained now (the cheap question, asked at every check). */
  get draining(): boolean {
    return this.drained.size > 0;
  }

  /**
   * Drains `primary` on every HAProxy of `route`, unless it is drained already. Recorded before the commands are sent,
   * so an answer that arrives meanwhile releases it in order.
   */
  async drain(primary: string, route: Route, why: string): Promise<void> {
    const haproxy = this.o.haproxy;
    if (route.haproxies.length === 0 || this.drained.has(primary) || this.busy.has(drainKey(primary))) return;
    this.busy.add(drainKey(primary));
    const timer = setTimeout(() => this.o.onDrainLimit(primary), this.o.drainLimitMs());
    timer.unref();
    this.drained.set(primary, { route, since: (this.o.now ?? Date.now)(), timer });
    try {
      const settled = await Promise.allSettled(route.haproxies.map((h) => haproxy().apply(h.admin, [cmd.state(route.backend, route.server, "drain")])));
      const failed = route.haproxies.filter((_, i) => settled[i]!.status === "rejected").map((h) => h.name);
      const done = route.haproxies.length - failed.length;
      this.o.log.warn(
        { primary, why, failed },
        `drained ${primary} on ${done} of ${route.haproxies.length} HAProxies (${why}): no new connection reaches it until it answers as the same server${failed.length > 0 ? `; not on ${failed.join(", ")}` : ""}`,
      );
    } finally {
      this.busy.delete(drainKey(primary));
    }
    const asked = this.releaseAsked.get(primary);
    this.releaseAsked.delete(primary);
    if (asked !== undefined) await this.undrain(primary, asked);
  }

  /** A recovery of the primary's host runs: its fence and rollback own the server's state, so no time limit applies. */
  recoveryOwns(primary: string): void {
    const d = this.drained.get(primary);
    if (d) clearTimeout(d.timer);
  }

  /** Ends this daemon's drain of `primary` (see releaseDrain); asked while the drain is being sent: right after it. */
  async undrain(primary: string, why: string): Promise<void> {
    const d = this.drained.get(primary);
    if (!d) return;
    if (this.busy.has(drainKey(primary))) {
      this.releaseAsked.set(primary, why);
      return;
    }
    clearTimeout(d.timer);
    this.busy.add(drainKey(primary));
    try {
      const left = await this.releaseDrain(d.route);
      this.drained.delete(primary);
      this.o.log.info({ primary, why, left }, `released ${primary}'s drain: ${why}${left.length > 0 ? ` (could not on ${left.join(", ")}: its next check shows it)` : ""}`);
    } finally {
      this.busy.delete(drainKey(primary));
    }
  }

  /**
   * A drain found on an HAProxy that this daemon did not set (an earlier daemon died holding it): released. The
   * daemon asks only for a primary that answers as one, with its replica's link up.
   */
  async releaseLeftoverDrain(primary: string, route: Route): Promise<void> {
    if (this.drained.has(primary) || this.busy.has(drainKey(primary))) return;
    this.busy.add(drainKey(primary));
    try {
      const left = await this.releaseDrain(route);
      if (left.length < route.haproxies.length) {
        this.o.log.warn({ primary }, `released a drain of ${primary} left by an earlier failoverd (it answers as the primary, its replica's link is up)`);
      }
    } finally {
      this.busy.delete(drainKey(primary));
    }
  }

  /**
   * Sets `ready` on each HAProxy where the server is still drained and not in maintenance (a fence is never undone
   * here). Returns the HAProxies it could not read or change.
   */
  private async releaseDrain(route: Route): Promise<string[]> {
    const haproxy = this.o.haproxy;
    const settled = await Promise.allSettled(
      route.haproxies.map(async (h) => {
        const rows = await haproxy().serversState(h.admin, route.backend);
        const row = rows.find((r) => r.backend === route.backend && r.server === route.server);
        if (row?.inDrain && !row.inMaint) await haproxy().apply(h.admin, [cmd.state(route.backend, route.server, "ready")]);
      }),
    );
    return route.haproxies.filter((_, i) => settled[i]!.status === "rejected").map((h) => h.name);
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

const drainKey = (primary: string) => `drain:${primary}`;
