/**
 * `failoverd preflight`: checks, without changing anything, what a recovery will need (src/providers/preflight.ts).
 * One line per check; exit 1 when any fails.
 */
import type { Command } from "commander";
import { redisAuthOf } from "../providers/index.ts";
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
    return await preflight(t, { inventory, haproxy, timeoutMs, ...(aws ? { aws } : {}) });
  } finally {
    aws?.close();
  }
}
