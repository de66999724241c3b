/**
 * The fault-matrix harness: a fresh sandbox and daemon per scenario, traffic through the app-side HAProxy, and a
 * split-brain sampler that keeps opening fresh connections through every HAProxy and records, round by round, which
 * server answers as a writable primary. Expectations common to every scenario: never two different writable
 * primaries at one moment, and every acknowledged write still there at the end.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { whyNotConverged } from "../../src/checks/converged.ts";
import { type ProcessRecord, Sandbox } from "../../src/providers/local/sandbox.ts";
import { signal } from "../../src/providers/local/processes.ts";
import { sandboxDown, sandboxUp } from "../../src/providers/local/up.ts";
import { FileJournal, type RecoverySummary, summarize } from "../../src/recovery/journal.ts";
import { startDaemon, stopDaemon, waitForDaemon } from "../../src/simulate/daemon-process.ts";
import { readBackLost } from "../../src/simulate/scenario.ts";
import { Traffic } from "../../src/simulate/traffic.ts";
import { Inventory } from "../../src/topology/inventory.ts";
import type { Topology } from "../../src/topology/topology.ts";
import { assertAddressesFree, type TestTopology } from "./sandbox.ts";

/**
 * The daemon's identity in the partition scenarios: root's uid (it reads the repository wherever CI cloned it) with
 * its own gid, so an owner-matched firewall rule (`-m owner --gid-owner`) cuts off the monitor and nothing else.
 */
export const MONITOR_GID = 65534;
const MONITOR = { uid: 0, gid: MONITOR_GID };

export interface SampleRound {
  readonly at: number;
  /** run_id of every server that answered ROLE master through some HAProxy in this round. */
  readonly primaries: readonly string[];
}

/** Fresh connections through every HAProxy's first frontend, every `everyMs`, all at once per round. */
export class SplitBrainSampler {
  readonly rounds: SampleRound[] = [];
  private readonly stopping = new AbortController();
  private running: Promise<void> | null = null;

  constructor(
    private readonly endpoints: readonly { address: string; port: number }[],
    private readonly everyMs = 50,
  ) {}

  start(): void {
    this.running = this.loop();
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    await this.running;
  }

  /** Rounds in which two different servers answered as primary. */
  violations(): SampleRound[] {
    return this.rounds.filter((r) => new Set(r.primaries).size > 1);
  }

  private async loop(): Promise<void> {
    while (!this.stopping.signal.aborted) {
      const at = Date.now();
      const answers = await Promise.all(this.endpoints.map((e) => probe(e.address, e.port)));
      this.rounds.push({ at, primaries: answers.filter((a): a is string => a !== null) });
      await sleep(Math.max(0, at + this.everyMs - Date.now()), undefined, { signal: this.stopping.signal }).catch(() => {});
    }
  }
}

async function probe(address: string, port: number): Promise<string | null> {
  const c = new Redis({
    host: address,
    port,
    lazyConnect: true,
    connectTimeout: 300,
    commandTimeout: 300,
    enableOfflineQueue: false,
    enableReadyCheck: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    disconnectTimeout: 0,
  });
  c.on("error", () => {});
  try {
    await c.connect();
    const [role, info] = (await Promise.all([c.call("ROLE"), c.call("INFO", "server")])) as [unknown[], string];
    if (role[0] !== "master") return null;
    return /run_id:(\w+)/.exec(info)?.[1] ?? null;
  } catch {
    return null;
  } finally {
    c.disconnect();
  }
}

export interface ScenarioContext {
  readonly t: Topology;
  readonly sandbox: Sandbox;
  readonly traffic: Traffic;
  readonly sampler: SplitBrainSampler;
  readonly daemon: ChildProcess;
  readonly logFile: string;
  /** The processes of a host now (after a replacement, the new ones). */
  processesOf(host: string): ProcessRecord[];
  /** Every recovery in the journal. */
  recoveries(): Promise<RecoverySummary[]>;
  /** Polls until the journal has `n` ended recoveries (or throws after `ms`). */
  waitForRecoveries(n: number, ms?: number): Promise<RecoverySummary[]>;
  /** Polls until the topology is whole again (or throws after `ms`). */
  waitConverged(ms?: number): Promise<void>;
  log(): string;
}

