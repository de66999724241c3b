import type { Command } from "commander";
import { FailoverdError } from "../errors.ts";
import { type ConfigOpts, loadFrom, withConfig } from "./common.ts";

export function registerPlan(program: Command): void {
  withConfig(program.command("plan").description("print the recovery playbook for a host, resolved against the topology, changing nothing"))
    .requiredOption("-t, --target <host>", "the host whose failure to plan for")
    .action((opts: ConfigOpts) => {
      loadFrom(opts);
      throw new FailoverdError("plan: not yet implemented");
    });
}
