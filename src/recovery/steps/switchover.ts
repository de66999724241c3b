/**
 * A planned switchover of a pair: its primaries move to the other host (`ctx.host`, the target) with Redis'
 * `FAILOVER TO ... TIMEOUT`, which pauses writes on the primary until the target has caught up, so no acknowledged
 * write is lost. The precautions of shared/notes/haproxy-redis.md: the target must answer (a hung target would leave
 * the primary demoted and stuck), it must be an in-sync replica of its twin, TIMEOUT is always passed, the outcome
 * is watched on both servers (ROLE), and `FAILOVER ABORT` ends a failover that did not complete. Then every HAProxy
 * moves in step: the new primary is made ready and up at once; the old one, now a replica, fails the role check by
 * itself (it is marked down and its sessions shut so clients reconnect now, but it is not fenced).
 */
import { setTimeout as sleep } from "node:timers/promises";
import { cmd } from "../../admin/haproxy.ts";
import { redisBackendName, renderForHost } from "../../admin/haproxy-config.ts";
import { type Endpoint, endpointId } from "../../admin/redis.ts";
import { errorMessage, FailoverdError } from "../../errors.ts";
import type { Step, StepContext } from "../types.ts";
import { currentPrimaries } from "./haproxy.ts";
import { inSync, onEveryHaproxy, portsOf, throwFirstRejection, twin } from "./redis.ts";

/** Extra time, beyond FAILOVER's own TIMEOUT, for the target to take over once the primary has let go. */
const TAKEOVER_MARGIN_MS = 2000;

interface Sides {
  /** The current primary host (the target's twin). */
  readonly from: string;
  /** The host that becomes primary. */
  readonly to: string;
  readonly ports: readonly number[];
}

function sides(ctx: StepContext): Sides {
  return { from: twin(ctx), to: ctx.host, ports: portsOf(ctx) };
}

const ep = (ctx: StepContext, host: string, port: number): Endpoint => ({ address: ctx.inventory.addressOf(host), port });

/**
 * Null when `to:port` may take over from `from:port` now; else why not. `alreadyPrimary` when the target already is
 * the primary (a resumed switchover, or a port that was switched before).
 */
export async function whyNotSwitchable(ctx: StepContext, from: string, to: string, port: number): Promise<string | "alreadyPrimary" | null> {
  const target = ep(ctx, to, port);
  const source = ep(ctx, from, port);
  // PING first: a hung target would leave the primary demoted and stuck in failover-in-progress.
  let role: Awaited<ReturnType<StepContext["providers"]["redis"]["role"]>>;
  try {
    role = await ctx.providers.redis.role(target);
  } catch (e) {
    return `${to}:${port} does not answer (${errorMessage(e)})`;
  }
  const primary = await ctx.providers.redis.role(source).catch(() => undefined);
  if (role.role === "primary") {
    if (primary?.role === "primary") return `${from}:${port} and ${to}:${port} both answer as primary: resolve the split brain first`;
    return "alreadyPrimary";
  }
  if (role.primary.address !== source.address || role.primary.port !== port) {
    return `${to}:${port} replicates ${endpointId(role.primary)}, not ${from}:${port} (${endpointId(source)})`;
  }
  if (!primary) return `${from}:${port} (the primary) does not answer`;
  if (primary.role !== "primary") return `${from}:${port} is not a primary`;
  if (!primary.replicas.some((r) => r.address === target.address && r.port === port)) {
    return `${from}:${port} does not have ${to}:${port} connected as a replica`;
  }
  return null;
}

export interface PreflightResult extends Sides {
  /** Ports whose primary moves. */
  readonly toSwitch: readonly number[];
  readonly alreadyPrimary: readonly number[];
}

