/** The runbook's first and last lines: stop and start monitoring a host. */
import type { Step } from "../types.ts";

export const unmonitorHost: Step = {
  name: "unmonitor",
  title: "Unmonitor the failed machine",
  async run(ctx) {
    await ctx.monitor.unmonitor(ctx.host);
    return { host: ctx.host };
  },
  async restore(ctx) {
    await ctx.monitor.unmonitor(ctx.host);
  },
  async rollback(ctx) {
    await ctx.monitor.monitor(ctx.host);
  },
};

export const monitorHost: Step = {
  name: "monitor",
  title: "Start monitoring the new machine",
  async run(ctx) {
    await ctx.monitor.monitor(ctx.host);
    return { host: ctx.host, address: ctx.inventory.addressOf(ctx.host) };
  },
  async restore(ctx) {
    await ctx.monitor.monitor(ctx.host);
  },
};
