/**
 * Redundancy restored at the cloud's pace: the sandbox with `provider.latency: ec2` (README, "The time model"), the
 * primary host crashes, and the figure is the end of the `register` step after the crash (the replacement in sync
 * and registered on every HAProxy): with no spare (a launch from the image), with one stopped spare, with one
 * running spare. Medians over `--trials` runs each (127.155.x.y, in the range of the engineer who wrote it). `node dist/bench/redundancy-model.js [--trials N]`;
 * results in bench/results/redundancy-model.json.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { packagePath } from "../src/package-root.ts";
import { EC2_LATENCY } from "../src/topology/schema.ts";
import { declaredListeners } from "../src/providers/local/up.ts";
import { simulate } from "../src/simulate/scenario.ts";
import { loopbackTopology } from "../src/simulate/topologies.ts";
import { assertFree, say } from "./common.ts";
import { type Summary, summarize } from "./stats.ts";

export type SpareSetup = "none" | "stopped" | "running";

export interface ModelTrial {
  readonly setup: SpareSetup;
  readonly ok: boolean;
  readonly why?: string;
  readonly detectMs: number | null;
  readonly launchMs: number | null;
  readonly registeredMs: number | null;
}

export async function runRedundancyModel(trials: number): Promise<{ latency: typeof EC2_LATENCY; setups: Record<SpareSetup, { registeredMs: Summary; launchMs: Summary }>; trials: ModelTrial[] }> {
  const all: ModelTrial[] = [];
  for (const setup of ["none", "stopped", "running"] as const) {
    for (let i = 1; i <= trials; i++) {
      say(`redundancy (EC2 latency model): spare ${setup}, trial ${i}/${trials}`);
      const t = await trial(setup).catch((e: unknown): ModelTrial => ({ setup, ok: false, why: (e as Error).message, detectMs: null, launchMs: null, registeredMs: null }));
      say(`  launch step ${t.launchMs} ms, in sync and registered ${t.registeredMs} ms after the crash${t.ok ? "" : `; FAILED: ${t.why}`}`);
      all.push(t);
    }
  }
  const of = (s: SpareSetup) => all.filter((t) => t.setup === s && t.ok);
  const setups = Object.fromEntries(
    (["none", "stopped", "running"] as const).map((s) => [s, { registeredMs: summarize(of(s).map((t) => t.registeredMs)), launchMs: summarize(of(s).map((t) => t.launchMs)) }]),
  ) as Record<SpareSetup, { registeredMs: Summary; launchMs: Summary }>;
  return { latency: EC2_LATENCY, setups, trials: all };
}

async function trial(setup: SpareSetup): Promise<ModelTrial> {
  const spares = setup === "none" ? "" : `\n  spares: { redis: { count: 1, state: ${setup} } }`;
  const lt = loopbackTopology({ net: 155, name: "bench-model", launchTimeoutMs: 120_000, provider: `  latency: ec2${spares}` });
  try {
    const t = lt.topology;
    await assertFree(declaredListeners(t));
    const report = await simulate(t, { target: "redis1", fault: "crash", warmupMs: 1000, timeoutMs: 180_000 });
    const step = (name: string) => report.steps.find((s) => s.name === name);
    const launch = step("launch");
    const registered = step("register")?.endMs ?? null;
    const why = report.recovered ? (report.lostAckedWrites > 0 ? `${report.lostAckedWrites} acknowledged writes lost` : null) : (report.why ?? "not recovered");
    return {
      setup,
      ok: why === null && registered !== null,
      ...(why ? { why } : {}),
      detectMs: report.detectMs,
      launchMs: launch?.endMs != null ? launch.endMs - launch.startMs : null,
      registeredMs: registered,
    };
  } finally {
    lt.cleanup();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const i = process.argv.indexOf("--trials");
  const trials = i > 0 ? Number(process.argv[i + 1]) : 3;
  const r = await runRedundancyModel(trials);
  const dir = packagePath("bench", "results");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "redundancy-model.json"), `${JSON.stringify({ date: new Date().toISOString(), ...r }, null, 2)}\n`);
  for (const s of ["none", "stopped", "running"] as const) {
    const x = r.setups[s];
    say(`${s}: registered ${x.registeredMs.median} ms (${x.registeredMs.min}-${x.registeredMs.max}, n ${x.registeredMs.n}); launch step ${x.launchMs.median} ms`);
  }
}
