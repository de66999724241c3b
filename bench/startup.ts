/**
 * Start-up cost and resident memory of the command line as shipped: `failoverd --help` (wall time and CPU time, user
 * + system, of the whole process) and the daemon's resident memory once it runs on the sandbox topology (real
 * redis-server and haproxy on 127.165.x.y). Each figure is the median of several runs, the variants alternating run by
 * run so that the machine's load falls on both alike.
 *
 *   npm run bench:startup                                   # this checkout: compiled, on the Node running the script
 *   npm run bench:startup -- --before /tmp/failoverd-before --before-node /usr/bin/node
 *
 * `--before DIR` is another checkout (with its node_modules), e.g. `git worktree add --detach DIR <commit>` and
 * `npm ci` there: its bin/failoverd.js is run with `--before-node` (default: `node` on PATH) exactly as `npx
 * failoverd` ran it then (for the commits before dist/, through tsx). `--runs N` (default 10 for --help, half as many
 * daemon starts). Results: bench/results/startup.json and a Markdown table on stdout.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { PACKAGE_ROOT, packagePath } from "../src/package-root.ts";
import { declaredListeners, sandboxDown, sandboxUp } from "../src/providers/local/up.ts";
import { loopbackTopology } from "../src/simulate/topologies.ts";
import { assertFree, say } from "./common.ts";
import { ratio, type Summary, summarize } from "./stats.ts";

interface Variant {
  readonly label: string;
  readonly node: string;
  readonly root: string;
}

interface Figures {
  readonly label: string;
  readonly node: string;
  readonly nodeVersion: string;
  readonly helpWallMs: Summary;
  readonly helpCpuMs: Summary;
  readonly daemonRssMiB: Summary;
}

function option(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

/** One `--help`: wall time around the process, CPU time (user + system) of it and its children from bash's `times`. */
function helpOnce(v: Variant): { wallMs: number; cpuMs: number } {
  const script = `"$0" "$1" --help >/dev/null || exit 1; times`;
  const t0 = process.hrtime.bigint();
  const r = spawnSync("bash", ["-c", script, v.node, join(v.root, "bin", "failoverd.js")], { encoding: "utf8", timeout: 60_000 });
  const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${v.label}: failoverd --help failed: ${r.stderr}`);
  // `times` prints the shell's user and system time, then its children's: "0m0.153s 0m0.041s".
  const children = r.stdout.trim().split("\n").at(-1) ?? "";
  const secs = [...children.matchAll(/(\d+)m([\d.]+)s/g)].map((m) => Number(m[1]) * 60 + Number(m[2]));
  if (secs.length !== 2) throw new Error(`unexpected output of times: ${children}`);
  return { wallMs, cpuMs: (secs[0]! + secs[1]!) * 1000 };
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]);
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

/** One daemon start: `failoverd run` until it has discovered the roles, then `settleMs` of checks; its RSS then. */
async function daemonOnce(v: Variant, config: string, log: string, settleMs: number): Promise<number> {
  const fd = openSync(log, "w");
  const child = spawn(v.node, [join(v.root, "bin", "failoverd.js"), "run", "--config", config], {
    stdio: ["ignore", fd, fd],
    env: { ...process.env, FAILOVERD_LOG_LEVEL: "info" },
  });
  child.on("error", () => {});
  try {
    const start = Date.now();
    while (!readFileSync(log, "utf8").includes("roles discovered")) {
      if (child.exitCode !== null) throw new Error(`${v.label}: the daemon exited at start; see ${log}`);
      if (Date.now() - start > 60_000) throw new Error(`${v.label}: the daemon did not start within 60 s; see ${log}`);
      await sleep(50);
    }
    await sleep(settleMs);
    if (child.exitCode !== null) throw new Error(`${v.label}: the daemon exited; see ${log}`);
    return rssKiB(child.pid!);
  } finally {
    await stop(child);
  }
}

function nodeVersion(node: string): string {
  return spawnSync(node, ["--version"], { encoding: "utf8" }).stdout.trim();
}

async function main(): Promise<void> {
  const runs = Number(option("runs") ?? 10);
  if (!Number.isInteger(runs) || runs < 1) throw new Error("--runs takes a whole number, at least 1");
  const daemonRuns = Math.max(1, Math.ceil(runs / 2));
  const settleMs = 5_000;
  const variants: Variant[] = [{ label: "after", node: process.execPath, root: PACKAGE_ROOT }];
  const before = option("before");
  if (before) variants.unshift({ label: "before", node: option("before-node") ?? "node", root: before });

  const help = new Map(variants.map((v) => [v.label, { wall: [] as number[], cpu: [] as number[] }]));
  for (const v of variants) helpOnce(v); // warm the page cache
  for (let i = 0; i < runs; i++) {
    for (const v of variants) {
      const r = helpOnce(v);
      help.get(v.label)!.wall.push(r.wallMs);
      help.get(v.label)!.cpu.push(r.cpuMs);
    }
  }
  say(`--help: ${runs} runs per variant done`);

  const lt = loopbackTopology({ net: 165, name: "startup" });
  const rss = new Map(variants.map((v) => [v.label, [] as number[]]));
  await assertFree(declaredListeners(lt.topology));
  try {
    await sandboxUp(lt.topology);
    for (let i = 0; i < daemonRuns; i++) {
      for (const v of variants) {
        const kib = await daemonOnce(v, lt.path, join(lt.dir, `daemon-${v.label}-${i}.log`), settleMs);
        rss.get(v.label)!.push(kib / 1024);
        say(`daemon ${v.label} run ${i + 1}/${daemonRuns}: ${(kib / 1024).toFixed(1)} MiB`);
      }
    }
  } finally {
    await sandboxDown(lt.topology);
  }

  const figures: Figures[] = variants.map((v) => ({
    label: v.label,
    node: v.node,
    nodeVersion: nodeVersion(v.node),
    helpWallMs: summarize(help.get(v.label)!.wall),
    helpCpuMs: summarize(help.get(v.label)!.cpu),
    daemonRssMiB: summarize(rss.get(v.label)!),
  }));
  const b = figures.find((f) => f.label === "before");
  const a = figures.find((f) => f.label === "after")!;
  const out = {
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, load1: loadavg()[0] },
    runs,
    daemonRuns,
    settleMs,
    figures,
    ratios: b
      ? { helpWallMs: ratio(a.helpWallMs, b.helpWallMs), helpCpuMs: ratio(a.helpCpuMs, b.helpCpuMs), daemonRssMiB: ratio(a.daemonRssMiB, b.daemonRssMiB) }
      : null,
  };
  mkdirSync(packagePath("bench", "results"), { recursive: true });
  writeFileSync(packagePath("bench", "results", "startup.json"), `${JSON.stringify(out, null, 2)}\n`);

  const cell = (s: Summary, unit: string, digits: number) => `${s.median?.toFixed(digits)} ${unit} (${s.min?.toFixed(digits)}-${s.max?.toFixed(digits)})`;
  const rows = figures.map(
    (f) => `| ${f.label} (Node ${f.nodeVersion}) | ${cell(f.helpWallMs, "ms", 0)} | ${cell(f.helpCpuMs, "ms", 0)} | ${cell(f.daemonRssMiB, "MiB", 1)} |`,
  );
  if (out.ratios) rows.push(`| after / before | ${out.ratios.helpWallMs} | ${out.ratios.helpCpuMs} | ${out.ratios.daemonRssMiB} |`);
  process.stdout.write(
    `| variant | \`--help\` wall time | \`--help\` CPU (user + system) | daemon RSS ${settleMs / 1000} s after start |\n|---|---|---|---|\n${rows.join("\n")}\n`,
  );
}

await main();
