/**
 * Several instances on etcd (issue 12), measured. Not a test: figures, medians of several trials, ratios measured in
 * the same run.
 *
 * 1. crash: SIGKILL of the primary's host, trial by trial alternating single-instance mode (`simulate()` itself) and
 *    three instances on a 3-member etcd (the same sandbox topology, traffic and fault, the daemons started the way
 *    test/helpers/monitors.ts starts them). Detection (the failure confirmed, from the journal: the promote step's
 *    `confirmedAt`) and the client-visible write outage (the longest gap between acknowledged writes), as
 *    bench/failover.ts and bench/never-worse.ts measure them. Target: three instances within 50 ms of one.
 * 2. takeover: three instances, each holding before every step of failed_redis (FAILOVERD_CHAOS_PAUSE); the leader
 *    is SIGKILLed while it holds, step after step: from the kill to the journal's start of that step by the next
 *    leader. Target: median at most the lease TTL + one check interval.
 * 3. cost: 1,000 endpoints every second and 5,000 every 3 s (bench/scale.ts's HAProxy relays), rounds alternating one
 *    instance and three: etcd writes per second in steady state (etcd's revision: one per write transaction, from
 *    every instance), the CPU share of one core of each failoverd instance and of the etcd members together.
 *
 * usage: node dist/bench/monitors.js [--trials N] [--kills N] [--rounds N] [--windows N] [--window-ms MS]
 *        [--sizes 1000@1000,5000@3000] [--parts crash,takeover,cost]; writes bench/results/monitors.json (a full run only).
 *        KEEP=1 keeps each three-instance crash trial's directory (the instances' logs) and the etcd members' logs, and says where.
 * Loopback: 127.220.x.y (single instance), 127.221.x.y (three instances, etcd on 127.221.9.1-3), 127.222.x.y
 * (cost relays), 127.223.9.1-3 (cost etcd).
 */
import { type ChildProcess, execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Etcd3 } from "etcd3";
import { whyNotConverged } from "../src/checks/converged.ts";
import { packagePath } from "../src/package-root.ts";
import { signal } from "../src/providers/local/processes.ts";
import { Sandbox } from "../src/providers/local/sandbox.ts";
import { declaredListeners, sandboxDown, sandboxUp } from "../src/providers/local/up.ts";
import { failedRedis } from "../src/recovery/playbooks/failed-redis.ts";
import { type JournalRecord, type RecoverySummary, summarize as summarizeJournal } from "../src/recovery/journal.ts";
import { startDaemon, stopDaemon } from "../src/simulate/daemon-process.ts";
import { EtcdCluster } from "../src/simulate/etcd-cluster.ts";
import { confirmedAt, readBackLost, simulate } from "../src/simulate/scenario.ts";
import { loopbackTopology } from "../src/simulate/topologies.ts";
import { longestGap, Traffic } from "../src/simulate/traffic.ts";
import { Inventory } from "../src/topology/inventory.ts";
import { loadTopology } from "../src/topology/load.ts";
import type { Topology } from "../src/topology/topology.ts";
import { assertFree, load1, say } from "./common.ts";
import { relayConfig, scaleTopology, threadCpuNs } from "./scale.ts";
import { ratio, round, type Summary, summarize } from "./stats.ts";

const INTERVAL_MS = 200;
const FALL = 3;
/** The coordination section's default lease TTL (what an operator gets without choosing). */
const TTL_SECONDS = 3;
const NET_SINGLE = 220;
const NET_MONITORS = 221;
const NET_COST = 222;
const NET_COST_ETCD = 223;
const INSTANCES = ["m1", "m2", "m3"] as const;

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}
/**
 * `--sizes 1000@1000,5000@3000`: endpoints@interval (ms). Three instances at 5,000 endpoints every second are 15,000
 * checks a second through the relays, on the same machine: more than a 2-core machine carries (every check times out).
 */
