/**
 * The Redis half of failed_redis: fence the failed servers on every HAProxy, promote their twins, make the new
 * machine's servers replicas and wait for sync, register them with every HAProxy.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { cmd } from "../../admin/haproxy.ts";
import { renderForHost, redisBackendName } from "../../admin/haproxy-config.ts";
import { type Endpoint, endpointId, type RoleReply } from "../../admin/redis.ts";
import { errorMessage, FailoverdError, isRetryable } from "../../errors.ts";
import { getHost, type HaproxyHost, twinOf } from "../../topology/topology.ts";
import { type DataLossEstimate, describeLoss, estimateDataLoss, whyRefusePromotion } from "../../checks/replication.ts";
import { PreconditionError } from "../runner.ts";
import type { Step, StepContext } from "../types.ts";
import { confirmStillFailed, failedTargets } from "./confirm.ts";
import { currentPrimaries } from "./haproxy.ts";

/** The Redis ports of the recovery's host. */
export function portsOf(ctx: StepContext): readonly number[] {
  const h = getHost(ctx.topology, ctx.host);
  if (h.role !== "redis") throw new FailoverdError(`${ctx.host} is not a Redis host`);
  return h.ports;
}

/** The other host of the recovery's host's pair. */
export function twin(ctx: StepContext): string {
  const t = twinOf(ctx.topology, ctx.host);
  if (!t) throw new FailoverdError(`${ctx.host} is in no pair`);
  return t;
}

/** Rethrows the first failure of settled work (after all of it has finished). */
export function throwFirstRejection(results: readonly PromiseSettledResult<unknown>[]): void {
  const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) throw failed.reason;
}

const adminOf = (ctx: StepContext, h: HaproxyHost): Endpoint => ({ address: ctx.inventory.addressOf(h.name), port: h.adminPort });

/**
 * Runs `fn` on every HAProxy. An HAProxy that fails is tolerated only when the daemon has confirmed it down
 * (a dead HAProxy routes nothing, and it is rebuilt from the topology); any other failure fails the step.
 */
export async function onEveryHaproxy(ctx: StepContext, what: string, fn: (h: HaproxyHost, admin: Endpoint) => Promise<void>) {
  const done: string[] = [];
  const skipped: string[] = [];
  // Every HAProxy settles before the step ends: no work goes on behind a step already recorded as failed.
  const results = await Promise.allSettled(
    ctx.topology.haproxyHosts.map(async (h) => {
      try {
        await fn(h, adminOf(ctx, h));
        done.push(h.name);
      } catch (e) {
        if (ctx.monitor.statusOf(h.name) !== "down") throw e;
        skipped.push(h.name);
        ctx.log.warn({ haproxy: h.name, err: errorMessage(e) }, `${what}: ${h.name} is down, skipped`);
      }
    }),
  );
  throwFirstRejection(results);
  return { done: done.sort(), skipped: skipped.sort() };
}

export const fenceFailedServers: Step = {
  name: "fence",
  title: "Unregister its Redis servers from every HAProxy (maint, sessions shut)",
  async run(ctx) {
    const ports = portsOf(ctx);
    const r = await onEveryHaproxy(ctx, "fence", async (h, admin) => {
      // Every port of the host in one batch (one connection): a host of 16 servers is fenced as fast as a host of one.
      await ctx.providers.haproxy.apply(
        admin,
        ports.flatMap((p) => [cmd.state(redisBackendName(p), ctx.host, "maint"), cmd.shutdownSessions(redisBackendName(p), ctx.host)]),
      );
      await ctx.verify(`${ctx.host} is in maint on ${h.name}`, async () => {
        const rows = await ctx.providers.haproxy.serversState(admin);
        return ports.every((p) => rows.some((r) => r.server === ctx.host && r.backend === redisBackendName(p) && r.inMaint));
      });
    });
    return { fencedOn: r.done, skipped: r.skipped };
  },
  async rollback(ctx) {
    const ports = portsOf(ctx);
    await onEveryHaproxy(ctx, "unfence", async (_h, admin) => {
      await ctx.providers.haproxy.apply(admin, ports.map((p) => cmd.state(redisBackendName(p), ctx.host, "ready")));
    });
  },
};

/**
 * Holds the survivor's resync while its primary is failed over: a primary that comes back empty (restarted without
 * persistence, by a supervisor) would be fully resynced from within a second and the survivor would wipe the very copy
 * that is about to be promoted. Released by the promotion, or by the rollback.
 */
