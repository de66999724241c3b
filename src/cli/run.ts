import type { Command } from "commander";
import { FailoverdError } from "../errors.ts";
import { type ConfigOpts, loadFrom, withConfig } from "./common.ts";

export function registerRun(program: Command): void {
  withConfig(program.command("run").description("run the daemon: check, diagnose, recover"))
    .option("--dry-run", "shadow mode: monitor for real, log the recovery it would run, change nothing")
    .action((opts: ConfigOpts) => {
      loadFrom(opts);
      throw new FailoverdError("run: not yet implemented");
    });
}
