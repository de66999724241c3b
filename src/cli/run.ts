import type { Command } from "commander";
import { Daemon } from "../daemon/daemon.ts";
import { createLogger } from "../log.ts";
import { createProviders } from "../providers/index.ts";
import { loadTopology } from "../topology/load.ts";
import { type ConfigOpts, loadFrom, withConfig } from "./common.ts";

export function registerRun(program: Command): void {
  withConfig(program.command("run").description("run the daemon: check, diagnose, recover (SIGTERM stops, SIGHUP reloads the config)"))
    .option("--dry-run", "shadow mode: monitor for real, log the recovery it would run, change nothing")
    .action(async (opts: ConfigOpts & { dryRun?: boolean }) => {
      const topology = loadFrom(opts);
      const log = createLogger();
      const daemon = new Daemon({ topology, providers: createProviders(topology), log, dryRun: opts.dryRun === true });
      await daemon.start();
      await new Promise<void>((resolve) => {
        const stop = (sig: string) => {
          log.info(`${sig} received: finishing the current step, then stopping`);
          daemon.stop().then(resolve, resolve);
        };
        process.once("SIGTERM", () => stop("SIGTERM"));
        process.once("SIGINT", () => stop("SIGINT"));
        process.on("SIGHUP", () => {
          try {
            daemon.reload(loadTopology(topology.source));
          } catch (e) {
            log.error(`config reload refused, keeping the running config: ${(e as Error).message}`);
          }
        });
      });
    });
}
