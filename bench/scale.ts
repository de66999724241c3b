/**
 * Scale: the daemon monitoring 100, 1,000 and 5,000 Redis endpoints at a 1 s interval. What does it cost?
 *
 * A Redis server binds only a handful of addresses, so endpoints are multiplied by HAProxy: two real Redis servers
 * (a primary on 127.64.9.1:6379 and its replica on 127.64.9.2:6379) and two HAProxies relaying port ranges to them,
 * one for every "primary host" address (127.64.1.i), one for every "replica host" address (127.64.2.i). The
 * generated topology declares those hosts in pairs (up to 250 ports per host, ports 20000..), so every check the
 * daemon makes is a real Redis check (PING + INFO) of a real primary or replica, through a TCP relay.
 *
 * The daemon runs as its own process (bench/scale-daemon.ts) with a hook that records when each check was due and
 * when it started. After a warm-up, over a measurement window: CPU share of one core (the run time of all its threads,
 * from /proc/<pid>/task/<tid>/schedstat), resident memory (VmRSS), checks done, failed checks, p50/p99/max lateness of check
 * starts against their schedule, and CPU time per check.
 *
 * Then every endpoint goes down at once, as when the monitor's own network is cut: both relays are stopped (SIGSTOP),
 * so every check times out. Once the daemon counts them all down, over the same window: its CPU share, checks done and
 * the lateness of their starts (a daemon that falls behind its own checks cannot tell when the network returns).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { signal } from "../src/providers/local/processes.ts";
import { Sandbox } from "../src/providers/local/sandbox.ts";
import type { Machine } from "../src/providers/types.ts";
import { stopDaemon, waitForDaemon } from "../src/simulate/daemon-process.ts";
import { assertFree, say, stopRequested } from "./common.ts";
import { percentile, round } from "./stats.ts";

const NET = 64;
const PORT_BASE = 20_000;
const PORTS_PER_HOST = 250;
const PRIMARY = { address: `127.${NET}.9.1`, port: 6379 };
const REPLICA = { address: `127.${NET}.9.2`, port: 6379 };

export interface ScaleRun {
  readonly endpoints: number;
  readonly ok: boolean;
  readonly why?: string;
  readonly intervalMs: number;
  readonly measuredMs: number;
  /** CPU time over wall time, as a percentage of one core. */
  readonly cpuPercentOfCore: number | null;
  readonly rssMiB: number | null;
  readonly checks: number;
  readonly failedChecks: number;
  readonly checksPerSecond: number;
  readonly latenessMs: { readonly p50: number | null; readonly p99: number | null; readonly max: number | null };
  /** CPU time per check, in microseconds. */
  readonly cpuPerCheckUs: number | null;
  /** The kernel's part of that time (system / (user + system), sampled in clock ticks): mostly TCP on loopback. */
  readonly systemShare?: number | null;
  /** The same daemon with every endpoint down at once (both relays stopped). */
  readonly allDown?: AllDown;
}

export interface AllDown {
  /** From stopping the relays until the daemon's log said the last target was down. */
  readonly allDownAfterMs: number | null;
  readonly cpuPercentOfCore: number | null;
  readonly checksPerSecond: number;
  readonly latenessMs: { readonly p50: number | null; readonly p99: number | null; readonly max: number | null };
  /** Recoveries started (a cut of the monitor's own network must start none; recovery is off here anyway). */
  readonly recoveriesStarted: number;
}

export interface ScaleResults {
  readonly runs: Record<string, ScaleRun>;
  /** Cost per check at the largest size / at the smallest (flat: close to 1). */
  readonly costGrowth: number | null;
}

