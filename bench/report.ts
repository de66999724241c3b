/** The benchmark results as Markdown tables (bench/results/latest.md, and the README's figures block), and the targets. */
import type { FailoverResults, FaultSummary } from "./failover.ts";
import type { HostSizeResults } from "./host-size.ts";
import type { RedundancyResults } from "./redundancy.ts";
import type { ScaleResults } from "./scale.ts";
import { cell, type Summary } from "./stats.ts";

export interface BenchOutput {
  readonly systems?: FailoverResults["systems"];
  readonly ratios?: FailoverResults["ratios"];
  readonly failover?: { readonly budgetMs: number; readonly hangMs: number; readonly trials: readonly unknown[] };
  readonly hostSize?: HostSizeResults;
  readonly scale?: ScaleResults;
  readonly redundancy?: RedundancyResults;
  readonly machine: string;
  readonly date: string;
  readonly command: string;
  readonly mode: string;
  readonly durationS: number;
}

export interface TargetCheck {
  readonly target: string;
  readonly figure: string;
  readonly met: boolean | null;
}

const BASES = ["sentinel-haproxy", "sentinel-client"] as const;

/** Every target of issue 5 that this run measured, with the figure that decides it. */
export function checkTargets(o: BenchOutput): TargetCheck[] {
  const out: TargetCheck[] = [];
  const f = o.systems?.["failoverd"];
  const sh = o.systems?.["sentinel-haproxy"];
  const budget = o.failover?.budgetMs;
  if (f?.["crash"] && sh?.["crash"]) {
    const a = f["crash"].outageMs.median;
    const b = sh["crash"].outageMs.median;
    out.push({
      target: "crash outage at most half of sentinel-haproxy's median",
      figure: `${a} ms vs ${b} ms (ratio ${o.ratios?.["failoverd/sentinel-haproxy"]?.["crash"]?.["outageMs"] ?? "n/a"})`,
      met: a !== null && b !== null ? a <= b / 2 : null,
    });
  }
  if (f?.["crash"] && budget !== undefined) {
    const s = f["crash"].outageMs;
    out.push({
      target: `crash outage within the detection budget + 200 ms (${budget + 200} ms)`,
      figure: `median ${s.median} ms, max ${s.max} ms`,
      met: s.median !== null ? s.median <= budget + 200 : null,
    });
  }
  if (f) {
    for (const fault of ["crash", "hang"] as const) {
      const s = f[fault];
      if (!s) continue;
      out.push({
        target: `0 acknowledged writes lost on ${fault}`,
        figure: `max ${s.lostAckedWrites.max} over ${s.lostAckedWrites.n} trials${s.failedTrials ? ` (${s.failedTrials} trials failed)` : ""}`,
        met: s.lostAckedWrites.max !== null ? s.lostAckedWrites.max === 0 && s.failedTrials === 0 : null,
      });
    }
  }
  if (o.hostSize) {
    out.push({
      target: "host size: 16 servers within 1.5x of 1 server",
      figure: `${o.hostSize.ratio16to1 ?? "n/a"}x (${o.hostSize.sizes["16"]?.allRoutedMs.median} ms vs ${o.hostSize.sizes["1"]?.allRoutedMs.median} ms)`,
      met: o.hostSize.ratio16to1 !== null ? o.hostSize.ratio16to1 <= 1.5 : null,
    });
  }
  const big = o.scale?.runs["5000"];
  if (big) {
    out.push({
      target: "scale: 5,000 endpoints at 1 s under 30% of one core",
      figure: `${big.cpuPercentOfCore}%`,
      met: big.cpuPercentOfCore !== null ? big.cpuPercentOfCore < 30 : null,
    });
    out.push({
      target: "scale: p99 check lateness under 50 ms",
      figure: `${big.latenessMs.p99} ms`,
      met: big.latenessMs.p99 !== null ? big.latenessMs.p99 < 50 : null,
    });
  }
  if (o.scale && o.scale.costGrowth !== null) {
    out.push({
      target: "scale: cost per check flat as N grows (5,000 / 100 at most 1.25)",
      figure: `${o.scale.costGrowth}x`,
      met: o.scale.costGrowth <= 1.25,
    });
  }
  if (o.redundancy) {
    const s = o.redundancy.afterConfirmedMs;
    out.push({
      target: "restored redundancy (100k keys) under 3 s after the failure is confirmed",
      figure: `median ${s.median} ms, max ${s.max} ms`,
      met: s.median !== null ? s.median < 3000 : null,
    });
  }
  return out;
}

export function renderMarkdown(o: BenchOutput): string {
  const lines: string[] = [];
  lines.push(`Produced by \`${o.command}\` (${o.mode} mode, ${o.durationS} s) on ${o.date.slice(0, 10)}.`, "", `Machine: ${o.machine}.`, "");
  if (o.systems) lines.push(...failoverTables(o));
  if (o.hostSize) lines.push(...hostSizeTable(o.hostSize));
  if (o.scale) lines.push(...scaleTable(o.scale));
  if (o.redundancy) lines.push(...redundancyTable(o.redundancy));
  const targets = checkTargets(o);
  if (targets.length > 0) {
    lines.push("**Targets**", "", "| target | figure | met |", "|---|---|---|");
    for (const t of targets) lines.push(`| ${t.target} | ${t.figure} | ${t.met === null ? "not measured" : t.met ? "yes" : "**no**"} |`);
    lines.push("");
  }
  return `${lines.join("\n")}\n`;
}