export const holdSurvivorSync: Step = {
  name: "hold",
  title: "Keep the surviving replica from resyncing from the failed server",
  async run(ctx) {
    const survivor = twin(ctx);
    const failedAddress = ctx.inventory.addressOf(ctx.host);
    const held: number[] = [];
    const settled = await Promise.allSettled(
      portsOf(ctx).map(async (port) => {
        const ep = { address: ctx.inventory.addressOf(survivor), port };
        const role = await roleOf(ctx, ep);
        if (role?.role !== "replica" || role.primary.address !== failedAddress || role.primary.port !== port) return;
        await ctx.providers.redis.holdSync(ep);
        await ctx.verify(`${survivor}:${port}'s resync is held`, () => ctx.providers.redis.syncHeld(ep));
        held.push(port);
      }),
    );
    throwFirstRejection(settled);
    return { survivor, held: held.sort() };
  },
  async rollback(ctx) {
    const survivor = twin(ctx);
    const held = ctx.result<{ held: number[] }>("hold")?.held ?? portsOf(ctx);
    await Promise.all(held.map((port) => ctx.providers.redis.releaseSync({ address: ctx.inventory.addressOf(survivor), port })));
  },
};

/** Null when `role` (the candidate's ROLE reply) may be promoted in place of `failed`; else why not. */
export function whyNotPromotable(candidate: string, role: RoleReply | undefined, failed: Endpoint): string | null {
  if (!role) return `${candidate} cannot be reached`;
  if (role.role === "primary") return null;
  if (role.primary.address !== failed.address || role.primary.port !== failed.port) {
    return `${candidate} replicates ${endpointId(role.primary)}, not the failed ${endpointId(failed)}`;
  }
  return null;
}

/**
 * The candidate's ROLE, or undefined when it cannot be read. A timeout, refusal or reset is asked again (three tries
 * in all): one slow answer must not refuse the promotion and undo the fence.
 */
async function roleOf(ctx: StepContext, ep: Endpoint): Promise<RoleReply | undefined> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await ctx.read(() => ctx.providers.redis.role(ep));
    } catch (e) {
      if (!isRetryable(e) || attempt >= 3 || ctx.signal.aborted) return undefined;
      await sleep(50, undefined, { signal: ctx.signal }).catch(() => {});
    }
  }
}

export interface PromoteResult {
  readonly primary: string;
  readonly promoted: readonly number[];
  readonly alreadyPrimary: readonly number[];
  /** What each promotion lost of what the failed primary had acknowledged (estimated), per promoted port. */
  readonly dataLoss?: readonly PromotionLoss[];
  /** The re-check of the failed servers right before the promotion, and when it confirmed the failure. */
  readonly confirmed?: readonly string[];
  readonly confirmedAt?: number;
}

export interface PromotionLoss {
  readonly port: number;
  readonly candidate: string;
  /** Null when it cannot be estimated (the failed primary was never seen healthy by this daemon). */
  readonly estimate: DataLossEstimate | null;
  readonly text: string;
}

/**
 * What promoting the candidate (a replica of the failed server, read now) loses; null when it holds no copy of the
 * data at all (it never completed a sync since it was started or re-pointed).
 */
async function lossOf(ctx: StepContext, port: number, candidate: Endpoint): Promise<PromotionLoss | { neverSynced: string }> {
  const name = `${twin(ctx)}:${port}`;
  const failed = `${ctx.host}:${port}`;
  const info = await ctx.read(() => ctx.providers.redis.info(candidate, "replication"));
  if (!info) return { port, candidate: name, estimate: null, text: `${name}: loss not estimated (no reading)` };
  if (info["master_link_status"] !== "up" && info["master_link_down_since_seconds"] === "-1") {
    return { neverSynced: `${name} never completed a sync since it was (re)started: it holds no copy of the data` };
  }
  const offset = Number(info["slave_repl_offset"] ?? Number.NaN);
  const ack = ctx.monitor.lastGood(failed);
  if (!ack || ack.offset === undefined || !Number.isFinite(offset)) {
    return { port, candidate: name, estimate: null, text: `${name}: loss unknown (${failed} was never seen healthy by this daemon)` };
  }
  const estimate = estimateDataLoss({ offset: ack.offset, at: ack.at }, offset, (o) => ctx.monitor.firstAbove(failed, o));
  return { port, candidate: name, estimate, text: `${name} misses ${describeLoss(estimate)} of what ${failed} had acknowledged` };
}

