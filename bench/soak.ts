/**
 * Soak: the daemon watches the sandbox with 100 ms checks for a long while (10 minutes by default), with traffic
 * through the app HAProxy; its resident memory and open file descriptors are sampled over time. Pass: growth under
 * 5% from the end of the warm-up to the end. The warm-up is the first 40% of the run (at least a minute): V8 grows
 * its heap in steps for the first few minutes before it settles, which is not a leak. A benchmark, not a CI test.
 *
 *   npm run soak                     # 10 minutes
 *   npm run soak -- --minutes 2      # a shorter look
 *
 * Loopback range 127.78.x.y. Results: bench/results/soak.json.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { sandboxDown, sandboxUp, declaredListeners } from "../src/providers/local/up.ts";
import { startDaemon, stopDaemon, waitForDaemon } from "../src/simulate/daemon-process.ts";
import { loopbackTopology } from "../src/simulate/topologies.ts";
import { Traffic } from "../src/simulate/traffic.ts";
import { assertFree, load1, say } from "./common.ts";

interface Sample {
  readonly atS: number;
  readonly rssKiB: number;
  readonly fds: number;
}

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} must be a positive number`);
  return v;
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) : Number.NaN;
}

function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

async function main(): Promise<void> {
  const minutes = arg("minutes", 10);
  const warmupS = Math.max(Math.min(60, minutes * 30), Math.round(minutes * 60 * 0.4));
  const everyS = minutes >= 5 ? 10 : 5;
  const lt = loopbackTopology({ net: 78, intervalMs: 100, timeoutMs: 80, name: "soak" });
  const t = lt.topology;
  await assertFree(declaredListeners(t));
  say(`soak: ${minutes} min, checks every ${t.config.checks.intervalMs} ms on ${t.redisHosts.length * 2 + 3} targets`);
  await sandboxUp(t);
  const log = join(lt.dir, "daemon.log");
  const daemon = startDaemon(t, log, { FAILOVERD_LOG_LEVEL: "info" });
  const app = t.appHosts[0]!;
  const traffic = new Traffic({ address: app.address, port: Number(Object.keys(app.frontends)[0]), prefix: "soak" });
  const samples: Sample[] = [];
  try {
    await waitForDaemon(log, daemon);
    traffic.start();
    const start = Date.now();
    const pid = daemon.pid!;
    while (Date.now() - start < minutes * 60_000) {
      const atS = Math.round((Date.now() - start) / 1000);
      samples.push({ atS, rssKiB: rssKiB(pid), fds: fdCount(pid) });
      const last = samples.at(-1)!;
      say(`t=${atS}s rss=${(last.rssKiB / 1024).toFixed(1)} MiB fds=${last.fds} load=${load1()} writes=${traffic.acks.length}`);
      await sleep(everyS * 1000);
    }
    samples.push({ atS: Math.round((Date.now() - start) / 1000), rssKiB: rssKiB(pid), fds: fdCount(pid) });
  } finally {
    await traffic.stop();
    await stopDaemon(daemon);
    await sandboxDown(t);
  }
  const afterWarmup = samples.filter((s) => s.atS >= warmupS);
  const end = samples.at(-1)!;
  // Medians of three samples at each end smooth the GC sawtooth.
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const head = afterWarmup.slice(0, 3);
  const tail = samples.slice(-3);
  const base = { rssKiB: median(head.map((s) => s.rssKiB)), fds: median(head.map((s) => s.fds)) };
  const rssGrowth = (median(tail.map((s) => s.rssKiB)) - base.rssKiB) / base.rssKiB;
  const fdGrowth = (median(tail.map((s) => s.fds)) - base.fds) / base.fds;
  const result = {
    date: new Date().toISOString(),
    minutes,
    intervalMs: t.config.checks.intervalMs,
    warmupS,
    rssKiB: { afterWarmup: base.rssKiB, end: end.rssKiB, growth: Math.round(rssGrowth * 1000) / 1000 },
    fds: { afterWarmup: base.fds, end: end.fds, growth: Math.round(fdGrowth * 1000) / 1000 },
    writes: traffic.acks.length,
    pass: rssGrowth < 0.05 && fdGrowth < 0.05,
    samples,
  };
  mkdirSync("bench/results", { recursive: true });
  writeFileSync("bench/results/soak.json", `${JSON.stringify(result, null, 2)}\n`);
  say(
    `soak ${result.pass ? "PASS" : "FAIL"}: rss ${(base.rssKiB / 1024).toFixed(1)} -> ${(end.rssKiB / 1024).toFixed(1)} MiB (${(rssGrowth * 100).toFixed(1)}%), ` +
      `fds ${base.fds} -> ${end.fds} (${(fdGrowth * 100).toFixed(1)}%) after a ${warmupS} s warm-up; bench/results/soak.json`,
  );
  lt.cleanup();
  process.exitCode = result.pass ? 0 : 1;
}

await main();