export async function runScale(o: { sizes: readonly number[]; measureMs: number; warmupMs?: number; intervalMs?: number }): Promise<ScaleResults> {
  const runs: Record<string, ScaleRun> = {};
  for (const n of o.sizes) {
    if (stopRequested()) break;
    say(`scale: ${n} endpoints at ${o.intervalMs ?? 1000} ms, measuring ${o.measureMs} ms`);
    const r = await run(n, o.intervalMs ?? 1000, o.warmupMs ?? 5000, o.measureMs).catch(
      (e: unknown): ScaleRun => ({
        endpoints: n,
        ok: false,
        why: (e as Error).message,
        intervalMs: o.intervalMs ?? 1000,
        measuredMs: 0,
        cpuPercentOfCore: null,
        rssMiB: null,
        checks: 0,
        failedChecks: 0,
        checksPerSecond: 0,
        latenessMs: { p50: null, p99: null, max: null },
        cpuPerCheckUs: null,
      }),
    );
    say(
      `  cpu ${r.cpuPercentOfCore}% of a core (${r.systemShare ?? "?"} of it in the kernel), rss ${r.rssMiB} MiB, ${r.checksPerSecond} checks/s (${r.failedChecks} failed), lateness p99 ${r.latenessMs.p99} ms, ${r.cpuPerCheckUs} us/check${r.ok ? "" : `; FAILED: ${r.why}`}`,
    );
    runs[String(n)] = r;
  }
  const first = runs[String(o.sizes[0])]?.cpuPerCheckUs;
  const last = runs[String(o.sizes.at(-1))]?.cpuPerCheckUs;
  return { runs, costGrowth: first && last ? round(last / first, 2) : null };
}

/** The topology: pairs of hosts, each host up to 250 ports; pair i uses its own port range; hosts on 127.<net>.1-2.i. */
export function scaleTopology(endpoints: number, dir: string, intervalMs: number, net = NET): { yaml: string; primaries: Host[]; replicas: Host[] } {
  const perHost = Math.min(PORTS_PER_HOST, Math.ceil(endpoints / 2));
  const pairs = Math.ceil(endpoints / (2 * perHost));
  const primaries: Host[] = [];
  const replicas: Host[] = [];
  for (let i = 0; i < pairs; i++) {
    const from = PORT_BASE + i * perHost;
    const count = Math.min(perHost, endpoints / 2 - i * perHost);
    primaries.push({ name: `p${i + 1}`, address: `127.${net}.1.${i + 1}`, from, to: from + count - 1 });
    replicas.push({ name: `r${i + 1}`, address: `127.${net}.2.${i + 1}`, from, to: from + count - 1 });
  }
  const ports = (h: Host) => Array.from({ length: h.to - h.from + 1 }, (_, k) => h.from + k).join(", ");
  const yaml = [
    `topology: bench-scale-${endpoints}`,
    "hosts:",
    ...[...primaries, ...replicas].map((h) => `  ${h.name}: { role: redis, address: ${h.address}, ports: [${ports(h)}] }`),
    "pairs:",
    ...primaries.map((p, i) => `  - [${p.name}, ${replicas[i]!.name}]`),
    `checks: { intervalMs: ${intervalMs}, timeoutMs: 500, fall: 3, rise: 2 }`,
    "recovery: { enabled: false }",
    "provider:",
    "  kind: local",
    `  runDir: ${join(dir, "sandbox")}`,
    `stateDir: ${join(dir, "state")}`,
    "",
  ].join("\n");
  return { yaml, primaries, replicas };
}

export interface Host {
  readonly name: string;
  readonly address: string;
  readonly from: number;
  readonly to: number;
}

/** `clients`: how many daemons each hold one connection per endpoint through this relay. */
export function relayConfig(name: string, hosts: readonly Host[], to: { address: string; port: number }, adminAddress: string, clients = 1): string {
  const conns = clients * hosts.reduce((n, h) => n + h.to - h.from + 1, 0);
  return [
    "global",
    `    maxconn ${conns + 1000}`,
    `    stats socket ipv4@${adminAddress}:9999 level admin`,
    "defaults",
    "    mode tcp",
    "    timeout connect 1s",
    "    timeout client 1h",
    "    timeout server 1h",
    `frontend fe_${name}`,
    `    maxconn ${conns + 1000}`,
    ...hosts.map((h) => `    bind ${h.address}:${h.from}-${h.to}`),
    `    default_backend be_${name}`,
    `backend be_${name}`,
    `    server ${name} ${to.address}:${to.port}`,
    "",
  ].join("\n");
}

