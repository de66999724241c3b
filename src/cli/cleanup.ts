/**
 * `failoverd cleanup --older-than 7d`: releases (terminates) the failed machines that recoveries kept for the
 * post-mortem (recovery.failedMachine stop / quarantine) once they are older than that. `--dry-run` lists what it
 * would release. Termination goes through the provider's guarded terminate: only this topology's machines.
 */
import type { Command } from "commander";
import { InvalidArgumentError } from "commander";
import { errorMessage } from "../errors.ts";
import { createProviders } from "../providers/index.ts";
import type { KeptMachine } from "../providers/types.ts";
import { type ConfigOpts, EXIT_FAILED, loadFrom, out, parseMs, setExitCode, withConfig } from "./common.ts";

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `7d`, `12h`, `30m`, `45s` (or 0) as milliseconds. */
export function parseAge(v: string): number {
  const m = /^(\d{1,6})([smhd])$/.exec(v.trim());
  if (v.trim() === "0") return 0;
  if (!m) throw new InvalidArgumentError("must be a whole number with a unit: s, m, h or d (e.g. 7d, 12h)");
  return Number(m[1]) * UNITS[m[2]!]!;
}

export interface CleanupLine {
  readonly id: string;
  readonly host: string;
  readonly mode: string;
  readonly recoveryId: string;
  readonly keptAt: string;
  readonly action: "released" | "would release" | "kept" | "failed";
  readonly error?: string;
}

export function registerCleanup(program: Command): void {
  withConfig(program.command("cleanup").description("terminate the failed machines kept for the post-mortem once they are older than --older-than"))
    .requiredOption("--older-than <age>", "release machines kept longer than this (7d, 12h, 30m)", parseAge)
    .option("--dry-run", "list what would be released, change nothing")
    .option("--timeout-ms <ms>", "deadline of the whole cleanup", parseMs(1), 300_000)
    .option("--json", "print one JSON object")
    .action(async (opts: ConfigOpts & { olderThan: number; dryRun?: boolean; timeoutMs: number; json?: boolean }) => {
      const t = loadFrom(opts);
      const providers = await createProviders(t);
      const signal = AbortSignal.timeout(opts.timeoutMs);
      const lines: CleanupLine[] = [];
      try {
        const cutoff = Date.now() - opts.olderThan;
        for (const k of await providers.compute.kept(signal)) lines.push(await release(k, k.keptAt <= cutoff, opts.dryRun === true, (m) => providers.compute.terminate(m, signal)));
      } finally {
        await providers.close();
      }
      if (opts.json) out(JSON.stringify({ olderThanMs: opts.olderThan, dryRun: opts.dryRun === true, machines: lines }));
      else {
        if (lines.length === 0) out("no kept machine");
        for (const l of lines) {
          out(`${l.action.padEnd(13)} ${l.id} (${l.host}, ${l.mode}, recovery ${l.recoveryId || "?"}, kept ${l.keptAt})${l.error ? `: ${l.error}` : ""}`);
        }
      }
      if (lines.some((l) => l.action === "failed")) setExitCode(EXIT_FAILED);
    });
}

async function release(k: KeptMachine, old: boolean, dryRun: boolean, terminate: (m: KeptMachine) => Promise<void>): Promise<CleanupLine> {
  const base = { id: k.id, host: k.host, mode: k.mode, recoveryId: k.recoveryId, keptAt: new Date(k.keptAt).toISOString() };
  if (!old) return { ...base, action: "kept" };
  if (dryRun) return { ...base, action: "would release" };
  try {
    await terminate(k);
    return { ...base, action: "released" };
  } catch (e) {
    return { ...base, action: "failed", error: errorMessage(e) };
  }
}
