/**
 * The failover benchmark: failoverd against Redis Sentinel on the same machine, topology, traffic and detection
 * budget, trial after trial, each on a fresh set of processes.
 *
 * - `failoverd`: `simulate()` on the sandbox topology (127.60.x.y): the daemon as its own process, the same code path
 *   as `failoverd simulate --target redis1`.
 * - `sentinel-haproxy`: 3 sentinels, quorum 2, down-after-milliseconds = interval x fall, HAProxies with the
 *   `role:master` check (127.61.x.y; see sentinel.ts).
 * - `sentinel-client`: the same Sentinel world, the traffic through ioredis' Sentinel mode instead of HAProxy.
 *
 * The same Traffic class drives all three (a sequential writer with one operation in flight and a 1 s deadline, a
 * prober opening a fresh connection every 200 ms), each write naming the server that acknowledged it; every
 * acknowledged key is read back from the final primary with the same code.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Endpoint } from "../src/admin/redis.ts";
import { declaredListeners } from "../src/providers/local/up.ts";
import { type SimulateReport, simulate } from "../src/simulate/scenario.ts";
import { loopbackTopology } from "../src/simulate/topologies.ts";
import { Traffic } from "../src/simulate/traffic.ts";
import { Inventory } from "../src/topology/inventory.ts";
import { assertFree, type FailoverFigures, failoverFigures, findPrimary, type ReadBack, readBack, say, stopRequested } from "./common.ts";
import { SentinelWorld } from "./sentinel.ts";
import { ratio, type Summary, summarize } from "./stats.ts";

export type System = "failoverd" | "sentinel-haproxy" | "sentinel-client";
export type Fault = "crash" | "hang";
export const SYSTEMS: readonly System[] = ["failoverd", "sentinel-haproxy", "sentinel-client"];
export const FAULTS: readonly Fault[] = ["crash", "hang"];

/** The sandbox's checks: 200 ms x 3 = a 600 ms detection budget, given to Sentinel as down-after-milliseconds. */
const INTERVAL_MS = 200;
const FALL = 3;
const BUDGET_MS = INTERVAL_MS * FALL;
const HANG_MS = 10_000;
/**
 * The fault comes 1 s after the traffic starts, plus a random part of one check interval: with a fixed delay the fault
 * would fall at the same point of failoverd's check schedule in every trial (the schedule starts with the daemon).
 */
const warmupMs = () => 1000 + Math.floor(Math.random() * INTERVAL_MS);

export interface FailoverTrial extends FailoverFigures {
  readonly system: System;
  readonly fault: Fault;
  /** failoverd: when the promote step ended (promoted and routed on every HAProxy); Sentinel: +switch-master. */
  readonly promotedMs: number | null;
}

export interface FailoverOptions {
  readonly trials: number;
  readonly systems?: readonly System[];
  readonly faults?: readonly Fault[];
}

const FIGURES = [
  "detectMs",
  "outageMs",
  "confirmedToWritesMs",
  "failedOps",
  "lostAckedWrites",
  "lostWrites",
  "lostProbes",
  "staleAcks",
  "promotedMs",
] as const;
type Figure = (typeof FIGURES)[number];

export type FaultSummary = Record<Figure, Summary> & { trials: number; failedTrials: number; why: string[] };

export interface FailoverResults {
  readonly budgetMs: number;
  readonly hangMs: number;
  readonly systems: Record<string, Record<string, FaultSummary>>;
  /** failoverd / Sentinel for each figure's median, per fault. */
  readonly ratios: Record<string, Record<string, Record<string, number | null>>>;
  readonly trials: FailoverTrial[];
}

