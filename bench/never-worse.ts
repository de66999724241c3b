/**
 * Never make it worse, measured (issue 10). Not a test: figures, medians of several trials, on the sandbox.
 *
 * 1. Hang (SIGSTOP) and host-vanishes (every packet to and from the primary's address dropped: no reset, no refusal)
 *    at a 600 ms and a 1,500 ms detection budget (interval x fall): detection (the failure confirmed) and the
 *    client-visible write outage, against the targets detection <= budget + timeoutMs + 100 ms and outage <= budget +
 *    300 ms. A crash at each budget for comparison.
 * 2. A storm of stalls shorter than the budget (SIGSTOP for 0.6 x budget, then SIGCONT, 60 times): false failovers
 *    (recoveries that promoted) must be 0.
 *
 * usage: node dist/bench/never-worse.js [--trials N] [--storm N]; writes bench/results/never-worse.json.
 * Loopback 127.66.x.y (trials) and 127.67.x.y (storm).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { packagePath } from "../src/package-root.ts";
import { signal } from "../src/providers/local/processes.ts";
import { sandboxDown, sandboxUp } from "../src/providers/local/up.ts";
import { FileJournal, summarize as summarizeJournal } from "../src/recovery/journal.ts";
import type { PromoteResult } from "../src/recovery/steps/redis.ts";
import { startDaemon, stopDaemon, waitForDaemon } from "../src/simulate/daemon-process.ts";
import { type Fault, simulate } from "../src/simulate/scenario.ts";
import { loopbackTopology } from "../src/simulate/topologies.ts";
import { summarize, type Summary } from "./stats.ts";

const BUDGETS = [
  { budgetMs: 600, intervalMs: 200, timeoutMs: 150, fall: 3 },
  { budgetMs: 1500, intervalMs: 500, timeoutMs: 250, fall: 3 },
] as const;
const ALL_FAULTS: readonly Fault[] = ["hang", "vanish", "crash"];
/** `--faults hang,vanish` measures only those (a partial run prints its table and leaves the results file alone). */
const FAULTS: readonly Fault[] = (() => {
  const i = process.argv.indexOf("--faults");
  if (i < 0) return ALL_FAULTS;
  const asked = (process.argv[i + 1] ?? "").split(",").filter((f) => f !== "");
  const unknown = asked.filter((f) => !(ALL_FAULTS as readonly string[]).includes(f));
  if (asked.length === 0 || unknown.length > 0) {
    process.stderr.write(`never-worse: --faults takes a comma list of ${ALL_FAULTS.join(", ")} (not "${process.argv[i + 1] ?? ""}")\n`);
    process.exit(2);
  }
  return asked as Fault[];
})();
const PARTIAL = FAULTS.length < ALL_FAULTS.length;

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}

interface Row {
  readonly budgetMs: number;
  readonly timeoutMs: number;
  readonly fault: Fault;
  readonly detect: Summary;
  readonly outage: Summary;
  readonly lost: Summary;
  readonly failed: number;
  readonly detectTargetMs: number | null;
  readonly outageTargetMs: number | null;
}

async function trials(n: number): Promise<Row[]> {
  const rows: Row[] = [];
  for (const b of BUDGETS) {
    for (const fault of FAULTS) {
      const detect: number[] = [];
      const outage: number[] = [];
      const lost: number[] = [];
      let failed = 0;
      for (let i = 1; i <= n; i++) {
        const lt = loopbackTopology({ net: 66, name: "bench-never-worse", intervalMs: b.intervalMs, timeoutMs: b.timeoutMs, fall: b.fall });
        try {
          const r = await simulate(lt.topology, {
            target: "redis1",
            fault,
            hangMs: 8000,
            timeoutMs: 40_000,
            warmupMs: 1000 + Math.floor(Math.random() * b.intervalMs),
          });
          process.stderr.write(`${b.budgetMs} ms ${fault} ${i}/${n}: detect ${r.detectMs} ms, outage ${r.outageMs} ms, lost ${r.lostAckedWrites}${r.recovered ? "" : ` (${r.why})`}\n`);
          if (!r.recovered) failed++;
          if (r.detectMs !== null) detect.push(r.detectMs);
          outage.push(r.outageMs);
          lost.push(r.lostAckedWrites);
        } catch (e) {
          failed++;
          process.stderr.write(`${b.budgetMs} ms ${fault} ${i}/${n}: FAILED ${(e as Error).message}\n`);
        } finally {
          lt.cleanup();
        }
      }
      const timed = fault !== "crash";
      rows.push({
        budgetMs: b.budgetMs,
        timeoutMs: b.timeoutMs,
        fault,
        detect: summarize(detect),
        outage: summarize(outage),
        lost: summarize(lost),
        failed,
        detectTargetMs: timed ? b.budgetMs + b.timeoutMs + 100 : null,
        outageTargetMs: timed ? b.budgetMs + 300 : null,
      });
    }
  }
  return rows;
}

