/**
 * `failoverd simulate`: setup (the sandbox, the daemon as its own process, traffic through the app-side HAProxy),
 * fault (crash = SIGKILL of every process of the host; hang = SIGSTOP, then SIGCONT after `hangMs`), expectation
 * (the playbook finished, the topology is whole again, every acknowledged write is still there), and a report.
 */
import { type ChildProcess, execFileSync } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { RedisAdminClient } from "../admin/redis.ts";
import { whyNotConverged } from "../checks/converged.ts";
import { FailoverdError, UsageError } from "../errors.ts";
import { redisAuthOf } from "../providers/index.ts";
import { signal as signalProcess } from "../providers/local/processes.ts";
import { sandboxDown, sandboxOf, sandboxUp } from "../providers/local/up.ts";
import { FileJournal, type RecoverySummary, summarize } from "../recovery/journal.ts";
import { Inventory } from "../topology/inventory.ts";
import type { Topology } from "../topology/topology.ts";
import { startDaemon, stopDaemon, waitForDaemon } from "./daemon-process.ts";
import { longestGap, Traffic, type TrafficOptions } from "./traffic.ts";

/**
 * crash: SIGKILL of every process of the host; hang: SIGSTOP, SIGCONT after `hangMs`; vanish: every packet to and
 * from the host's address dropped (no reset, no refusal: a host gone from the network), restored after `hangMs`.
 */
export type Fault = "crash" | "hang" | "vanish";

export interface SimulateOptions {
  readonly target: string;
  readonly fault: Fault;
  /** How long a hang lasts before SIGCONT. */
  readonly hangMs?: number;
  /** How long to wait for the recovery and convergence. */
  readonly timeoutMs?: number;
  readonly warmupMs?: number;
  readonly onEvent?: (line: string) => void;
  /** For benchmarks: extra measurements around the same run. */
  readonly hooks?: SimulateHooks;
}

export interface SimulateHooks {
  /** Options of the traffic through the app host (e.g. `identify`). */
  readonly traffic?: Partial<Pick<TrafficOptions, "identify" | "probeEveryMs">>;
  readonly onTraffic?: (traffic: Traffic) => void;
  /** Runs once the daemon is up, before the traffic starts (load data, start more clients). */
  readonly beforeFault?: () => Promise<void>;
  readonly onFault?: (faultAt: number) => void;
  /** Runs after the traffic stopped and was read back, while the topology still runs. */
  readonly beforeTeardown?: () => Promise<void>;
}

export interface StepReport {
  readonly name: string;
  readonly startMs: number;
  readonly endMs: number | null;
  readonly outcome: "ok" | "failed" | "running";
  readonly attempts: number;
}

export interface SimulateReport {
  readonly target: string;
  readonly fault: Fault;
  readonly recovered: boolean;
  readonly why?: string;
  readonly playbook: string | null;
  readonly diagnosis: string | null;
  readonly budgetMs: number;
  readonly detectMs: number | null;
  readonly outageMs: number;
  readonly firstWriteAfterFaultMs: number | null;
  readonly failedOps: number;
  readonly ackedWrites: number;
  readonly lostAckedWrites: number;
  readonly probes: { readonly total: number; readonly failed: number };
  readonly redundancyRestoredMs: number | null;
  readonly steps: readonly StepReport[];
}

