/**
 * `failoverd history`: every recovery and operator control from the journal in the state directory, newest first.
 * It reads the file itself, so it answers when the daemon does not (GET /history is the same from a running daemon).
 */
import { join } from "node:path";
import type { Command } from "commander";
import { parseSince } from "../duration.ts";
import { UsageError } from "../errors.ts";
import { describeDataLoss, type ControlHistory, historyOf, type RecoveryHistory, triggeredBy } from "../recovery/history.ts";
import { FileJournal } from "../recovery/journal.ts";
import { type ConfigOpts, loadFrom, out, withConfig } from "./common.ts";

export function registerHistory(program: Command): void {
  withConfig(program.command("history").description("the recoveries (diagnosis, who triggered it, steps and durations, outcome, data loss) and operator controls, from the journal"))
    .option("--json", "print one JSON object: {recoveries, controls}")
    .option("--since <when>", "only since then: a duration back from now (2h, 7d) or a date (2026-12-01, 2026-12-01T03:00:00Z)")
    .action(async (opts: ConfigOpts & { json?: boolean; since?: string }) => {
      const t = loadFrom(opts);
      const since = opts.since === undefined ? undefined : parseSince(opts.since, Date.now());
      if (typeof since === "object") throw new UsageError(`--since: ${since.error}`);
      const h = historyOf(await new FileJournal(join(t.config.stateDir, "journal.jsonl")).read(), since);
      if (opts.json) {
        out(JSON.stringify(h));
        return;
      }
      const items = [...h.recoveries.map((r) => ({ at: r.startedAt, r })), ...h.controls.map((c) => ({ at: c.at, c }))].sort((a, b) => b.at - a.at);
      if (items.length === 0) out(`no recoveries${since !== undefined ? ` since ${stamp(since)}` : ""} (journal: ${join(t.config.stateDir, "journal.jsonl")})`);
      for (const i of items) {
        if ("r" in i) printRecovery(i.r);
        else printControl(i.c);
      }
    });
}

function stamp(t: number): string {
  return new Date(t).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function dur(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

function printRecovery(r: RecoveryHistory): void {
  const outcome = r.outcome ?? "unfinished";
  out(`${stamp(r.startedAt)}  ${r.playbook} for ${r.host}: ${outcome}${r.durationMs !== undefined ? ` in ${dur(r.durationMs)}` : ""}${r.dryRun ? " (dry run)" : ""}  [${r.id}]`);
  out(`  diagnosis: ${r.diagnosis}${r.failingSince !== undefined ? ` (failing since ${stamp(r.failingSince)})` : ""}`);
  out(`  triggered by: ${triggeredBy(r)}${r.reason ? ` (${r.reason})` : ""}`);
  for (const s of r.steps) {
    const state = s.ok === undefined ? "...." : s.ok ? "ok  " : "FAIL";
    out(`    ${state} ${s.step.padEnd(10)} ${s.durationMs !== undefined ? dur(s.durationMs).padStart(9) : "        -"}${s.attempts > 1 ? `  (${s.attempts} attempts)` : ""}${s.error ? `  ${s.error}` : ""}`);
  }
  if (r.dataLoss !== undefined) out(`  data loss (estimate): ${describeDataLoss(r.dataLoss)}`);
  if (r.error) out(`  error: ${r.error}`);
}

function printControl(c: ControlHistory): void {
  const what: Record<ControlHistory["action"], string> = {
    pause: "paused",
    resume: "resumed",
    "pause-expired": "pause expired",
    maintenance: `${c.host} in maintenance`,
    "maintenance-end": `${c.host}'s maintenance ended`,
    "maintenance-expired": `${c.host}'s maintenance expired`,
  };
  const until = c.until !== undefined ? ` until ${stamp(c.until)}` : c.action === "pause" ? " until resumed" : "";
  out(`${stamp(c.at)}  ${what[c.action]}${until} by ${c.by}${c.reason ? ` (${c.reason})` : ""}`);
}
