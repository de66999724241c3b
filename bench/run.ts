/**
 * `npm run bench [-- --quick] [-- --only failover,host-size,scale,redundancy] [-- --trials N] [-- --readme]`
 *
 * Runs the benchmarks on real processes (redis-server, redis-sentinel, haproxy from Debian), writes
 * bench/results/latest.json and bench/results/latest.md, and with --readme replaces the figures table in README.md
 * (between the bench markers). Not part of the test suite: figures depend on the machine and its load.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, hostname, loadavg, release, totalmem } from "node:os";
import { runFailover } from "./failover.ts";
import { runHostSize } from "./host-size.ts";
import { runRedundancy } from "./redundancy.ts";
import { type BenchOutput, checkTargets, renderMarkdown } from "./report.ts";
import { runScale } from "./scale.ts";
import { execFileSync } from "node:child_process";
import { load1, requestStop, say, stopRequested } from "./common.ts";
import { packagePath } from "../src/package-root.ts";

const SECTIONS = ["failover", "host-size", "scale", "redundancy"] as const;
type Section = (typeof SECTIONS)[number];

interface Args {
  quick: boolean;
  only: Set<Section>;
  trials: number | null;
  readme: boolean;
}

function parseArgs(argv: readonly string[]): Args {
  const a: Args = { quick: false, only: new Set(SECTIONS), trials: null, readme: false };
  for (let i = 0; i < argv.length; i++) {
    const x = argv[i]!;
    if (x === "--quick") a.quick = true;
    else if (x === "--readme") a.readme = true;
    else if (x === "--only") {
      const names = (argv[++i] ?? "").split(",").filter(Boolean);
      const bad = names.filter((n) => !(SECTIONS as readonly string[]).includes(n));
      if (names.length === 0 || bad.length > 0) usage(`--only takes a comma-separated list of ${SECTIONS.join(", ")}`);
      a.only = new Set(names as Section[]);
    } else if (x === "--trials") {
      const n = Number(argv[++i]);
      if (!Number.isInteger(n) || n < 1 || n > 50) usage("--trials takes a whole number from 1 to 50");
      a.trials = n;
    } else if (x === "--help" || x === "-h") usage(null);
    else usage(`unknown argument ${x}`);
  }
  return a;
}

function usage(error: string | null): never {
  const text = "usage: npm run bench -- [--quick] [--only failover,host-size,scale,redundancy] [--trials N] [--readme]";
  if (error) {
    process.stderr.write(`${error}\n${text}\n`);
    process.exit(2);
  }
  process.stdout.write(`${text}\n`);
  process.exit(0);
}

// From the package root, not this file: the benchmarks run compiled, from dist/bench/.
const RESULTS = `${packagePath("bench", "results")}/`;
const README = packagePath("README.md");
export const README_START = "<!-- bench:figures:start -->";
export const README_END = "<!-- bench:figures:end -->";

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const mode = args.quick ? "quick" : "full";
  const started = Date.now();
  const loadBefore = loadavg().map((x) => Math.round(x * 100) / 100);
  say(`mode ${mode}; load average ${loadBefore.join(" ")} on ${cpus().length} cores`);
  const options = [
    ...(args.quick ? ["--quick"] : []),
    ...(args.only.size < SECTIONS.length ? [`--only ${[...args.only].join(",")}`] : []),
    ...(args.trials ? [`--trials ${args.trials}`] : []),
  ];
  const command = `npm run bench${options.length > 0 ? ` -- ${options.join(" ")}` : ""}`;
  const result: Record<string, unknown> = {};
  const loads: Record<string, number> = {};
  const errors: Record<string, string> = {};
  // Ctrl-C: the trial under way finishes and stops its processes (by PID), then the results so far are written.
  process.on("SIGINT", () => {
    if (stopRequested()) return;
    requestStop();
    say("interrupted: finishing the current trial, then writing what was measured");
  });
  const section = async (name: Section, fn: () => Promise<void>) => {
    if (!args.only.has(name) || stopRequested()) return;
    try {
      await fn();
    } catch (e) {
      errors[name] = (e as Error).message;
      say(`${name} failed: ${(e as Error).message}`);
    }
    loads[name] = load1();
  };

  await section("failover", async () => {
    const r = await runFailover({ trials: args.trials ?? (args.quick ? 3 : 7) });
    result["systems"] = r.systems;
    result["ratios"] = r.ratios;
    result["failover"] = { budgetMs: r.budgetMs, hangMs: r.hangMs, trials: r.trials };
  });
  await section("host-size", async () => {
    result["hostSize"] = await runHostSize({ trials: args.trials ?? (args.quick ? 2 : 5) });
  });
  await section("scale", async () => {
    result["scale"] = await runScale({ measureMs: args.quick ? 10_000 : 30_000, sizes: [100, 1000, 5000] });
  });
  await section("redundancy", async () => {
    result["redundancy"] = await runRedundancy({ trials: args.trials ?? (args.quick ? 2 : 5), keys: 100_000 });
  });

  const base = {
    ...result,
    mode,
    command,
    machine: `${hostname()}: ${cpus().length} x ${cpus()[0]?.model.trim() ?? "cpu"}, ${Math.round(totalmem() / 2 ** 30)} GiB, Linux ${release()}, Node ${process.version}, ${versions()}; load average at start ${loadBefore.join(" ")}, after each section ${JSON.stringify(loads)}`,
    ...(Object.keys(errors).length > 0 ? { errors } : {}),
    ...(stopRequested() ? { interrupted: true } : {}),
    date: new Date().toISOString(),
    durationS: Math.round((Date.now() - started) / 1000),
  };
  const out = { ...base, targets: checkTargets(base as BenchOutput) };
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(`${RESULTS}latest.json`, `${JSON.stringify(out, null, 2)}\n`);
  const md = renderMarkdown(out as BenchOutput);
  writeFileSync(`${RESULTS}latest.md`, md);
  process.stdout.write(md);
  if (args.readme) {
    const text = readFileSync(README, "utf8");
    const a = text.indexOf(README_START);
    const b = text.indexOf(README_END);
    if (a < 0 || b < a) throw new Error(`README.md has no ${README_START} ... ${README_END} block to replace`);
    writeFileSync(README, `${text.slice(0, a + README_START.length)}\n${md}${text.slice(b)}`);
    say("README.md figures updated");
  }
  say(`done in ${out.durationS} s; results in bench/results/latest.json`);
}

/** The versions of the binaries every system runs on. */
function versions(): string {
  const first = (cmd: string, args: string[]) => {
    try {
      return execFileSync(cmd, args, { encoding: "utf8" }).split("\n")[0]!.trim();
    } catch {
      return `${cmd}: not found`;
    }
  };
  const redis = /v=(\S+)/.exec(first("redis-server", ["--version"]))?.[1] ?? "?";
  const haproxy = /version (\S+)/.exec(first("haproxy", ["-v"]))?.[1] ?? "?";
  return `redis-server ${redis}, redis-sentinel ${redis}, haproxy ${haproxy}`;
}

main().catch((e: unknown) => {
  process.stderr.write(`bench failed: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