/** Stalls shorter than the budget, one after another: how many recoveries start, and how many promote. */
async function storm(stalls: number, b: (typeof BUDGETS)[number]): Promise<{ budgetMs: number; stalls: number; stallMs: number; recoveries: number; promotions: number }> {
  const lt = loopbackTopology({ net: 67, name: "bench-storm", intervalMs: b.intervalMs, timeoutMs: b.timeoutMs, fall: b.fall });
  const t = lt.topology;
  const sandbox = await sandboxUp(t);
  const log = join(lt.dir, "daemon.log");
  const daemon = startDaemon(t, log);
  const stallMs = Math.round(0.6 * b.budgetMs);
  try {
    await waitForDaemon(log, daemon);
    for (let i = 0; i < stalls; i++) {
      const procs = sandbox.machineOf("redis1")?.processes ?? [];
      for (const p of procs) signal(p, "SIGSTOP");
      await sleep(stallMs);
      for (const p of procs) signal(p, "SIGCONT");
      await sleep(b.budgetMs + Math.floor(Math.random() * b.intervalMs));
    }
    await sleep(2000);
    const rs = summarizeJournal(await new FileJournal(join(t.config.stateDir, "journal.jsonl")).read());
    const promotions = rs.filter((r) => ((r.completed.get("promote") as PromoteResult | undefined)?.promoted.length ?? 0) > 0).length;
    return { budgetMs: b.budgetMs, stalls, stallMs, recoveries: rs.length, promotions };
  } finally {
    for (const p of sandbox.read().machines.flatMap((m) => m.processes)) signal(p, "SIGCONT");
    await stopDaemon(daemon);
    await sandboxDown(t);
    lt.cleanup();
  }
}

const n = arg("--trials", 5);
const stalls = arg("--storm", 60);
const rows = await trials(n);
const storms = [];
if (stalls > 0) for (const b of BUDGETS) storms.push(await storm(stalls, b));
if (!PARTIAL && stalls > 0) {
  const result = { at: new Date().toISOString(), trials: n, rows, storms };
  mkdirSync(packagePath("bench", "results"), { recursive: true });
  writeFileSync(packagePath("bench", "results", "never-worse.json"), `${JSON.stringify(result, null, 2)}\n`);
}
const ms = (s: Summary) => (s.median === null ? "-" : `${s.median}`);
process.stdout.write("| budget | fault | detect median (target) | write outage median (target) | lost acked | failed trials |\n|---|---|---|---|---|---|\n");
for (const r of rows) {
  const target = (v: number | null) => (v === null ? "" : ` (<= ${v})`);
  process.stdout.write(`| ${r.budgetMs} ms (timeout ${r.timeoutMs}) | ${r.fault} | ${ms(r.detect)} ms${target(r.detectTargetMs)} | ${ms(r.outage)} ms${target(r.outageTargetMs)} | ${ms(r.lost)} | ${r.failed}/${n} |\n`);
}
for (const s of storms) {
  process.stdout.write(`storm at ${s.budgetMs} ms: ${s.stalls} stalls of ${s.stallMs} ms -> ${s.recoveries} recoveries started, ${s.promotions} promotions (false failovers)\n`);
}