export interface ScenarioOptions {
  readonly env?: NodeJS.ProcessEnv;
  /** Run the daemon with MONITOR_GID, so an owner-matched firewall rule can cut the monitor off. */
  readonly isolatable?: boolean;
}

/**
 * Runs one scenario: setup (sandbox, daemon, traffic, sampler), `body` (fault and scenario-specific expectations),
 * then the common expectations. Stops every process it started, also on failure.
 */
export async function scenario(tt: TestTopology, body: (c: ScenarioContext) => Promise<void>, o: ScenarioOptions = {}): Promise<void> {
  const t = tt.topology;
  await assertAddressesFree(t);
  const sandbox = await sandboxUp(t);
  const logFile = join(tt.dir, `daemon-${Date.now()}.log`);
  const daemon = startDaemon(t, logFile, o.env ?? {}, [], o.isolatable ? MONITOR : undefined);
  const app = t.appHosts[0]!;
  const traffic = new Traffic({ address: app.address, port: Number(Object.keys(app.frontends)[0]), prefix: `m:${Date.now()}` });
  const sampler = new SplitBrainSampler(
    t.haproxyHosts.map((h) => ({ address: h.address, port: Number(Object.keys(h.frontends)[0]) })),
  );
  const journal = new FileJournal(join(t.config.stateDir, "journal.jsonl"));
  const ctx: ScenarioContext = {
    t,
    sandbox,
    traffic,
    sampler,
    daemon,
    logFile,
    processesOf: (host) => sandbox.machineOf(host)?.processes ?? [],
    recoveries: async () => summarize(await journal.read()),
    waitForRecoveries: async (n, ms = 30_000) => {
      const end = Date.now() + ms;
      for (;;) {
        const r = summarize(await journal.read());
        if (r.filter((x) => x.outcome !== undefined).length >= n) return r;
        if (Date.now() > end) throw new Error(`expected ${n} finished recoveries, journal has ${JSON.stringify(r.map((x) => [x.host, x.outcome]))}`);
        await sleep(50);
      }
    },
    waitConverged: async (ms = 15_000) => {
      const end = Date.now() + ms;
      let why: string | null = "";
      while (Date.now() < end) {
        why = await whyNotConverged(t, Inventory.load(t, join(t.config.stateDir, "inventory.json")));
        if (why === null) return;
        await sleep(100);
      }
      throw new Error(`not converged: ${why}`);
    },
    log: () => readFileSync(logFile, "utf8"),
  };
  try {
    await waitForDaemon(logFile, daemon);
    traffic.start();
    sampler.start();
    await sleep(400);
    assert.ok(traffic.acks.length > 0, "traffic flows before the fault");
    await body(ctx);
    await sleep(300);
    await sampler.stop();
    await traffic.stop();
    for (const p of sandbox.read().machines.flatMap((m) => m.processes)) signal(p, "SIGCONT");
    assert.deepEqual(ctx.sampler.violations(), [], "two different servers answered as writable primaries at one moment");
    assert.ok(sampler.rounds.length > 10, "the sampler ran");
    assert.equal(await readBackLost(t, traffic, {}), 0, "acknowledged writes lost");
  } finally {
    await sampler.stop().catch(() => {});
    await traffic.stop().catch(() => {});
    for (const p of sandbox.read().machines.flatMap((m) => m.processes)) signal(p, "SIGCONT");
    await stopDaemon(daemon);
    await sandboxDown(t);
  }
}

/** Adds an iptables rule for the duration of `fn` (removed even when `fn` throws). */
export async function withFirewallRule<T>(rule: readonly string[], fn: () => Promise<T>): Promise<T> {
  execFileSync("iptables", ["-I", "OUTPUT", ...rule]);
  try {
    return await fn();
  } finally {
    execFileSync("iptables", ["-D", "OUTPUT", ...rule]);
  }
}

export function killAll(procs: readonly ProcessRecord[], sig: NodeJS.Signals): void {
  for (const p of procs) signal(p, sig);
}

export { Sandbox };
