/**
 * The failed machine (terminated, or kept for the post-mortem) and its replacement (a warm spare when the pool has
 * one, else launched from the AMI).
 */
import { errorMessage, ProviderError } from "../../errors.ts";
import type { Machine } from "../../providers/types.ts";
import { getHost, type Topology } from "../../topology/topology.ts";
import type { Step } from "../types.ts";

export interface TerminateResult {
  readonly machineId: string | null;
  readonly address: string;
  /** What became of it: terminated, or kept (stopped, quarantined) for the post-mortem. */
  readonly fate?: "terminated" | "stopped" | "quarantined";
}

export const terminateFailedMachine: Step = {
  name: "terminate",
  title: "Terminate the failed machine (or stop / quarantine it for the post-mortem: recovery.failedMachine)",
  async run(ctx): Promise<TerminateResult> {
    const address = ctx.inventory.addressOf(ctx.host);
    const mode = ctx.topology.config.recovery.failedMachine;
    const found = await ctx.read(() => ctx.providers.compute.find(ctx.host, ctx.signal));
    // Planning without credentials: the machine is looked up at run time.
    const machine = found === undefined && ctx.dryRun ? { id: `<machine of ${ctx.host}>`, host: ctx.host, role: getHost(ctx.topology, ctx.host).role, address } : found;
    if (!machine) {
      ctx.log.info(`no running machine for ${ctx.host}: already gone`);
      return { machineId: null, address };
    }
    // Guard: only the machine at the failed address. A replacement launched by an earlier, interrupted run of this
    // recovery has another address and must survive a resumed terminate.
    if (machine.address !== address) {
      ctx.log.info(`the machine for ${ctx.host} is ${machine.id} at ${machine.address}, not the failed one at ${address}: nothing to terminate`);
      return { machineId: null, address };
    }
    if (mode === "terminate") await ctx.providers.compute.terminate(machine, ctx.signal);
    else await ctx.providers.compute.keep(machine, { mode, recoveryId: ctx.recovery.id }, ctx.signal);
    // Kept or terminated, it no longer serves the host: find() returns only a running machine.
    await ctx.verify(`${machine.id} no longer runs`, async () => {
      const after = await ctx.providers.compute.find(ctx.host, ctx.signal);
      return after === null || after.id !== machine.id;
    });
    if (mode !== "terminate") {
      // In dry-run the provider only described the step: nothing was kept.
      const what = ctx.dryRun ? `would keep ${machine.id} (${ctx.host}) for the post-mortem (${mode}): dry-run, nothing done` : `kept ${machine.id} (${ctx.host}) for the post-mortem (${mode}); failoverd cleanup releases it`;
      ctx.log.info({ machineId: machine.id, mode, ...(ctx.dryRun ? { dryRun: true } : {}) }, what);
    }
    return { machineId: machine.id, address, fate: mode === "terminate" ? "terminated" : mode === "stop" ? "stopped" : "quarantined" };
  },
};

export interface LaunchResult {
  readonly machineId: string;
  readonly address: string;
  readonly reused: boolean;
  /** The replacement is a warm spare taken from the pool. */
  readonly spare?: boolean;
}

/** How many warm spares the config keeps for a role (0: none). */
export function sparesWanted(t: Topology, role: string): number {
  const spares = t.config.provider.spares;
  return role === "redis" || role === "haproxy" ? (spares[role]?.count ?? 0) : 0;
}

export const launchReplacement: Step = {
  name: "launch",
  title: "Launch a new machine from the AMI (or take a warm spare)",
  timeoutMs: (t) => t.config.recovery.launchTimeoutMs ?? t.config.recovery.stepTimeoutMs,
  async run(ctx): Promise<LaunchResult> {
    const host = getHost(ctx.topology, ctx.host);
    const failed = ctx.result<TerminateResult>("terminate")?.address ?? ctx.inventory.addressOf(ctx.host);
    const req = { host: ctx.host, role: host.role, ...(host.role === "redis" ? { ports: host.ports } : {}) };
    // Idempotence: a machine launched by an interrupted earlier attempt is reused, never doubled, and finished (its
    // attempt may have ended before its address was attached or its Redis servers prepared).
    const existing = await ctx.read(() => ctx.providers.compute.find(ctx.host, ctx.signal));
    if (existing && existing.address !== failed) {
      const m = await ctx.providers.compute.ready(existing, req, ctx.signal);
      ctx.place(ctx.host, m.address, m.id);
      return { machineId: m.id, address: m.address, reused: true };
    }
    if (existing && !ctx.dryRun) throw new ProviderError(`the failed machine ${existing.id} of ${ctx.host} is still running`, true);
    let spare: Machine | null = null;
    if (sparesWanted(ctx.topology, host.role) > 0) {
      try {
        spare = await ctx.providers.compute.claim(req, ctx.signal);
      } catch (e) {
        if (ctx.signal.aborted) throw e;
        // A spare that cannot start (no capacity for it now, ...) is left claimed and out of the pool: launch instead.
        ctx.log.warn({ err: errorMessage(e) }, `could not take a warm spare for ${ctx.host}; launching from the AMI`);
      }
      if (!spare) ctx.log.warn(`no warm ${host.role} spare left for ${ctx.host}: launching from the AMI`);
    }
    const m = spare ?? (await ctx.providers.compute.launch(req, ctx.signal));
    ctx.place(ctx.host, m.address, m.id);
    return { machineId: m.id, address: m.address, reused: false, ...(spare ? { spare: true } : {}) };
  },
  async restore(ctx, result) {
    const r = result as Partial<LaunchResult> | undefined;
    if (typeof r?.address === "string" && ctx.inventory.addressOf(ctx.host) !== r.address) ctx.place(ctx.host, r.address, r.machineId ?? undefined);
  },
};
