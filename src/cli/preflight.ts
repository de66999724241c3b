/**
 * `failoverd preflight`: checks, without changing anything, what a recovery will need (src/providers/preflight.ts).
 * One line per check; exit 1 when any fails.
 */
import type { Command } from "commander";
import { countSpares, SPARE_ROLES } from "../daemon/spares.ts";
import { errorMessage } from "../errors.ts";
import { createProviders, redisAuthOf } from "../providers/index.ts";
import type { ComputeProvider } from "../providers/types.ts";
import { NetHaproxyAdmin } from "../providers/net-admin.ts";
import type { CheckResult } from "../providers/preflight.ts";
import { Inventory } from "../topology/inventory.ts";
import type { Topology } from "../topology/topology.ts";
import { join } from "node:path";
import { type ConfigOpts, EXIT_FAILED, loadFrom, out, parseMs, setExitCode, withConfig } from "./common.ts";

export function registerPreflight(program: Command): void {
  withConfig(program.command("preflight").description("check, without changing anything, what a recovery will need (exit 1 when a check fails)"))
    .option("--timeout-ms <ms>", "deadline of each check", parseMs(1), 10_000)
    .option("--json", "print one JSON object")
    .action(async (opts: ConfigOpts & { timeoutMs: number; json?: boolean }) => {
      const t = loadFrom(opts);
      const results = await runPreflight(t, opts.timeoutMs);
      if (opts.json) out(JSON.stringify({ ok: results.every((r) => r.ok), checks: results }));
      else for (const r of results) out(formatCheck(r));
      if (!results.every((r) => r.ok)) setExitCode(EXIT_FAILED);
    });
}

export function formatCheck(r: CheckResult): string {
  return `${r.ok ? "ok  " : "FAIL"}  ${r.name}: ${r.detail}`;
}

async function runPreflight(t: Topology, timeoutMs: number): Promise<CheckResult[]> {
  const inventory = Inventory.load(t, join(t.config.stateDir, "inventory.json"));
  const haproxy = new NetHaproxyAdmin(Math.min(timeoutMs, Math.max(t.config.checks.timeoutMs, 1000)));
  // Loaded here, not at start-up: every command would otherwise carry the AWS SDK.
  const { preflight } = await import("../providers/preflight.ts");
  const aws = t.config.provider.kind === "aws" ? (await import("../providers/aws/index.ts")).createAwsProviders(t, redisAuthOf(t)) : undefined;
  try {
    const results = await preflight(t, { inventory, haproxy, timeoutMs, ...(aws ? { aws } : {}) });
    return [...results, ...(await checkSpares(t, timeoutMs, aws?.compute))];
  } finally {
    aws?.close();
  }
}

/** Each role's warm spares: as many as the config keeps, in the state it keeps them (none pending). */
async function checkSpares(t: Topology, timeoutMs: number, awsCompute?: ComputeProvider): Promise<CheckResult[]> {
  const roles = SPARE_ROLES.filter((r) => (t.config.provider.spares[r]?.count ?? 0) > 0);
  if (roles.length === 0) return [];
  const providers = awsCompute ? null : await createProviders(t);
  const compute = awsCompute ?? providers!.compute;
  try {
    return await Promise.all(
      roles.map(async (role): Promise<CheckResult> => {
        const name = `spares ${role}`;
        try {
          const c = countSpares(role, t, await compute.spares(role, AbortSignal.timeout(timeoutMs)));
          const ready = c.state === "stopped" ? c.stopped : c.running;
          const detail = `${ready} of ${c.wanted} ${c.state} (stopped ${c.stopped}, running ${c.running}, pending ${c.pending})`;
          return ready >= c.wanted
            ? { name, ok: true, detail }
            : { name, ok: false, detail: `${detail}: the pool is short; the daemon refills it after its start and after each recovery` };
        } catch (e) {
          return { name, ok: false, detail: `cannot list them: ${errorMessage(e)}` };
        }
      }),
    );
  } finally {
    await providers?.close();
  }
}