const FIGURE_ROWS: readonly [keyof FaultSummary & string, string][] = [
  ["detectMs", "detection, ms"],
  ["outageMs", "write outage (longest gap between acknowledged writes), ms"],
  ["promotedMs", "promoted (failoverd: `promote` step ended, routed; Sentinel: `+switch-master`), ms"],
  ["confirmedToWritesMs", "from confirmed failure to writes flowing, ms"],
  ["failedOps", "failed operations"],
  ["lostAckedWrites", "acknowledged writes lost (writer + prober)"],
  ["staleAcks", "writes acknowledged by a server no longer primary"],
];

function failoverTables(o: BenchOutput): string[] {
  const systems = Object.keys(o.systems ?? {});
  const bases = BASES.filter((b) => systems.includes(b) && systems.includes("failoverd"));
  const out: string[] = [];
  const budget = o.failover?.budgetMs;
  for (const fault of ["crash", "hang"] as const) {
    const any = systems.find((s) => o.systems?.[s]?.[fault]);
    if (!any) continue;
    const n = o.systems?.[any]?.[fault]?.trials ?? 0;
    out.push(
      `**Failover, ${fault === "crash" ? "crash (SIGKILL of the primary host)" : `hang (SIGSTOP of the primary host for ${(o.failover?.hangMs ?? 0) / 1000} s)`}**: median (min-max) over ${n} trials; detection budget ${budget} ms`,
      "",
      `| figure | ${systems.join(" | ")} | ${bases.map((b) => `failoverd / ${b}`).join(" | ")} |`,
      `|---|${systems.map(() => "---|").join("")}${bases.map(() => "---|").join("")}`,
    );
    for (const [key, label] of FIGURE_ROWS) {
      const cells = systems.map((s) => cell(o.systems?.[s]?.[fault]?.[key] as Summary | undefined));
      const ratios = bases.map((b) => {
        const r = o.ratios?.[`failoverd/${b}`]?.[fault]?.[key];
        return r === null || r === undefined ? "n/a" : String(r);
      });
      out.push(`| ${label} | ${cells.join(" | ")} | ${ratios.join(" | ")} |`);
    }
    const failedTrials = systems.map((s) => `${s} ${o.systems?.[s]?.[fault]?.failedTrials ?? 0}`).join(", ");
    out.push("", `Trials that did not recover in time (counted with what they measured): ${failedTrials}.`, "");
  }
  return out;
}

function hostSizeTable(h: HostSizeResults): string[] {
  const out = [
    "**Host size**: the primary host of 1, 4 or 16 Redis servers crashes (median, min-max)",
    "",
    "| servers | detection, ms | promote step ended, ms | every app frontend takes writes again, ms | the same after detection, ms |",
    "|---|---|---|---|---|",
  ];
  for (const [n, s] of Object.entries(h.sizes)) {
    out.push(`| ${n} | ${cell(s.detectMs)} | ${cell(s.promotedMs)} | ${cell(s.allRoutedMs)} | ${cell(s.confirmedToAllRoutedMs)} |`);
  }
  out.push("", `16 servers / 1 server: ${h.ratio16to1 ?? "n/a"}x (after detection: ${h.ratio16to1AfterDetection ?? "n/a"}x).`, "");
  return out;
}

function scaleTable(s: ScaleResults): string[] {
  const out = [
    "**Scale**: the daemon as `failoverd run` builds it (its own process, metrics attached), every endpoint checked every second",
    "",
    "| endpoints | CPU, % of one core | check lateness p50 / p99 / max, ms | resident memory, MiB | CPU per check, us | checks/s (failed) |",
    "|---|---|---|---|---|---|",
  ];
  for (const [n, r] of Object.entries(s.runs)) {
    out.push(
      `| ${n} | ${r.ok ? r.cpuPercentOfCore : `failed: ${r.why}`} | ${r.latenessMs.p50} / ${r.latenessMs.p99} / ${r.latenessMs.max} | ${r.rssMiB} | ${r.cpuPerCheckUs} | ${r.checksPerSecond} (${r.failedChecks}) |`,
    );
  }
  out.push("", `CPU per check, largest / smallest: ${s.costGrowth ?? "n/a"}x.`, "");
  const down = Object.entries(s.runs).filter(([, r]) => r.allDown);
  if (down.length > 0) {
    out.push(
      "**Every endpoint down at once** (both relays stopped, as when the monitor's own network is cut; same window)",
      "",
      "| endpoints | all counted down after, ms | CPU, % of one core | check lateness p50 / p99 / max, ms | checks/s | recoveries started |",
      "|---|---|---|---|---|---|",
    );
    for (const [n, r] of down) {
      const d = r.allDown!;
      out.push(
        `| ${n} | ${d.allDownAfterMs ?? "not all"} | ${d.cpuPercentOfCore} | ${d.latenessMs.p50} / ${d.latenessMs.p99} / ${d.latenessMs.max} | ${d.checksPerSecond} | ${d.recoveriesStarted} |`,
      );
    }
    out.push("");
  }
  return out;
}

function redundancyTable(r: RedundancyResults): string[] {
  return [
    `**Restored redundancy**: ${r.keysPerServer.toLocaleString("en")} keys in each primary server, crash (median, min-max over ${r.trials.length} trials)`,
    "",
    "| detection, ms | replacement in sync and registered, ms after the crash | the same after detection, ms | replicate step, ms |",
    "|---|---|---|---|",
    `| ${cell(r.detectMs)} | ${cell(r.registeredMs)} | ${cell(r.afterConfirmedMs)} | ${cell(r.replicateMs)} |`,
    "",
  ];
}
