import type { Command } from "commander";
import { assertRunnable, type ConfigOpts, loadFrom, out, withConfig } from "./common.ts";

export function registerValidate(program: Command): void {
  withConfig(program.command("validate").description("check a config and print a summary of the topology (exit 2 when it is invalid)"))
    .action((opts: ConfigOpts) => {
      const t = loadFrom(opts);
      assertRunnable(t, "validate");
      const count = (role: string) => [...t.hosts.values()].filter((h) => h.role === role).length;
      const servers = t.redisHosts.reduce((n, h) => n + h.ports.length, 0);
      out(
        `${t.source}: valid. topology ${t.name}: ${count("redis")} Redis hosts (${servers} servers) in ${t.pairs.length} pair(s), ` +
          `${count("haproxy")} HAProxy, ${count("app")} app; checks every ${t.config.checks.intervalMs} ms, ` +
          `down after ${t.config.checks.fall}; provider ${t.config.provider.kind}`,
      );
    });
}
