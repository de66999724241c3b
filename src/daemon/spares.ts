/**
 * The warm spare pool (provider.spares): after the daemon starts and after every recovery, in the background, it
 * launches spares until each role has its count, one at a time. Never while a recovery runs (a recovery's start
 * aborts a spare launch under way; it is finished or replaced at the next refill), never beyond the count. Each change
 * of the pool is an event (metrics, /status).
 */
import { errorMessage } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { ComputeProvider, MachineRole, Spare } from "../providers/types.ts";
import { sparePorts, type Topology } from "../topology/topology.ts";
import type { EventBus } from "./events.ts";

export const SPARE_ROLES = ["redis", "haproxy"] as const satisfies readonly MachineRole[];
export type SpareRole = (typeof SPARE_ROLES)[number];

export interface SpareCounts {
  readonly role: SpareRole;
  /** The count the config keeps, and the state it keeps them in. */
  readonly wanted: number;
  readonly state: "stopped" | "running";
  readonly stopped: number;
  readonly running: number;
  readonly pending: number;
}

/** The pool of a role as counts. */
export function countSpares(role: SpareRole, t: Topology, spares: readonly Spare[]): SpareCounts {
  const spec = t.config.provider.spares[role];
  const n = (s: Spare["state"]) => spares.filter((x) => x.state === s).length;
  return { role, wanted: spec?.count ?? 0, state: spec?.state ?? "stopped", stopped: n("stopped"), running: n("running"), pending: n("pending") };
}

export interface SparePoolOptions {
  readonly topology: () => Topology;
  readonly compute: ComputeProvider;
  readonly log: Logger;
  readonly events: EventBus;
  /** True while a recovery runs: no spare is launched then. */
  readonly busy: () => boolean;
  readonly stopping: AbortSignal;
  readonly now: () => number;
  /** After a failed refill, the next attempt (ms). */
  readonly retryMs?: number;
}

export class SparePool {
  private running: Promise<void> | null = null;
  private again = false;
  private launching: AbortController | null = null;
  private retry: NodeJS.Timeout | null = null;
  private readonly last = new Map<SpareRole, SpareCounts>();

  constructor(private readonly o: SparePoolOptions) {}

  /** Whether the config keeps any spare. */
  get enabled(): boolean {
    const s = this.o.topology().config.provider.spares;
    return SPARE_ROLES.some((r) => (s[r]?.count ?? 0) > 0);
  }

  /** The pool as last seen, per role kept. */
  snapshot(): SpareCounts[] {
    return [...this.last.values()];
  }

  /** Starts a refill in the background (or asks the one under way to look again). */
  refill(): void {
    if (!this.enabled || this.o.stopping.aborted) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.loop()
      .catch((e: unknown) => this.o.log.error({ err: errorMessage(e) }, "spare refill failed unexpectedly (a bug)"))
      .finally(() => {
        this.running = null;
        if (this.again) {
          this.again = false;
          this.refill();
        }
      });
  }

  /** A recovery starts: a spare launch under way is cut short. */
  interrupt(): void {
    this.launching?.abort(new Error("a recovery started"));
  }

  /** Resolves when no refill runs (stop). */
  async stop(): Promise<void> {
    if (this.retry) clearTimeout(this.retry);
    this.interrupt();
    await this.running;
  }

  private async loop(): Promise<void> {
    const t = this.o.topology();
    for (const role of SPARE_ROLES) {
      const spec = t.config.provider.spares[role];
      if (!spec || spec.count === 0) continue;
      for (;;) {
        if (this.o.busy() || this.o.stopping.aborted) return;
        this.launching = new AbortController();
        const timeout = t.config.recovery.launchTimeoutMs ?? t.config.recovery.stepTimeoutMs;
        const signal = AbortSignal.any([this.o.stopping, this.launching.signal, AbortSignal.timeout(timeout)]);
        try {
          const pool = await this.o.compute.spares(role, signal);
          this.publish(countSpares(role, t, pool));
          if (pool.length >= spec.count) break;
          if (this.o.busy()) return;
          this.o.log.info({ role, have: pool.length, wanted: spec.count }, `launching a ${role} spare (${pool.length + 1} of ${spec.count}, kept ${spec.state})`);
          const spare = await this.o.compute.addSpare(role, spec.state, role === "redis" ? sparePorts(t) : [], signal);
          this.o.log.info({ role, spare: spare.id, address: spare.address }, `${role} spare ${spare.id} ready (${spare.state})`);
        } catch (e) {
          if (this.launching.signal.aborted || this.o.stopping.aborted) return;
          this.o.log.warn({ role, err: errorMessage(e) }, `could not refill the ${role} spares; trying again in ${Math.round((this.o.retryMs ?? 60_000) / 1000)} s`);
          this.retry = setTimeout(() => this.refill(), this.o.retryMs ?? 60_000);
          this.retry.unref();
          return;
        } finally {
          this.launching = null;
        }
      }
    }
  }

  private publish(c: SpareCounts): void {
    this.last.set(c.role, c);
    this.o.events.emit("spares", { ...c, at: this.o.now() });
  }

  /** After a claim: the pool as it is now, without launching anything. */
  async observe(): Promise<void> {
    const t = this.o.topology();
    for (const role of SPARE_ROLES) {
      if ((t.config.provider.spares[role]?.count ?? 0) === 0) continue;
      try {
        this.publish(countSpares(role, t, await this.o.compute.spares(role, AbortSignal.any([this.o.stopping, AbortSignal.timeout(30_000)]))));
      } catch (e) {
        this.o.log.warn({ role, err: errorMessage(e) }, `could not list the ${role} spares`);
      }
    }
  }
}