export const checkSwitchover: Step = {
  name: "preflight",
  title: "PING the target and confirm it is an in-sync replica on every port; every HAProxy answers",
  async run(ctx): Promise<PreflightResult> {
    const s = sides(ctx);
    const toSwitch: number[] = [];
    const alreadyPrimary: number[] = [];
    await onEveryHaproxy(ctx, "preflight", async (_h, admin) => {
      await ctx.providers.haproxy.serversState(admin);
    });
    const settled = await Promise.allSettled(
      s.ports.map(async (port) => {
        if (ctx.dryRun) {
          toSwitch.push(port);
          return;
        }
        const why = await whyNotSwitchable(ctx, s.from, s.to, port);
        if (why === "alreadyPrimary") {
          alreadyPrimary.push(port);
          return;
        }
        if (why) throw new FailoverdError(`cannot switch over: ${why}`);
        await ctx.waitFor(`${s.to}:${port} is in sync with ${s.from}:${port}`, () => inSync(ctx, ep(ctx, s.to, port), ep(ctx, s.from, port)), 20);
        toSwitch.push(port);
      }),
    );
    throwFirstRejection(settled);
    return { ...s, toSwitch: toSwitch.sort(), alreadyPrimary: alreadyPrimary.sort() };
  },
};

export interface FailoverResult extends Sides {
  readonly switched: readonly number[];
}

/**
 * Has `to` taken over from `from` on this port: `to` is primary and `from` replicates it? Also whether `to` answered
 * at all, and whether `from` still claims to be primary.
 */
async function hasTakenOver(ctx: StepContext, from: Endpoint, to: Endpoint): Promise<{ target: boolean; both: boolean; reached: boolean; fromPrimary: boolean }> {
  const [t, f] = await Promise.all([
    ctx.providers.redis.role(to).catch(() => undefined),
    ctx.providers.redis.role(from).catch(() => undefined),
  ]);
  const target = t?.role === "primary";
  const follows = f?.role === "replica" && f.primary.address === to.address && f.primary.port === to.port;
  return { target, both: target && follows, reached: t !== undefined, fromPrimary: f?.role === "primary" };
}

/** Polls until `check` is true or `ms` have passed (or the step is aborted). */
async function within(ctx: StepContext, ms: number, check: () => Promise<boolean>): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!ctx.signal.aborted && Date.now() < deadline) {
    if (await check()) return true;
    await sleep(20);
  }
  return check();
}

/** One port: FAILOVER TO, watch both, abort when it does not complete. Resolves true when switched. */
async function failoverPort(ctx: StepContext, s: Sides, port: number, timeoutMs: number): Promise<true | string> {
  const from = ep(ctx, s.from, port);
  const to = ep(ctx, s.to, port);
  const before = await hasTakenOver(ctx, from, to);
  if (before.both) return true;
  if (!ctx.dryRun) {
    // The target is primary already (an earlier attempt switched it, or it was so at preflight): a FAILOVER TO it
    // is never sent again. Switched, unless its old primary still claims the role too.
    if (before.target) return before.fromPrimary ? `${s.to}:${port} and ${s.from}:${port} both answer as primary` : true;
    // Never demote the primary towards a target that does not answer (it may have hung since the preflight).
    if (!before.reached) return `${s.to}:${port} does not answer; ${s.from}:${port} was left primary (no FAILOVER sent)`;
  }
  try {
    await ctx.providers.redis.failover(from, to, timeoutMs);
  } catch (e) {
    // Refused (a FAILOVER already in progress, from an attempt cut short) or its answer lost: whichever, it is
    // watched like one sent now, and aborted when it does not complete.
    if (ctx.dryRun) throw e;
    ctx.log.warn({ port, err: errorMessage(e) }, `FAILOVER on ${s.from}:${port} did not answer OK: watching it, and aborting it if it does not complete`);
  }
  if (ctx.dryRun) return true;
  if (await within(ctx, timeoutMs + TAKEOVER_MARGIN_MS, async () => (await hasTakenOver(ctx, from, to)).both)) return true;
  ctx.log.warn({ port }, `FAILOVER of ${s.from}:${port} did not complete within ${timeoutMs + TAKEOVER_MARGIN_MS} ms: aborting`);
  await ctx.providers.redis.abortFailover(from);
  const after = await hasTakenOver(ctx, from, to);
  if (after.target) {
    // It completed as the abort went out: the target is primary; its old primary follows it shortly.
    if (await within(ctx, TAKEOVER_MARGIN_MS, async () => (await hasTakenOver(ctx, from, to)).both)) return true;
    return `${s.to}:${port} is primary but ${s.from}:${port} does not follow it`;
  }
  const back = await ctx.providers.redis.role(from).catch(() => undefined);
  return back?.role === "primary"
    ? `did not complete within ${timeoutMs + TAKEOVER_MARGIN_MS} ms and was aborted; ${s.from}:${port} is still the primary`
    : `did not complete and the abort left ${s.from}:${port} as ${back?.role ?? "unreachable"}`;
}