async function run(endpoints: number, intervalMs: number, warmupMs: number, measureMs: number): Promise<ScaleRun> {
  const dir = mkdtempSync(join(tmpdir(), "failoverd-bench-scale-"));
  const sandbox = new Sandbox(`bench-scale-${endpoints}`, { kind: "local", runDir: join(dir, "relays"), redisServer: "redis-server", haproxy: "haproxy", spares: {} });
  let daemon: ChildProcess | null = null;
  try {
    const { yaml, primaries, replicas } = scaleTopology(endpoints, dir, intervalMs);
    const config = join(dir, "topology.yaml");
    writeFileSync(config, yaml);
    const all = [...primaries, ...replicas];
    // Every listener of the run; for the port ranges, their first and last port.
    await assertFree([PRIMARY, REPLICA, ...all.flatMap((h) => [{ address: h.address, port: h.from }, { address: h.address, port: h.to }])]);

    const p = await sandbox.createMachine("primary", "redis", PRIMARY.address);
    await sandbox.startRedis(p, PRIMARY.port);
    const r = await sandbox.createMachine("replica", "redis", REPLICA.address);
    await sandbox.startRedis(r, REPLICA.port, { replicaOf: PRIMARY });
    const hp = await sandbox.createMachine("relay-primary", "haproxy", `127.${NET}.3.1`);
    await sandbox.applyHaproxy(hp, relayConfig("primary", primaries, PRIMARY, `127.${NET}.3.1`));
    const hr = await sandbox.createMachine("relay-replica", "haproxy", `127.${NET}.3.2`);
    await sandbox.applyHaproxy(hr, relayConfig("replica", replicas, REPLICA, `127.${NET}.3.2`));
    await sleep(300);

    const log = join(dir, "daemon.log");
    const samples = join(dir, "samples.txt");
    // The benchmarks run compiled (dist/bench/): the daemon script is the compiled sibling of this file.
    const script = fileURLToPath(new URL("./scale-daemon.js", import.meta.url));
    // BENCH_CPU_PROF=<dir>: a V8 CPU profile of the daemon, to find where a check's time goes.
    const prof = process.env["BENCH_CPU_PROF"] ? ["--cpu-prof", "--cpu-prof-dir", process.env["BENCH_CPU_PROF"]] : [];
    daemon = spawn(process.execPath, [...prof, script, config, samples], {
      stdio: ["ignore", openSync(log, "a"), openSync(log, "a")],
    });
    daemon.on("error", () => {});
    await waitForDaemon(log, daemon);
    const pid = daemon.pid!;
    await sleep(warmupMs);

    const t0 = Date.now();
    const [u0, k0] = userSystemTicks(pid);
    const th0 = threadCpuNs(pid);
    await sleep(measureMs);
    const th1 = threadCpuNs(pid);
    const [u1, k1] = userSystemTicks(pid);
    const t1 = Date.now();
    const cpuNs = [...th1].reduce((sum, [k, v]) => sum + v - (th0.get(k) ?? 0), 0);
    if (process.env["BENCH_THREADS"]) {
      say(`  cpu ms by thread: ${[...th1].map(([k, v]) => `${k} ${Math.round((v - (th0.get(k) ?? 0)) / 1e6)}`).join(", ")}`);
    }
    const rssMiB = rss(pid);
    const down = await measureAllDown(pid, log, [hp, hr], endpoints, measureMs, sandbox);
    await stopDaemon(daemon);

    const sampled = readFileSync(samples, "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => l.split(" ").map(Number) as [number, number, number]);
    const { rows, checksPerSecond, latenessMs } = windowOf(sampled, [t0, t1]);
    const inDown = windowOf(sampled, down.window);
    const cpuS = cpuNs / 1e9;
    const wallS = (t1 - t0) / 1000;
    return {
      endpoints,
      ok: rows.length > 0,
      ...(rows.length === 0 ? { why: "no check recorded in the window" } : {}),
      intervalMs,
      measuredMs: t1 - t0,
      cpuPercentOfCore: round((cpuS / wallS) * 100, 1),
      rssMiB: rssMiB === null ? null : round(rssMiB, 1),
      checks: rows.length,
      failedChecks: rows.filter((x) => x[2] === 0).length,
      checksPerSecond,
      latenessMs,
      cpuPerCheckUs: rows.length > 0 ? round((cpuS * 1e6) / rows.length, 1) : null,
      systemShare: u1 + k1 - u0 - k0 > 0 ? round((k1 - k0) / (u1 + k1 - u0 - k0), 2) : null,
      allDown: {
        allDownAfterMs: down.allDownAfterMs,
        cpuPercentOfCore: down.cpuPercentOfCore,
        checksPerSecond: inDown.checksPerSecond,
        latenessMs: inDown.latenessMs,
        recoveriesStarted: down.recoveriesStarted,
      },
    };
  } finally {
    if (daemon) await stopDaemon(daemon);
    await sandbox.down();
    if (process.env["BENCH_KEEP"]) say(`  kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Stops both relays (every check then times out), waits until the daemon's log has every target down (at most 13 s),
 * measures its CPU over `measureMs`, and lets the relays go on. The lateness of the window's checks is read from the
 * samples later (the daemon writes them when it stops).
 */
async function measureAllDown(
  pid: number,
  log: string,
  relays: readonly Machine[],
  endpoints: number,
  measureMs: number,
  sandbox: Sandbox,
): Promise<{ allDownAfterMs: number | null; cpuPercentOfCore: number; recoveriesStarted: number; window: readonly [number, number] }> {
  const processes = () => sandbox.read().machines.filter((m) => relays.some((r) => r.id === m.id)).flatMap((m) => m.processes);
  const lines = (re: RegExp) => readFileSync(log, "utf8").split("\n").filter((l) => re.test(l)).length;
  const DOWN = /"msg":"\S+ is down/;
  const before = lines(DOWN);
  const stoppedAt = Date.now();
  for (const p of processes()) signal(p, "SIGSTOP");
  try {
    let allDownAfterMs: number | null = null;
    while (Date.now() - stoppedAt < 13_000) {
      if (lines(DOWN) - before >= endpoints) {
        allDownAfterMs = Date.now() - stoppedAt;
        break;
      }
      await sleep(100);
    }
    await sleep(1000);
    const t0 = Date.now();
    const th0 = threadCpuNs(pid);
    await sleep(measureMs);
    const th1 = threadCpuNs(pid);
    const t1 = Date.now();
    const cpuNs = [...th1].reduce((sum, [k, v]) => sum + v - (th0.get(k) ?? 0), 0);
    return {
      allDownAfterMs,
      cpuPercentOfCore: round((cpuNs / 1e9 / ((t1 - t0) / 1000)) * 100, 1),
      recoveriesStarted: lines(/: running failed_/),
      window: [t0, t1],
    };
  } finally {
    for (const p of processes()) signal(p, "SIGCONT");
  }
}

/** Checks started in [from, to): how many per second, and the lateness of their starts. */
function windowOf(rows: readonly (readonly [number, number, number])[], [from, to]: readonly [number, number]) {
  const inside = rows.filter(([at]) => at >= from && at < to);
  const lateness = Float64Array.from(inside.map((x) => x[1]));
  return {
    rows: inside,
    checksPerSecond: round(inside.length / ((to - from) / 1000), 0),
    latenessMs: { p50: percentile(lateness, 50), p99: percentile(lateness, 99), max: percentile(lateness, 100) },
  };
}

/**
 * CPU time per thread (`name/tid`) in ns, from /proc/<pid>/task/<tid>/schedstat (the scheduler's exact run time;
 * utime/stime in clock ticks are sampled, and overcharge a mostly idle process on a busy machine).
 */
export function threadCpuNs(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, "utf8").trim();
      out.set(`${name}/${tid}`, Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]));
    } catch {
      // the thread ended
    }
  }
  return out;
}

/** utime and stime of the whole process, in clock ticks (sampled: for the user/system split only). */
function userSystemTicks(pid: number): [number, number] {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return [Number(f[11]), Number(f[12])];
}

function rss(pid: number): number | null {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : null;
}