export async function simulate(t: Topology, o: SimulateOptions): Promise<SimulateReport> {
  const host = t.hosts.get(o.target);
  if (!host) throw new UsageError(`--target: unknown host '${o.target}' (hosts: ${[...t.hosts.keys()].join(", ")})`);
  if (host.role === "app") throw new UsageError(`--target: ${o.target} is the app host; simulate fails redis or haproxy hosts`);
  const app = t.appHosts[0];
  if (!app) throw new UsageError(`${t.source} declares no app host: simulate drives traffic through one`);
  const say = o.onEvent ?? (() => {});
  const auth = redisAuthOf(t);
  const sandbox = sandboxOf(t);

  say(`starting the sandbox (${t.source})`);
  rmSync(join(sandbox.runDir, "daemon.log"), { force: true });
  await sandboxUp(t, { auth });
  let daemon: ChildProcess | null = null;
  let traffic: Traffic | null = null;
  const stopped: number[] = [];
  let vanished: (() => void) | null = null;
  try {
    daemon = startDaemon(t, join(sandbox.runDir, "daemon.log"));
    await waitForDaemon(join(sandbox.runDir, "daemon.log"), daemon);
    say(`daemon running (pid ${daemon.pid}); log ${join(sandbox.runDir, "daemon.log")}`);
    await o.hooks?.beforeFault?.();

    const listen = Number(Object.keys(app.frontends)[0]);
    traffic = new Traffic({ address: app.address, port: listen, auth, prefix: `sim:${Date.now()}`, ...o.hooks?.traffic });
    o.hooks?.onTraffic?.(traffic);
    traffic.start();
    await sleep(o.warmupMs ?? 1000);
    if (traffic.acks.length === 0) throw new FailoverdError(`no write succeeded through ${app.name}:${listen} before the fault`);

    const victims = sandbox.machineOf(o.target)?.processes ?? [];
    if (victims.length === 0) throw new FailoverdError(`the sandbox runs no process for ${o.target}`);
    const faultAt = Date.now();
    if (o.fault === "vanish") {
      vanished = vanish(sandbox.machineOf(o.target)!.address);
      say(`fault: ${o.target} vanishes from the network (every packet to and from ${sandbox.machineOf(o.target)!.address} dropped)`);
    } else {
      for (const p of victims) if (signalProcess(p, o.fault === "crash" ? "SIGKILL" : "SIGSTOP")) stopped.push(p.pid);
      say(`fault: ${o.fault} of ${o.target} (${o.fault === "crash" ? "SIGKILL" : "SIGSTOP"} pid ${victims.map((p) => p.pid).join(", ")})`);
    }
    o.hooks?.onFault?.(faultAt);
    const resumeAt = faultAt + (o.hangMs ?? 10_000);
    let resumed = o.fault === "crash";

    const journal = new FileJournal(join(t.config.stateDir, "journal.jsonl"));
    const deadline = faultAt + (o.timeoutMs ?? 60_000);
    const printed = new Set<string>();
    let recovery: RecoverySummary | undefined;
    let why: string | null = "the recovery did not finish";
    let convergedAt: number | null = null;
    while (Date.now() < deadline) {
      if (!resumed && Date.now() >= resumeAt) {
        if (vanished) {
          vanished();
          vanished = null;
          say(`fault: ${o.target} is back on the network after ${Date.now() - faultAt} ms`);
        } else {
          for (const p of victims) signalProcess(p, "SIGCONT");
          say(`fault: SIGCONT to ${o.target} after ${Date.now() - faultAt} ms`);
        }
        resumed = true;
      }
      recovery = summarize(await journal.read()).find((r) => r.host === o.target && r.startedAt >= faultAt - 5000);
      for (const s of recovery?.steps ?? []) {
        const key = `${s.step}:${s.endedAt ?? ""}`;
        if (printed.has(key) || s.endedAt === undefined) continue;
        printed.add(key);
        say(`  +${String(s.endedAt - faultAt).padStart(6)} ms  ${s.step} ${s.ok ? "done" : `FAILED: ${s.error}`}`);
      }
      if (recovery?.outcome) {
        why = recovery.outcome === "succeeded" ? await whyNotConverged(t, Inventory.load(t, join(t.config.stateDir, "inventory.json")), auth) : `recovery ${recovery.outcome}: ${recovery.error}`;
        if (why === null) {
          convergedAt = Date.now();
          if (resumed) break;
        } else if (recovery.outcome !== "succeeded") break;
      }
      await sleep(50);
    }
    // Keep writing a moment after convergence: the new primary must keep taking writes.
    await sleep(500);
    await traffic.stop();
    const endAt = Date.now();
    const lost = await readBackLost(t, traffic, auth);
    await o.hooks?.beforeTeardown?.();
    const gap = longestGap(traffic.acks, faultAt, endAt);
    if (process.env["FAILOVERD_DEBUG_ACKS"]) process.stderr.write(`${traffic.acks.filter((a) => a.at > faultAt - 10 && a.at < faultAt + 600).map((a) => a.at - faultAt).join(" ")}\n${traffic.failures.map((f) => `${f.at - faultAt} ${f.error}`).join("\n")}\n`);
    const firstAfter = traffic.acks.find((a) => a.at > faultAt);
    return {
      target: o.target,
      fault: o.fault,
      recovered: recovery?.outcome === "succeeded" && why === null,
      ...(why ? { why } : {}),
      playbook: recovery?.playbook ?? null,
      diagnosis: recovery?.diagnosis ?? null,
      budgetMs: t.config.checks.intervalMs * t.config.checks.fall,
      // Detection: when the failure was confirmed (a recovery that started early, on strong evidence, confirms it in
      // its decisive step), else when the recovery started.
      detectMs: recovery ? confirmedAt(recovery) - faultAt : null,
      outageMs: gap.ms,
      firstWriteAfterFaultMs: firstAfter ? firstAfter.at - faultAt : null,
      failedOps: traffic.failures.filter((f) => f.at >= faultAt).length,
      ackedWrites: traffic.acks.length,
      lostAckedWrites: lost,
      probes: { total: traffic.probes.length, failed: traffic.probes.filter((p) => !p.ok).length },
      redundancyRestoredMs: recovery?.endedAt !== undefined && convergedAt !== null ? recovery.endedAt - faultAt : null,
      steps: (recovery?.steps ?? []).map((s) => ({
        name: s.step,
        startMs: s.startedAt - faultAt,
        endMs: s.endedAt !== undefined ? s.endedAt - faultAt : null,
        outcome: s.endedAt === undefined ? "running" : s.ok ? "ok" : "failed",
        attempts: s.attempts,
      })),
    };
  } finally {
    vanished?.();
    await traffic?.stop().catch(() => {});
    for (const p of sandbox.read().machines.flatMap((m) => m.processes)) signalProcess(p, "SIGCONT");
    if (daemon) await stopDaemon(daemon);
    await sandboxDown(t);
  }
}

