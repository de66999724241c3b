import type { Command } from "commander";
import { UsageError } from "../errors.ts";
import { createProviders } from "../providers/index.ts";
import { planRecovery } from "../recovery/plan.ts";
import { type ConfigOpts, EXIT_FAILED, loadFrom, out, setExitCode, withConfig } from "./common.ts";

export function registerPlan(program: Command): void {
  withConfig(program.command("plan").description("print the recovery playbook for a host, resolved against the topology, changing nothing"))
    .requiredOption("-t, --target <host>", "the host whose failure to plan for")
    .option("--json", "print one JSON object")
    .option("--offline", "contact nothing (no server, no cloud API): live state is looked up at run time")
    .action(async (opts: ConfigOpts & { target: string; json?: boolean; offline?: boolean }) => {
      const t = loadFrom(opts);
      const h = t.hosts.get(opts.target);
      if (!h) throw new UsageError(`--target: unknown host '${opts.target}' (hosts: ${[...t.hosts.keys()].join(", ")})`);
      if (h.role === "app") throw new UsageError(`--target: ${opts.target} is an app host; failoverd recovers redis and haproxy hosts`);
      // Without AWS credentials this is not the monitoring host: plan offline rather than reach for the fleet.
      const noCredentials =
        !opts.offline && t.config.provider.kind === "aws" ? await (await import("../providers/aws/index.ts")).awsCredentialsProblem(t) : null;
      const offline = opts.offline === true || noCredentials !== null;
      const providers = await createProviders(t);
      try {
        const plan = await planRecovery(t, opts.target, providers, { offline });
        if (opts.json) out(JSON.stringify({ ...plan, offline }));
        else {
          out(`${plan.playbook} for ${plan.host} (${t.source}, provider ${t.config.provider.kind}); nothing is changed:`);
          if (noCredentials) out(`(offline: ${noCredentials}; nothing was contacted, live state is looked up at run time)`);
          else if (offline) out("(offline: nothing was contacted, live state is looked up at run time)");
          plan.steps.forEach((s, i) => {
            out(`${String(i + 1).padStart(2)}. ${s.title}${s.pointOfNoReturn ? "   [point of no return]" : ""}`);
            for (const a of s.actions) out(`      ${a}`);
            if (s.actions.length === 0 && !s.error) out("      (nothing to change as things are now)");
            if (s.error) out(`      ! ${s.error}`);
          });
        }
        if (plan.outcome !== "succeeded") setExitCode(EXIT_FAILED);
      } finally {
        await providers.close();
      }
    });
}
