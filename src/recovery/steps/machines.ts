/** Terminating the failed machine and launching its replacement from the image. */
import { ProviderError } from "../../errors.ts";
import { getHost } from "../../topology/topology.ts";
import type { Step } from "../types.ts";

export interface TerminateResult {
  readonly machineId: string | null;
  readonly address: string;
}

export const terminateFailedMachine: Step = {
  name: "terminate",
  title: "Terminate the failed machine",
  async run(ctx): Promise<TerminateResult> {
    const address = ctx.inventory.addressOf(ctx.host);
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
    await ctx.providers.compute.terminate(machine, ctx.signal);
    await ctx.verify(`${machine.id} is gone`, async () => {
      const after = await ctx.providers.compute.find(ctx.host, ctx.signal);
      return after === null || after.id !== machine.id;
    });
    return { machineId: machine.id, address };
  },
};

export interface LaunchResult {
  readonly machineId: string;
  readonly address: string;
  readonly reused: boolean;
}

export const launchReplacement: Step = {
  name: "launch",
  title: "Launch a new machine from the AMI",
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
    const m = await ctx.providers.compute.launch(req, ctx.signal);
    ctx.place(ctx.host, m.address, m.id);
    return { machineId: m.id, address: m.address, reused: false };
  },
  async restore(ctx, result) {
    const r = result as Partial<LaunchResult> | undefined;
    if (typeof r?.address === "string" && ctx.inventory.addressOf(ctx.host) !== r.address) ctx.place(ctx.host, r.address, r.machineId ?? undefined);
  },
};