const SIZES = (() => {
  const i = process.argv.indexOf("--sizes");
  const v = i >= 0 ? (process.argv[i + 1] ?? "") : "1000@1000,5000@3000";
  const sizes = v.split(",").map((x) => /^(\d+)@(\d+)$/.exec(x.trim()));
  if (sizes.some((m) => m === null)) {
    process.stderr.write(`monitors: --sizes takes endpoints@intervalMs, comma separated (not "${v}")\n`);
    process.exit(2);
  }
  return sizes.map((m) => ({ endpoints: Number(m![1]), intervalMs: Number(m![2]) }));
})();
const ALL_PARTS = ["crash", "takeover", "cost"] as const;
type Part = (typeof ALL_PARTS)[number];
const PARTS: readonly Part[] = (() => {
  const i = process.argv.indexOf("--parts");
  if (i < 0) return ALL_PARTS;
  const asked = (process.argv[i + 1] ?? "").split(",").filter((p) => p !== "");
  const unknown = asked.filter((p) => !(ALL_PARTS as readonly string[]).includes(p));
  if (asked.length === 0 || unknown.length > 0) {
    process.stderr.write(`monitors: --parts takes a comma list of ${ALL_PARTS.join(", ")} (not "${process.argv[i + 1] ?? ""}")\n`);
    process.exit(2);
  }
  return asked as Part[];
})();

/** The fault 1 s after the traffic starts, plus a random part of one interval (not always at the same check phase). */
const warmupMs = () => 1000 + Math.floor(Math.random() * INTERVAL_MS);

const coordinationYaml = (etcd: EtcdCluster, prefix: string) =>
  `coordination: { endpoints: [${etcd.endpoints.join(", ")}], prefix: ${prefix}, leaseTtlSeconds: ${TTL_SECONDS}, instances: 3 }`;

function etcdClient(etcd: EtcdCluster): Etcd3 {
  return new Etcd3({ hosts: etcd.endpoints, defaultCallOptions: () => ({ deadline: Date.now() + 3000 }) });
}

async function journal(client: Etcd3, prefix: string): Promise<RecoverySummary[]> {
  const res = await client.getAll().prefix(`${prefix}/journal/`).sort("Create", "Ascend").exec();
  return summarizeJournal(res.kvs.map((kv) => JSON.parse(kv.value.toString()) as JournalRecord));
}

async function until(what: string, ms: number, fn: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn().catch(() => false)) return;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Three `failoverd run --instance mN` on one topology, started one after the other (m1 leads), each waited for. */
class Instances {
  readonly daemons = new Map<string, { child: ChildProcess; log: string }>();
  constructor(
    readonly t: Topology,
    readonly dir: string,
    readonly env: NodeJS.ProcessEnv = {},
  ) {}

  start(name: string): ChildProcess {
    const log = join(this.dir, `daemon-${name}-${Date.now()}.log`);
    const child = startDaemon(this.t, log, this.env, ["--instance", name]);
    this.daemons.set(name, { child, log });
    return child;
  }

  /** One after the other: three Node processes starting at once on a loaded machine take much longer. */
  async startAll(): Promise<void> {
    for (const name of INSTANCES) {
      this.start(name);
      await this.waitStarted(name);
    }
  }

  /** Until the instance's first round of checks is done (a loaded machine: up to 2 minutes). */
  async waitStarted(name: string, ms = 120_000): Promise<void> {
    const d = this.daemons.get(name)!;
    const end = Date.now() + ms;
    while (!this.logOf(name).includes("roles discovered")) {
      if (d.child.exitCode !== null) throw new Error(`${name} exited at start (code ${d.child.exitCode}); see ${d.log}`);
      if (Date.now() > end) throw new Error(`${name} did not start within ${ms} ms; see ${d.log}`);
      await sleep(50);
    }
  }

  logOf(name: string): string {
    try {
      return readFileSync(this.daemons.get(name)!.log, "utf8");
    } catch {
      return "";
    }
  }

  pids(): number[] {
    return [...this.daemons.values()].flatMap((d) => (d.child.pid !== undefined && d.child.exitCode === null && d.child.signalCode === null ? [d.child.pid] : []));
  }

  async stop(): Promise<void> {
    for (const d of this.daemons.values()) await stopDaemon(d.child);
  }
}

/** Waits until a leader is elected and every instance publishes its verdicts. */
async function waitReady(client: Etcd3, prefix: string, ms = 60_000): Promise<void> {
  await until("a leader and three instances publishing", ms, async () => {
    const election = await client.getAll().prefix(`${prefix}/election/`).keys();
    const verdicts = await client.getAll().prefix(`${prefix}/verdicts/`).keys();
    const publishing = new Set(verdicts.map((k) => k.slice(`${prefix}/verdicts/`.length).split("/")[0]));
    return election.length >= 3 && publishing.size >= 3;
  });
}