export async function runFailover(o: FailoverOptions): Promise<FailoverResults> {
  const systems = o.systems ?? SYSTEMS;
  const faults = o.faults ?? FAULTS;
  const trials: FailoverTrial[] = [];
  // Interleaved (trial 1 of every system, then trial 2...) so a change in the machine's load hits all alike.
  for (let i = 1; i <= o.trials; i++) {
    for (const fault of faults) {
      for (const system of systems) {
        if (stopRequested()) break;
        say(`failover: ${system} ${fault} trial ${i}/${o.trials}`);
        const t = await trial(system, fault);
        say(
          `  detect ${t.detectMs ?? "-"} ms, outage ${t.outageMs} ms, failed ops ${t.failedOps}, lost ${t.lostAckedWrites}, stale ${t.staleAcks}${t.ok ? "" : `; FAILED: ${t.why}`}`,
        );
        trials.push(t);
      }
    }
  }
  const out: FailoverResults["systems"] = {};
  for (const system of systems) {
    out[system] = {};
    for (const fault of faults) {
      const ts = trials.filter((t) => t.system === system && t.fault === fault);
      // A trial that did not recover in time still counts with what it measured (its outage runs to the trial's end):
      // leaving it out would flatter the system that failed. A trial that could not measure has no figures (null).
      const s = Object.fromEntries(FIGURES.map((f) => [f, summarize(ts.map((t) => t[f]))])) as Record<Figure, Summary>;
      const failed = ts.filter((t) => !t.ok);
      out[system]![fault] = { ...s, trials: ts.length, failedTrials: failed.length, why: failed.map((t) => t.why ?? "") };
    }
  }
  const ratios: FailoverResults["ratios"] = {};
  for (const base of systems.filter((s) => s !== "failoverd")) {
    ratios[`failoverd/${base}`] = {};
    for (const fault of faults) {
      ratios[`failoverd/${base}`]![fault] = Object.fromEntries(
        FIGURES.map((f) => [f, ratio(out["failoverd"]?.[fault]?.[f], out[base]?.[fault]?.[f])]),
      );
    }
  }
  return { budgetMs: BUDGET_MS, hangMs: HANG_MS, systems: out, ratios, trials };
}

async function trial(system: System, fault: Fault): Promise<FailoverTrial> {
  try {
    return system === "failoverd" ? await failoverdTrial(fault) : await sentinelTrial(system, fault);
  } catch (e) {
    const why = (e as Error).message;
    return { system, fault, promotedMs: null, ...failed(why) };
  }
}

function failed(why: string): FailoverFigures {
  return {
    ok: false,
    why,
    detectMs: null,
    outageMs: Number.NaN,
    confirmedToWritesMs: null,
    failedOps: Number.NaN,
    ackedWrites: 0,
    lostAckedWrites: Number.NaN,
    lostWrites: Number.NaN,
    lostProbes: Number.NaN,
    staleAcks: Number.NaN,
    probes: { total: 0, failed: 0 },
    firstWriteAfterFaultMs: null,
  };
}

async function failoverdTrial(fault: Fault): Promise<FailoverTrial> {
  const lt = loopbackTopology({ net: 60, name: "bench-failover", intervalMs: INTERVAL_MS, fall: FALL });
  try {
    const t = lt.topology;
    await assertFree(declaredListeners(t));
    const seen: { traffic?: Traffic; faultAt?: number; endAt?: number; back?: ReadBack } = {};
    const report: SimulateReport = await simulate(t, {
      target: "redis1",
      fault,
      hangMs: HANG_MS,
      warmupMs: warmupMs(),
      timeoutMs: 40_000,
      hooks: {
        traffic: { identify: true },
        onTraffic: (x) => {
          seen.traffic = x;
        },
        onFault: (at) => {
          seen.faultAt = at;
        },
        beforeTeardown: async () => {
          seen.endAt = Date.now();
          const inv = Inventory.load(t, join(t.config.stateDir, "inventory.json"));
          const primary = await findPrimary(t.pairs[0]!.hosts.map((h) => ({ address: inv.addressOf(h), port: 9001 })));
          if (primary && seen.traffic) seen.back = await readBack(seen.traffic, primary);
        },
      },
    });
    const { traffic, faultAt, back } = seen;
    if (!traffic || faultAt === undefined) throw new Error("simulate ran no traffic");
    const why = !report.recovered ? (report.why ?? "not recovered") : back === undefined ? "no primary to read back from" : null;
    const detectAt = report.detectMs === null ? null : faultAt + report.detectMs;
    const promote = report.steps.find((s) => s.name === "promote");
    return {
      system: "failoverd",
      fault,
      promotedMs: promote?.endMs ?? null,
      ...failoverFigures(traffic, faultAt, seen.endAt ?? Date.now(), detectAt, back ?? null, why),
    };
  } finally {
    lt.cleanup();
  }
}