export const promoteSurvivor: Step = {
  name: "promote",
  title: "Make the remaining Redis the primary",
  pointOfNoReturn: true,
  /** A resumed recovery (another instance, a restart): the daemon's view of the roles follows the promotion. */
  async restore(ctx, result) {
    const r = result as PromoteResult | undefined;
    for (const p of [...(r?.promoted ?? []), ...(r?.alreadyPrimary ?? [])]) ctx.monitor.noteRole(`${r!.primary}:${p}`, "primary");
  },
  async run(ctx): Promise<PromoteResult> {
    const survivor = twin(ctx);
    const failedAddress = ctx.inventory.addressOf(ctx.host);
    const promoted: number[] = [];
    const alreadyPrimary: number[] = [];
    // Decide on the present: the failed servers are checked once more. One that answers as it was ends the recovery
    // here (rolled back, nothing promoted); one seen failing fewer than `fall` times is watched until confirmed.
    const confirmation = await confirmStillFailed(ctx, failedTargets(ctx, portsOf(ctx).map((p) => `${ctx.host}:${p}`)), "promotion");
    const confirmed = confirmation.evidence;
    // When the failure was confirmed, for a recovery that started early (else at its start).
    const confirmedAt = confirmation.confirmedAt;
    // Every candidate is checked before any is promoted: a refusal here changes nothing and may still roll back.
    const candidates = await Promise.all(
      portsOf(ctx).map(async (port) => {
        const ep = { address: ctx.inventory.addressOf(survivor), port };
        const role = await roleOf(ctx, ep);
        let why = ctx.dryRun ? null : whyNotPromotable(`${survivor}:${port}`, role, { address: failedAddress, port });
        let loss: PromotionLoss | undefined;
        if (!why && !ctx.dryRun && role?.role === "replica") {
          const l = await lossOf(ctx, port, ep);
          if ("neverSynced" in l) {
            if (!ctx.recovery.acceptDataLoss) why = l.neverSynced;
          } else {
            loss = l;
          }
        }
        return { port, ep, role, why, loss };
      }),
    );
    const refused = candidates.filter((c) => c.why !== null).map((c) => c.why);
    if (refused.length > 0) throw new PreconditionError(`cannot promote: ${refused.join("; ")}`);
    // The promotion guard: never lose more than the bound of acknowledged writes unless an operator said so.
    const losses = candidates.flatMap((c) => (c.loss ? [c.loss] : []));
    const over = losses.flatMap((l) =>
      l.estimate ? [whyRefusePromotion(l.candidate, `${ctx.host}:${l.port}`, l.estimate, ctx.topology.config.recovery)].filter((x): x is string => x !== null) : [],
    );
    if (over.length > 0 && !ctx.recovery.acceptDataLoss) {
      throw new PreconditionError(`promotion refused: ${over.join("; ")}; to promote anyway: failoverd promote --host ${survivor} --accept-data-loss`);
    }
    for (const l of losses) ctx.log.warn({ dataLoss: l.estimate, acceptDataLoss: ctx.recovery.acceptDataLoss }, `promoting ${l.text}`);
    const settled = await Promise.allSettled(
      candidates.map(async ({ port, ep, role }) => {
        if (role?.role === "primary") {
          alreadyPrimary.push(port);
          return;
        }
        await ctx.providers.redis.promote(ep);
        await ctx.waitFor(`${survivor}:${port} answers ROLE master`, async () =>
          (await ctx.providers.redis.role(ep)).role === "primary" ? true : "still a replica",
        5);
        promoted.push(port);
      }),
    );
    throwFirstRejection(settled);
    const routed = [...promoted, ...alreadyPrimary];
    // The hold of their resync ends with the promotion (a primary has nothing to resync from).
    const held = ctx.result<{ held: number[] }>("hold")?.held ?? [];
    await Promise.all(routed.filter((p) => held.includes(p)).map((p) => ctx.providers.redis.releaseSync({ address: ctx.inventory.addressOf(survivor), port: p })));
    for (const p of routed) ctx.monitor.noteRole(`${survivor}:${p}`, "primary");
    // Route at once: the new primary is ready and forced up, instead of waiting `rise` health checks. The ports found
    // primary already too: on a retry (or a resumed recovery) they are the ones an earlier attempt promoted. Its
    // current address first, on its own (a batch runs every command even when one is refused): each HAProxy must
    // send clients to where the survivor is now, whatever an earlier failed recovery left.
    const survivorAddress = ctx.inventory.addressOf(survivor);
    await onEveryHaproxy(ctx, "route to the new primary", async (_h, admin) => {
      await ctx.providers.haproxy.apply(admin, routed.map((p) => cmd.addr(redisBackendName(p), survivor, survivorAddress, p)));
      await ctx.providers.haproxy.apply(
        admin,
        routed.flatMap((p) => [cmd.state(redisBackendName(p), survivor, "ready"), cmd.health(redisBackendName(p), survivor, "up")]),
      );
    });
    return {
      primary: survivor,
      promoted: promoted.sort(),
      alreadyPrimary: alreadyPrimary.sort(),
      ...(losses.length > 0 ? { dataLoss: losses.filter((l) => promoted.includes(l.port)) } : {}),
      confirmed,
      ...(confirmedAt !== undefined ? { confirmedAt } : {}),
    };
  },
};