export const failOver: Step = {
  name: "failover",
  title: "FAILOVER TO the target with a TIMEOUT on every port; watch ROLE of both; FAILOVER ABORT when it does not complete",
  pointOfNoReturn: true,
  timeoutMs: (t) => Math.max(t.config.recovery.stepTimeoutMs, 2 * (t.config.recovery.switchoverTimeoutMs + TAKEOVER_MARGIN_MS)),
  async run(ctx): Promise<FailoverResult> {
    const s = sides(ctx);
    const pre = ctx.result<PreflightResult>("preflight");
    const ports = pre ? [...pre.toSwitch, ...pre.alreadyPrimary] : s.ports;
    const timeoutMs = ctx.topology.config.recovery.switchoverTimeoutMs;
    const switched: number[] = [];
    const failed: string[] = [];
    const settled = await Promise.allSettled(
      ports.map(async (port) => {
        const r = await failoverPort(ctx, s, port, timeoutMs);
        if (r === true) switched.push(port);
        else failed.push(`${port}: ${r}`);
      }),
    );
    switched.sort();
    if (failed.length > 0 || settled.some((r) => r.status === "rejected")) {
      // The ports that did switch are real: the HAProxies follow them now rather than by their own checks later.
      if (switched.length > 0) await routeEveryHaproxy(ctx, s, switched).catch((e) => ctx.log.error({ err: errorMessage(e) }, "routing the switched ports failed"));
      throwFirstRejection(settled);
      throw new FailoverdError(`switchover to ${s.to}: ${failed.join("; ")}${switched.length > 0 ? `; port ${switched.join(", ")} switched and routed` : ""}`);
    }
    return { ...s, switched };
  },
};

/** On every HAProxy: the new primary ready and up, the old one down (a replica now) and its sessions shut. */
async function routeEveryHaproxy(ctx: StepContext, s: Sides, ports: readonly number[]) {
  return onEveryHaproxy(ctx, "route to the new primary", async (h, admin) => {
    await ctx.providers.haproxy.apply(
      admin,
      ports.flatMap((p) => {
        const be = redisBackendName(p);
        return [cmd.state(be, s.to, "ready"), cmd.health(be, s.to, "up"), cmd.health(be, s.from, "down"), cmd.shutdownSessions(be, s.from)];
      }),
    );
    await ctx.verify(`${h.name} routes port ${ports.join(", ")} to ${s.to}`, async () => {
      const rows = await ctx.providers.haproxy.serversState(admin);
      return ports.every((p) => rows.some((r) => r.backend === redisBackendName(p) && r.server === s.to && r.isUp && !r.inMaint));
    });
  });
}

export const moveHaproxies: Step = {
  name: "route",
  title: "Move every HAProxy in step: the new primary ready and up, the old one down and its sessions shut (not fenced)",
  async run(ctx) {
    const s = sides(ctx);
    const switched = ctx.result<FailoverResult>("failover")?.switched ?? s.ports;
    const r = await routeEveryHaproxy(ctx, s, switched);
    // The file too, so a later reload routes right at once (a reload forgets runtime changes).
    const primaryOf = await currentPrimaries(ctx);
    for (const h of ctx.topology.haproxyHosts) {
      if (!r.done.includes(h.name)) continue;
      const rows = await ctx.read(() => ctx.providers.haproxy.serversState({ address: ctx.inventory.addressOf(h.name), port: h.adminPort }));
      const outOfService = new Set((rows ?? []).filter((x) => x.inMaint).map((x) => x.server));
      const machine = await ctx.read(() => ctx.providers.compute.find(h.name, ctx.signal));
      if (machine) {
        const text = renderForHost(ctx.topology, ctx.inventory, h.name, { primaryOf, outOfService });
        await ctx.providers.proxies.applyConfig(machine, text, ctx.signal, { reload: false });
      }
    }
    return { primary: s.to, ports: switched, routedOn: r.done, skipped: r.skipped };
  },
};