// ---------------------------------------------------------------------------------------------------------------
// 1. Crash of the primary: one instance against three.

type Mode = "single" | "monitors";

interface CrashTrial {
  readonly mode: Mode;
  readonly ok: boolean;
  readonly why?: string;
  readonly detectMs: number | null;
  readonly outageMs: number | null;
  /** When the promote step ended (promoted and routed on every HAProxy), after the fault. */
  readonly promotedMs: number | null;
  readonly lostAckedWrites: number | null;
  readonly load1: number;
}

async function singleCrash(): Promise<CrashTrial> {
  const lt = loopbackTopology({ net: NET_SINGLE, name: "bench-monitors-single", intervalMs: INTERVAL_MS, fall: FALL });
  try {
    await assertFree(declaredListeners(lt.topology));
    const r = await simulate(lt.topology, { target: "redis1", fault: "crash", warmupMs: warmupMs(), timeoutMs: 40_000 });
    return {
      mode: "single",
      ok: r.recovered,
      ...(r.recovered ? {} : { why: r.why ?? "not recovered" }),
      detectMs: r.detectMs,
      outageMs: r.outageMs,
      promotedMs: r.steps.find((x) => x.name === "promote")?.endMs ?? null,
      lostAckedWrites: r.lostAckedWrites,
      load1: load1(),
    };
  } finally {
    lt.cleanup();
  }
}

/** The same trial as `simulate(crash)`, with three instances coordinated through `etcd` instead of one. */
async function monitorsCrash(etcd: EtcdCluster, n: number): Promise<CrashTrial> {
  const prefix = `/failoverd/bench-crash-${Date.now()}-${n}`;
  const lt = loopbackTopology({ net: NET_MONITORS, name: "bench-monitors-three", intervalMs: INTERVAL_MS, fall: FALL, extra: coordinationYaml(etcd, prefix) });
  const t = lt.topology;
  const client = etcdClient(etcd);
  const instances = new Instances(t, lt.dir);
  let traffic: Traffic | null = null;
  try {
    await assertFree(declaredListeners(t));
    const sandbox = await sandboxUp(t);
    await instances.startAll();
    await waitReady(client, prefix);
    const app = t.appHosts[0]!;
    traffic = new Traffic({ address: app.address, port: Number(Object.keys(app.frontends)[0]), auth: {}, prefix: `sim:${Date.now()}` });
    traffic.start();
    await sleep(warmupMs());
    if (traffic.acks.length === 0) throw new Error("no write succeeded before the fault");
    const victims = sandbox.machineOf("redis1")?.processes ?? [];
    const faultAt = Date.now();
    for (const p of victims) signal(p, "SIGKILL");
    const deadline = faultAt + 40_000;
    let recovery: RecoverySummary | undefined;
    let why: string | null = "the recovery did not finish";
    while (Date.now() < deadline) {
      recovery = (await journal(client, prefix).catch(() => [])).find((r) => r.host === "redis1" && r.startedAt >= faultAt - 5000);
      if (recovery?.outcome) {
        why = recovery.outcome === "succeeded" ? await whyNotConverged(t, Inventory.load(t, join(t.config.stateDir, "inventory.json"))) : `recovery ${recovery.outcome}: ${recovery.error}`;
        if (why === null || recovery.outcome !== "succeeded") break;
      }
      await sleep(50);
    }
    // As simulate: keep writing a moment after convergence.
    await sleep(500);
    await traffic.stop();
    const endAt = Date.now();
    const lost = await readBackLost(t, traffic, {});
    return {
      mode: "monitors",
      ok: why === null,
      ...(why === null ? {} : { why }),
      detectMs: recovery ? confirmedAt(recovery) - faultAt : null,
      outageMs: longestGap(traffic.acks, faultAt, endAt).ms,
      promotedMs: ((e) => (e === undefined ? null : e - faultAt))(recovery?.steps.find((x) => x.step === "promote")?.endedAt),
      lostAckedWrites: lost,
      load1: load1(),
    };
  } finally {
    await traffic?.stop().catch(() => {});
    await instances.stop();
    client.close();
    await sandboxDown(t);
    if (process.env["KEEP"]) say(`kept ${lt.dir}`);
    else lt.cleanup();
  }
}