export const replicateFromSurvivor: Step = {
  name: "replicate",
  title: "Make each new Redis server a replica of the survivor, and wait until it is in sync",
  timeoutMs: (t) => t.config.recovery.syncTimeoutMs,
  async run(ctx) {
    const survivor = twin(ctx);
    const address = ctx.inventory.addressOf(ctx.host);
    const ports = portsOf(ctx);
    const settled = await Promise.allSettled(
      ports.map(async (port) => {
        const replica = { address, port };
        const primary = { address: ctx.inventory.addressOf(survivor), port };
        const role = await ctx.read(() => ctx.providers.redis.role(replica));
        const following = role?.role === "replica" && role.primary.address === primary.address && role.primary.port === port;
        if (!following) await ctx.providers.redis.replicate(replica, primary);
        await ctx.waitFor(`${ctx.host}:${port} is in sync with ${survivor}:${port}`, () => inSync(ctx, replica, primary), 20);
      }),
    );
    throwFirstRejection(settled);
    return { primary: survivor, ports };
  },
};

/**
 * In sync: the link is up, no sync is in progress, and the replica has reached the offset the primary had just
 * before (read the primary first, so continuous writes cannot make this fail forever).
 */
export async function inSync(ctx: StepContext, replica: Endpoint, primary: Endpoint): Promise<true | string> {
  const p = await ctx.providers.redis.info(primary, "replication");
  const r = await ctx.providers.redis.info(replica, "replication");
  if (r["role"] !== "slave") return "not a replica yet";
  if (r["master_link_status"] !== "up") return "link down";
  if (r["master_sync_in_progress"] !== "0") return "initial sync in progress";
  const lag = Number(p["master_repl_offset"]) - Number(r["slave_repl_offset"]);
  return lag <= 0 ? true : `${lag} bytes behind`;
}

export const registerReplacement: Step = {
  name: "register",
  title: "Register the new Redis servers with every HAProxy",
  async run(ctx) {
    const ports = portsOf(ctx);
    const address = ctx.inventory.addressOf(ctx.host);
    const primaryOf = await currentPrimaries(ctx, twin(ctx));
    const r = await onEveryHaproxy(ctx, "register", async (h, admin) => {
      // The addresses first, on their own: HAProxy runs every command of a batch, and a server must not leave maint
      // at its old address (the dead machine's) because its new one was refused.
      await ctx.providers.haproxy.apply(admin, ports.map((p) => cmd.addr(redisBackendName(p), ctx.host, address, p)));
      // Leaving maint, HAProxy still counts the server up from before it was fenced, and would send new connections
      // to this replica (READONLY) until its checks failed `fall` times. Down now: its checks keep it so.
      await ctx.providers.haproxy.apply(
        admin,
        ports.flatMap((p) => [cmd.state(redisBackendName(p), ctx.host, "ready"), cmd.health(redisBackendName(p), ctx.host, "down")]),
      );
      await ctx.verify(`${ctx.host} is registered at ${address} on ${h.name}`, async () => {
        const rows = await ctx.providers.haproxy.serversState(admin);
        return ports.every((p) =>
          rows.some((x) => x.backend === redisBackendName(p) && x.server === ctx.host && x.address === address && !x.inMaint),
        );
      });
      // The file too, so a later reload keeps the new address (a reload forgets runtime changes).
      const machine = await ctx.read(() => ctx.providers.compute.find(h.name, ctx.signal));
      if (machine) {
        const text = renderForHost(ctx.topology, ctx.inventory, h.name, { primaryOf });
        await ctx.providers.proxies.applyConfig(machine, text, ctx.signal, { reload: false });
      }
    });
    return { address, registeredOn: r.done, skipped: r.skipped };
  },
};
