import type { Command } from "commander";
import { FailoverdError } from "../errors.ts";
import { type ConfigOpts, loadFrom, withConfig } from "./common.ts";

export function registerSimulate(program: Command): void {
  withConfig(program.command("simulate").description("start the sandbox, inject a fault, let the daemon recover, and report"))
    .requiredOption("-t, --target <host>", "the host to fail")
    .action((opts: ConfigOpts) => {
      loadFrom(opts);
      throw new FailoverdError("simulate: not yet implemented");
    });
}