async function sentinelTrial(system: Exclude<System, "failoverd">, fault: Fault): Promise<FailoverTrial> {
  const dir = mkdtempSync(join(tmpdir(), "failoverd-bench-sentinel-"));
  const world = new SentinelWorld({ net: 61, dir, downAfterMs: BUDGET_MS, checkIntervalMs: INTERVAL_MS });
  let traffic: Traffic | null = null;
  try {
    await world.start();
    const prefix = `bench:${Date.now()}`;
    traffic =
      system === "sentinel-haproxy"
        ? new Traffic({ ...world.appFrontend, prefix, identify: true })
        : new Traffic({
            ...world.sentinelEndpoints[0]!,
            prefix,
            identify: true,
            // A Sentinel-aware client as its users configure it: asks the sentinels, checks the role when it connects,
            // and listens for +switch-master. Same 1 s deadline per operation as every other system.
            redis: {
              sentinels: world.sentinelEndpoints.map((e) => ({ host: e.address, port: e.port })),
              name: "m9001",
              enableReadyCheck: true,
              failoverDetector: true,
              sentinelCommandTimeout: 1000,
            },
          });
    traffic.start();
    await sleep(warmupMs());
    if (traffic.acks.length === 0) throw new Error(`${system}: no write succeeded before the fault`);

    const faultAt = Date.now();
    world.fault(fault);
    const deadline = faultAt + (fault === "hang" ? HANG_MS + 25_000 : 30_000);
    let resumed = fault !== "hang";
    let why: string | null = "Sentinel did not fail over within the deadline";
    const oldPrimary: Endpoint = { address: world.addr.redis1, port: 9001 };
    while (Date.now() < deadline) {
      if (!resumed && Date.now() >= faultAt + HANG_MS) {
        world.resume();
        resumed = true;
      }
      const switched = world.firstEvent("+switch-master", faultAt);
      const writing = switched !== undefined && traffic.acks.some((a) => a.at > switched.at);
      if (writing && resumed) {
        if (fault === "crash") {
          why = null;
          break;
        }
        // A hang ends when the sentinels have turned the old primary into a replica and it has resynced: only then
        // are the writes it took after it came back gone, or not.
        why = "the old primary was not turned into a synced replica within the deadline";
        if (world.firstEvent("+convert-to-slave", faultAt)) {
          const r = await world.replication(oldPrimary);
          if (r?.["role"] === "slave" && r["master_link_status"] === "up" && r["master_sync_in_progress"] === "0") {
            why = null;
            break;
          }
        }
      }
      await sleep(50);
    }
    await sleep(500);
    await traffic.stop();
    const endAt = Date.now();
    const primary = await world.primaryOf();
    const back = primary ? await readBack(traffic, primary) : null;
    const detect = world.firstEvent("+odown", faultAt);
    const switched = world.firstEvent("+switch-master", faultAt);
    return {
      system,
      fault,
      promotedMs: switched ? switched.at - faultAt : null,
      ...failoverFigures(traffic, faultAt, endAt, detect?.at ?? null, back, back === null ? (why ?? "no primary to read back from") : why),
    };
  } finally {
    await traffic?.stop().catch(() => {});
    await world.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