/** When a recovery confirmed the failure (its decisive step's `confirmedAt`), else when it started. */
export function confirmedAt(r: RecoverySummary): number {
  for (const step of ["promote", "terminate"]) {
    const at = (r.completed.get(step) as { confirmedAt?: number } | undefined)?.confirmedAt;
    if (typeof at === "number") return at;
  }
  return r.startedAt;
}

/** Drops every packet to and from `address` (iptables, INPUT); returns the undo. */
function vanish(address: string): () => void {
  const rules = [
    ["INPUT", "-d", address, "-j", "DROP"],
    ["INPUT", "-s", address, "-j", "DROP"],
  ];
  for (const r of rules) execFileSync("iptables", ["-I", ...r]);
  return () => {
    for (const r of rules) {
      try {
        execFileSync("iptables", ["-D", ...r]);
      } catch {
        // already gone
      }
    }
  };
}

/** Reads every acknowledged key back from the current primary of the writer's port; returns how many are missing. */
export async function readBackLost(t: Topology, traffic: Traffic, auth: ReturnType<typeof redisAuthOf>): Promise<number> {
  const app = t.appHosts[0]!;
  const haproxyPort = Object.values(app.frontends)[0]!;
  const h = t.haproxyHosts.find((x) => x.frontends[String(haproxyPort)] !== undefined) ?? t.haproxyHosts[0];
  const redisPort = h ? h.frontends[String(haproxyPort)] : undefined;
  if (redisPort === undefined) throw new FailoverdError("cannot tell which Redis port the traffic went to");
  const inv = Inventory.load(t, join(t.config.stateDir, "inventory.json"));
  const pair = t.pairs.find((p) => p.ports.includes(redisPort))!;
  for (const host of pair.hosts) {
    const c = new RedisAdminClient({ address: inv.addressOf(host), port: redisPort }, 5000, auth);
    try {
      const role = await c.role().catch(() => null);
      if (role?.role !== "primary") continue;
      let lost = 0;
      const keys = traffic.acks.map((a) => traffic.key(a.seq));
      for (let i = 0; i < keys.length; i += 1000) {
        const chunk = keys.slice(i, i + 1000);
        const values = (await c.call("MGET", ...chunk)) as (string | null)[];
        values.forEach((v, j) => {
          if (v !== String(traffic.acks[i + j]!.seq)) lost += 1;
        });
      }
      return lost;
    } finally {
      c.close();
    }
  }
  throw new FailoverdError(`no primary answers on port ${redisPort} to read the writes back`);
}