async function crashPart(trials: number, etcd: EtcdCluster) {
  const all: CrashTrial[] = [];
  for (let i = 1; i <= trials; i++) {
    // Alternated, and which goes first alternates too: a change of the machine's load hits both alike.
    const order: Mode[] = i % 2 === 1 ? ["single", "monitors"] : ["monitors", "single"];
    for (const mode of order) {
      let t: CrashTrial;
      try {
        t = mode === "single" ? await singleCrash() : await monitorsCrash(etcd, i);
      } catch (e) {
        t = { mode, ok: false, why: (e as Error).message, detectMs: null, outageMs: null, promotedMs: null, lostAckedWrites: null, load1: load1() };
      }
      say(`crash ${mode} ${i}/${trials}: detect ${t.detectMs ?? "-"} ms, promoted ${t.promotedMs ?? "-"} ms, outage ${t.outageMs ?? "-"} ms, lost ${t.lostAckedWrites ?? "-"}, load ${t.load1}${t.ok ? "" : `; FAILED: ${t.why}`}`);
      all.push(t);
    }
  }
  const of = (mode: Mode) => all.filter((t) => t.mode === mode);
  const row = (mode: Mode) => ({
    detect: summarize(of(mode).map((t) => t.detectMs)),
    outage: summarize(of(mode).map((t) => t.outageMs)),
    promoted: summarize(of(mode).map((t) => t.promotedMs)),
    /** From the failure confirmed to the promote step's end: the steps before it, each journaled (in etcd or a file). */
    confirmedToPromoted: summarize(of(mode).map((t) => (t.promotedMs === null || t.detectMs === null ? null : t.promotedMs - t.detectMs))),
    lost: summarize(of(mode).map((t) => t.lostAckedWrites)),
    failed: of(mode).filter((t) => !t.ok).length,
  });
  const single = row("single");
  const monitors = row("monitors");
  const diff = (a: Summary, b: Summary) => (a.median === null || b.median === null ? null : round(a.median - b.median));
  return {
    trials,
    single,
    monitors,
    /** Three instances minus one, medians (target: at most 50 ms). */
    detectDiffMs: diff(monitors.detect, single.detect),
    outageDiffMs: diff(monitors.outage, single.outage),
    promotedDiffMs: diff(monitors.promoted, single.promoted),
    detectRatio: ratio(monitors.detect, single.detect),
    outageRatio: ratio(monitors.outage, single.outage),
    all,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// 2. The leader killed mid-recovery.


interface Takeover {
  readonly step: string;
  readonly killed: string;
  /** From the SIGKILL of the holding leader to the journal's start of that step by the next one. */
  readonly ms: number;
  /** From the kill to the new leader's log saying it leads (its election seen): etcd ending the dead one's lease. */
  readonly electedMs: number | null;
  readonly by: string | null;
  readonly load1: number;
}

async function takeoverRound(etcd: EtcdCluster, round: number, want: number): Promise<{ takeovers: Takeover[]; outcome: string }> {
  const prefix = `/failoverd/bench-takeover-${Date.now()}-${round}`;
  const lt = loopbackTopology({ net: NET_MONITORS, name: "bench-monitors-takeover", intervalMs: INTERVAL_MS, fall: FALL, extra: coordinationYaml(etcd, prefix) });
  const t = lt.topology;
  const client = etcdClient(etcd);
  const steps = failedRedis("redis1").steps.map((s) => s.name);
  const instances = new Instances(t, lt.dir, { FAILOVERD_CHAOS_PAUSE: steps.map((s) => `${s}:60000`).join(",") });
  const takeovers: Takeover[] = [];
  const read = new Map<string, number>();
  try {
    await assertFree(declaredListeners(t));
    const sandbox = await sandboxUp(t);
    await instances.startAll();
    await waitReady(client, prefix);
    for (const p of sandbox.machineOf("redis1")?.processes ?? []) signal(p, "SIGKILL");
    for (const step of steps) {
      if (takeovers.length >= want) break;
      const marker = `chaos: pausing 60000 ms before ${step}`;
      let holder: string | null = null;
      let started = false;
      await until(`an instance to hold before ${step}`, 120_000, async () => {
        started = (await journal(client, prefix))[0]?.steps.some((s) => s.step === step) === true;
        if (started) return true;
        for (const [name, d] of instances.daemons) {
          if (d.child.exitCode !== null || d.child.signalCode !== null) continue;
          const text = instances.logOf(name);
          const at = text.indexOf(marker, read.get(d.log) ?? 0);
          if (at >= 0) {
            read.set(d.log, at + 1);
            holder = name;
            return true;
          }
        }
        return false;
      });
      // A leader that lost its lease on its own (a loaded machine) lets the next run this step without holding.
      if (started || holder === null) continue;
      const child = instances.daemons.get(holder)!.child;
      const killedAt = Date.now();
      child.kill("SIGKILL");
      await new Promise((r) => child.once("exit", r));
      let at: number | null = null;
      await until(`a next leader to start ${step}`, 60_000, async () => {
        const s = (await journal(client, prefix))[0]?.steps.find((x) => x.step === step && x.startedAt >= killedAt);
        if (s) at = s.startedAt;
        return s !== undefined;
      });
      const election = await client.getAll().prefix(`${prefix}/election/`).sort("Create", "Ascend").exec();
      const by = election.kvs[0]?.value.toString() ?? null;
      const ms = at! - killedAt;
      const elected = by === null ? null : electedAt(instances.logOf(by), by, killedAt);
      const electedMs = elected === null ? null : elected - killedAt;
      takeovers.push({ step, killed: holder, ms, electedMs, by, load1: load1() });
      say(`takeover before ${step}: ${holder} killed, ${by ?? "the next leader"} elected after ${electedMs ?? "?"} ms, started it after ${ms} ms (load ${load1()})`);
      // The killed instance comes back (as an operator's supervisor would restart it), at the back of the queue.
      instances.start(holder);
    }
    const r = (await journal(client, prefix))[0];
    return { takeovers, outcome: r?.outcome ?? "running" };
  } finally {
    await instances.stop();
    client.close();
    await sandboxDown(t);
    lt.cleanup();
  }
}


/** When the instance's log first says it leads, at or after `after` (the log's own timestamps, this host's clock). */
function electedAt(log: string, name: string, after: number): number | null {
  const marker = `"msg":"leader: ${name} (this instance)"`;
  for (const line of log.split("\n")) {
    if (!line.includes(marker)) continue;
    const at = Date.parse(/"time":"([^"]+)"/.exec(line)?.[1] ?? "");
    if (Number.isFinite(at) && at >= after) return at;
  }
  return null;
}

async function takeoverPart(want: number, etcd: EtcdCluster) {
  const all: Takeover[] = [];
  for (let round = 1; round <= 3 && all.length < want; round++) {
    try {
      const r = await takeoverRound(etcd, round, want - all.length);
      all.push(...r.takeovers);
    } catch (e) {
      say(`takeover round ${round} FAILED: ${(e as Error).message}`);
    }
  }
  const targetMs = TTL_SECONDS * 1000 + INTERVAL_MS;
  const s = summarize(all.map((x) => x.ms));
  return {
    ttlSeconds: TTL_SECONDS,
    intervalMs: INTERVAL_MS,
    targetMs,
    takeover: s,
    elected: summarize(all.map((x) => x.electedMs)),
    electedToStep: summarize(all.map((x) => (x.electedMs === null ? null : x.ms - x.electedMs))),
    withinTarget: s.median !== null && s.median <= targetMs,
    all,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// 3. Cost at 1,000 and 5,000 endpoints.

interface CostSample {
  readonly mode: Mode;
  readonly endpoints: number;
  /** CPU share of one core, per failoverd instance. */
  readonly cpuPercent: readonly number[];
  /** CPU share of one core, the etcd members together (monitors mode). */
  readonly etcdCpuPercent: number | null;
  readonly etcdWritesPerSecond: number | null;
  readonly load1: number;
}

function cpuOf(pids: readonly number[]): number[] {
  return pids.map((pid) => {
    try {
      return [...threadCpuNs(pid).values()].reduce((a, b) => a + b, 0);
    } catch {
      return Number.NaN;
    }
  });
}

async function revision(client: Etcd3): Promise<bigint> {
  const res = await client.get("/failoverd-bench-revision").exec();
  return BigInt(res.header.revision);
}

async function costSize(endpoints: number, intervalMs: number, rounds: number, windows: number, windowMs: number, etcd: EtcdCluster): Promise<CostSample[]> {
  const dir = mkdtempSync(join(tmpdir(), "failoverd-bench-monitors-cost-"));
  const sandbox = new Sandbox(`bench-monitors-cost-${endpoints}`, { kind: "local", runDir: join(dir, "relays"), redisServer: "redis-server", haproxy: "haproxy", spares: {} });
  const client = etcdClient(etcd);
  const samples: CostSample[] = [];
  try {
    const primary = { address: `127.${NET_COST}.9.1`, port: 6379 };
    const replica = { address: `127.${NET_COST}.9.2`, port: 6379 };
    const { yaml, primaries, replicas } = scaleTopology(endpoints, dir, intervalMs, NET_COST);
    const all = [...primaries, ...replicas];
    await assertFree([primary, replica, ...all.flatMap((h) => [{ address: h.address, port: h.from }, { address: h.address, port: h.to }])]);
    const p = await sandbox.createMachine("primary", "redis", primary.address);
    await sandbox.startRedis(p, primary.port);
    const rep = await sandbox.createMachine("replica", "redis", replica.address);
    await sandbox.startRedis(rep, replica.port, { replicaOf: primary });
    const hp = await sandbox.createMachine("relay-primary", "haproxy", `127.${NET_COST}.3.1`);
    await sandbox.applyHaproxy(hp, relayConfig("primary", primaries, primary, `127.${NET_COST}.3.1`, INSTANCES.length));
    const hr = await sandbox.createMachine("relay-replica", "haproxy", `127.${NET_COST}.3.2`);
    await sandbox.applyHaproxy(hr, relayConfig("replica", replicas, replica, `127.${NET_COST}.3.2`, INSTANCES.length));
    await sleep(300);
    const singleConfig = join(dir, "single.yaml");
    writeFileSync(singleConfig, yaml);
    const etcdPids = etcd.members.flatMap((m) => (m.pid === null ? [] : [m.pid]));

    for (let r = 1; r <= rounds; r++) {
      const order: Mode[] = r % 2 === 1 ? ["single", "monitors"] : ["monitors", "single"];
      for (const mode of order) {
        const prefix = `/failoverd/bench-cost-${endpoints}-${r}`;
        const config = mode === "single" ? singleConfig : join(dir, `monitors-${r}.yaml`);
        if (mode === "monitors") writeFileSync(config, `${yaml}${coordinationYaml(etcd, prefix)}\n`);
        const t = loadTopology(config);
        const instances = new Instances(t, dir, { FAILOVERD_LOG_LEVEL: "info" });
        try {
          if (mode === "single") {
            const child = startDaemon(t, join(dir, `single-${r}.log`), { FAILOVERD_LOG_LEVEL: "info" });
            instances.daemons.set("single", { child, log: join(dir, `single-${r}.log`) });
            await instances.waitStarted("single");
          } else {
            await instances.startAll();
            await waitReady(client, prefix, 120_000);
          }
          // Steady state: every target's first verdict published, the start-up over.
          await sleep(5000);
          for (let w = 0; w < windows; w++) {
            const pids = instances.pids();
            const t0 = Date.now();
            const c0 = cpuOf(pids);
            const e0 = cpuOf(etcdPids);
            const r0 = mode === "monitors" ? await revision(client) : 0n;
            await sleep(windowMs);
            const r1 = mode === "monitors" ? await revision(client) : 0n;
            const c1 = cpuOf(pids);
            const e1 = cpuOf(etcdPids);
            const secs = (Date.now() - t0) / 1000;
            const pct = (a: number, b: number) => round(((b - a) / 1e9 / secs) * 100, 1);
            const s: CostSample = {
              mode,
              endpoints,
              cpuPercent: c0.map((c, i) => pct(c, c1[i]!)),
              etcdCpuPercent: mode === "monitors" ? round(e0.reduce((sum, c, i) => sum + (e1[i]! - c), 0) / 1e9 / secs * 100, 1) : null,
              // The revision read itself writes nothing; one revision is one write transaction.
              etcdWritesPerSecond: mode === "monitors" ? round(Number(r1 - r0) / secs, 2) : null,
              load1: load1(),
            };
            say(`cost ${endpoints} ${mode} round ${r} window ${w + 1}: cpu ${s.cpuPercent.join(" / ")} % of a core, etcd cpu ${s.etcdCpuPercent ?? "-"} %, etcd writes ${s.etcdWritesPerSecond ?? "-"}/s, load ${s.load1}`);
            samples.push(s);
          }
        } catch (e) {
          say(`cost ${endpoints} ${mode} round ${r} FAILED: ${(e as Error).message}`);
        } finally {
          await instances.stop();
        }
      }
    }
    return samples;
  } finally {
    client.close();
    await sandbox.down();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function costPart(sizes: readonly { endpoints: number; intervalMs: number }[], rounds: number, windows: number, windowMs: number) {
  const dir = mkdtempSync(join(tmpdir(), "failoverd-bench-monitors-etcd-"));
  const etcd = new EtcdCluster(NET_COST_ETCD, dir);
  await etcd.start();
  const rows: Record<string, unknown>[] = [];
  const samples: CostSample[] = [];
  try {
    for (const { endpoints, intervalMs } of sizes) {
      const ss = await costSize(endpoints, intervalMs, rounds, windows, windowMs, etcd);
      samples.push(...ss);
      const single = summarize(ss.filter((s) => s.mode === "single").map((s) => s.cpuPercent[0]));
      const mon = ss.filter((s) => s.mode === "monitors");
      const perInstance = summarize(mon.flatMap((s) => s.cpuPercent));
      const together = summarize(mon.map((s) => s.cpuPercent.reduce((a, b) => a + b, 0)));
      rows.push({
        endpoints,
        intervalMs,
        samples: { single: ss.filter((s) => s.mode === "single").length, monitors: mon.length },
        singleCpuPercent: single,
        instanceCpuPercent: perInstance,
        instancesTogetherCpuPercent: together,
        etcdCpuPercent: summarize(mon.map((s) => s.etcdCpuPercent)),
        etcdWritesPerSecond: summarize(mon.map((s) => s.etcdWritesPerSecond)),
        /** One instance of three / the single instance, CPU medians. */
        instanceOverSingle: ratio(perInstance, single),
      });
    }
  } finally {
    await etcd.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  return { rounds, windows, windowMs, rows, samples };
}

// ---------------------------------------------------------------------------------------------------------------

const trials = arg("--trials", 5);
const kills = arg("--kills", 7);
const rounds = arg("--rounds", 3);
const windows = arg("--windows", 2);
const windowMs = arg("--window-ms", 8000);
const uptime = () => execFileSync("uptime", { encoding: "utf8" }).trim();
const result: Record<string, unknown> = { at: new Date().toISOString(), uptimeBefore: uptime(), cores: (await import("node:os")).cpus().length };
const started = Date.now();
if (PARTS.includes("crash") || PARTS.includes("takeover")) {
  const dir = mkdtempSync(join(tmpdir(), "failoverd-bench-monitors-etcd-"));
  const etcd = new EtcdCluster(NET_MONITORS, dir);
  await etcd.start();
  try {
    if (PARTS.includes("crash")) result["crash"] = await crashPart(trials, etcd);
    if (PARTS.includes("takeover")) result["takeover"] = await takeoverPart(kills, etcd);
  } finally {
    await etcd.stop();
    if (process.env["KEEP"]) say(`kept the etcd members' logs in ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}
if (PARTS.includes("cost")) result["cost"] = await costPart(SIZES, rounds, windows, windowMs);
result["uptimeAfter"] = uptime();
result["minutes"] = round((Date.now() - started) / 60_000, 1);
const out = process.env["BENCH_OUT"] ?? (PARTS.length === ALL_PARTS.length ? packagePath("bench", "results", "monitors.json") : null);
if (out) {
  mkdirSync(join(out, ".."), { recursive: true });
  writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  say(`results in ${out}`);
}
process.stdout.write(`${JSON.stringify({ ...result, crash: result["crash"] ? { ...(result["crash"] as object), all: undefined } : undefined, cost: result["cost"] ? { ...(result["cost"] as object), samples: undefined } : undefined }, null, 2)}\n`);
