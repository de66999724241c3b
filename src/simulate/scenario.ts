/**
 * `failoverd simulate`: setup (the sandbox, the daemon as its own process, traffic through the app-side HAProxy),
 * fault (crash = SIGKILL of every process of the host; hang = SIGSTOP, then SIGCONT after `hangMs`), expectation
 * (the playbook finished, the topology is whole again, every acknowledged write is still there), and a report.
 * With `monitors`: an etcd cluster and that many coordinated daemons instead of one (src/simulate/monitors.ts), and
 * the monitor faults (the acting instance killed, or cut off, during the recovery).
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
import { FileJournal, type JournalRecord, type RecoverySummary, summarize } from "../recovery/journal.ts";
import { failedHaproxy } from "../recovery/playbooks/failed-haproxy.ts";
import { failedRedis } from "../recovery/playbooks/failed-redis.ts";
import { Inventory } from "../topology/inventory.ts";
import type { Topology } from "../topology/topology.ts";
import { startDaemon, stopDaemon, waitForDaemon } from "./daemon-process.ts";
import type { Act, Fleet } from "./monitors.ts";
import { longestGap, Traffic, type TrafficOptions } from "./traffic.ts";

/**
 * crash: SIGKILL of every process of the host; hang: SIGSTOP, SIGCONT after `hangMs`; vanish: every packet to and
 * from the host's address dropped (no reset, no refusal: a host gone from the network), restored after `hangMs`.
 * With `monitors`, the host crashes and, on top: monitor-leader: the acting instance is killed (SIGKILL) before the
 * recovery's step `atStep`; monitor-partition: the leader is cut off from etcd and the topology, before the crash
 * (no `atStep`) or before the recovery's step `atStep`, and healed after `hangMs` (or at the end).
 */
export type Fault = "crash" | "hang" | "vanish" | "monitor-leader" | "monitor-partition";

export const FAULTS: readonly Fault[] = ["crash", "hang", "vanish", "monitor-leader", "monitor-partition"];

/** The step monitor-leader strikes at without `atStep`: launch, the middle of both playbooks and their longest step, past the point of no return (the next leader must carry on, not start over). */
export const DEFAULT_AT_STEP = "launch";

export interface SimulateOptions {
  readonly target: string;
  readonly fault: Fault;
  /** How long a hang lasts before SIGCONT. */
  readonly hangMs?: number;
  /** How long to wait for the recovery and convergence. */
  readonly timeoutMs?: number;
  readonly warmupMs?: number;
  readonly onEvent?: (line: string) => void;
  /** Several instances coordinated through etcd (an odd number, at least 3): simulate starts etcd and m1..mN. */
  readonly monitors?: number;
  /** The recovery's step a monitor fault strikes at (the instance holding it is held before it, then struck). */
  readonly atStep?: string;
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
  /** Present with `monitors` only. */
  readonly monitors?: MonitorsReport;
}

/** Times are ms after the target's fault (negative: before it). */
export interface MonitorsReport {
  readonly instances: readonly string[];
  /** The monitor fault: which instance, at which step (null: before the crash), when; null without one (or when it never struck). */
  readonly fault: {
    readonly kind: "monitor-leader" | "monitor-partition";
    readonly instance: string;
    readonly step: string | null;
    readonly atMs: number;
    /** When a cut instance was reconnected (null: at the end). */
    readonly healedMs: number | null;
  } | null;
  /** The leader as etcd named it: the first entry is the leader at the start, then every change. */
  readonly leaders: readonly { readonly atMs: number; readonly leader: string | null }[];
  /** Who started or resumed the recovery, from the instances' logs. */
  readonly acts: readonly { readonly instance: string; readonly what: Act["what"]; readonly atMs: number }[];
  /** When the recovery's next step started after the monitor fault (the next leader resuming), and by whom. */
  readonly resumedMs: number | null;
  readonly resumedBy: string | null;
  /** What went wrong beyond the recovery itself (a cut-off instance that acted, a recovery started before the crash, a fault that never struck). */
  readonly problems: readonly string[];
}

/**
 * The monitor options' one-line usage errors, before anything starts: --monitors an odd number >= 3 matching
 * coordination.instances, with loopback etcd endpoints; the monitor faults need --monitors; --at-step one of the
 * target's playbook steps; a cut needs root.
 */
export function checkMonitorOptions(t: Topology, o: Pick<SimulateOptions, "target" | "fault" | "monitors" | "atStep">): void {
  const monitorFault = o.fault === "monitor-leader" || o.fault === "monitor-partition";
  if (monitorFault && o.monitors === undefined) throw new UsageError(`--fault ${o.fault}: give --monitors (3 or more coordinated instances)`);
  if (o.monitors !== undefined) {
    const n = o.monitors;
    if (!Number.isInteger(n) || n < 3 || n % 2 === 0) throw new UsageError(`--monitors ${n}: give an odd number of instances, at least 3 (3 or 5)`);
    const c = t.config.coordination;
    if (!c) throw new UsageError(`--monitors ${n}: ${t.source} has no coordination section (see config/sandbox-monitors.yaml)`);
    if (c.instances !== n) throw new UsageError(`--monitors ${n}: coordination.instances is ${c.instances} in ${t.source}; give --monitors ${c.instances} or change it`);
    if (etcdAddresses(t).some((a) => a === "")) throw new UsageError(`--monitors ${n}: every coordination endpoint must be http://127.x.y.z:2379 (simulate starts one etcd member on each)`);
    if (t.config.provider.kind !== "local") throw new UsageError(`--monitors ${n}: simulate runs the sandbox (provider.kind: local)`);
  }
  if (o.atStep !== undefined) {
    if (!monitorFault) throw new UsageError(`--at-step ${o.atStep}: only the monitor faults (monitor-leader, monitor-partition) strike at a step`);
    const role = t.hosts.get(o.target)?.role;
    const playbook = role === "haproxy" ? failedHaproxy(o.target) : failedRedis(o.target);
    const steps = playbook.steps.map((s) => s.name);
    if (!steps.includes(o.atStep)) throw new UsageError(`--at-step ${o.atStep}: not a step of ${playbook.name} (${steps.join(", ")})`);
  }
  if (o.fault === "monitor-partition" && process.getuid?.() !== 0) {
    throw new UsageError("--fault monitor-partition cuts an instance off with iptables and a group per instance: run simulate as root");
  }
}

/** The etcd members' addresses: one per coordination endpoint, each http://127.x.y.z:2379 ("" for any other). */
export function etcdAddresses(t: Topology): string[] {
  return (t.config.coordination?.endpoints ?? []).map((e) => /^http:\/\/(127\.\d+\.\d+\.\d+):2379\/?$/.exec(e)?.[1] ?? "");
}

export async function simulate(t: Topology, o: SimulateOptions): Promise<SimulateReport> {
  const host = t.hosts.get(o.target);
  if (!host) throw new UsageError(`--target: unknown host '${o.target}' (hosts: ${[...t.hosts.keys()].join(", ")})`);
  if (host.role === "app") throw new UsageError(`--target: ${o.target} is the app host; simulate fails redis or haproxy hosts`);
  const app = t.appHosts[0];
  if (!app) throw new UsageError(`${t.source} declares no app host: simulate drives traffic through one`);
  checkMonitorOptions(t, o);
  const say = o.onEvent ?? (() => {});
  const auth = redisAuthOf(t);
  const sandbox = sandboxOf(t);
  // The target's own fault: the monitor faults come on top of a crash.
  const hostFault: "crash" | "hang" | "vanish" = o.fault === "hang" || o.fault === "vanish" ? o.fault : "crash";
  const atStep = o.fault === "monitor-leader" ? (o.atStep ?? DEFAULT_AT_STEP) : o.fault === "monitor-partition" ? o.atStep : undefined;

  say(`starting the sandbox (${t.source})`);
  rmSync(join(sandbox.runDir, "daemon.log"), { force: true });
  let fleet: Fleet | null = null;
  if (o.monitors !== undefined) {
    const m = await import("./monitors.ts");
    fleet = new m.Fleet(t, {
      instances: o.monitors,
      groups: o.fault === "monitor-partition",
      // Every instance holds before the step; the one running the recovery is struck there. A next leader that
      // resumes at that step does not hold (the runner's chaos pause skips the step a run resumes at).
      env: atStep !== undefined ? { FAILOVERD_CHAOS_PAUSE: `${atStep}:${m.PAUSE_MS}` } : {},
    });
    const f = fleet;
    await f.startEtcd().catch(async (e: unknown) => {
      await f.stop();
      throw e;
    });
    say(`etcd running: ${f.etcd.endpoints.join(", ")}`);
  }
  await sandboxUp(t, { auth }).catch(async (e: unknown) => {
    await fleet?.stop();
    throw e;
  });
  let daemon: ChildProcess | null = null;
  let traffic: Traffic | null = null;
  const stopped: number[] = [];
  let vanished: (() => void) | null = null;
  try {
    if (fleet) {
      await fleet.startInstances(say);
    } else {
      daemon = startDaemon(t, join(sandbox.runDir, "daemon.log"));
      await waitForDaemon(join(sandbox.runDir, "daemon.log"), daemon);
      say(`daemon running (pid ${daemon.pid}); log ${join(sandbox.runDir, "daemon.log")}`);
    }
    await o.hooks?.beforeFault?.();

    const listen = Number(Object.keys(app.frontends)[0]);
    traffic = new Traffic({ address: app.address, port: listen, auth, prefix: `sim:${Date.now()}`, ...o.hooks?.traffic });
    o.hooks?.onTraffic?.(traffic);
    traffic.start();
    await sleep(o.warmupMs ?? 1000);
    if (traffic.acks.length === 0) throw new FailoverdError(`no write succeeded through ${app.name}:${listen} before the fault`);

    const victims = sandbox.machineOf(o.target)?.processes ?? [];
    if (victims.length === 0) throw new FailoverdError(`the sandbox runs no process for ${o.target}`);
    const budgetMs = t.config.checks.intervalMs * t.config.checks.fall;
    const problems: string[] = [];
    const startMarks = fleet?.marks() ?? new Map<string, number>();
    let struck: { instance: string; step: string | null; at: number; healedAt: number | null; marks: Map<string, number> } | null = null;

    if (fleet && o.fault === "monitor-partition" && atStep === undefined) {
      // The leader cut off before the crash: it alone sees every host down; the others see them up. Nothing may start.
      const victim = fleet.leader()!;
      const marks = fleet.marks();
      fleet.cut(victim);
      struck = { instance: victim, step: null, at: Date.now(), healedAt: null, marks };
      say(`fault: ${victim}, the leader, cut off from etcd and the topology (every packet it sends dropped)`);
      const ttlMs = t.config.coordination!.leaseTtlSeconds * 1000;
      const next = await fleet.waitLeaderOtherThan(victim, 3 * ttlMs + 30_000);
      if (next === null) problems.push(`no other instance took the lead within ${3 * ttlMs + 30_000} ms of ${victim}'s cut`);
      else say(`leader: ${next} (${Date.now() - struck.at} ms after the cut)`);
      // Long enough for the cut instance to see every host down (a detection budget) and to have acted, were it to.
      await sleep(2 * budgetMs + ttlMs);
      const early = summarize(await fleet.journal().catch(() => []));
      if (early.length > 0) problems.push(`a recovery started while only the cut-off ${victim} saw the hosts down: ${early.map((r) => `${r.playbook} for ${r.host}`).join(", ")}`);
      else say(`no recovery started in the ${Date.now() - struck.at} ms since the cut (only ${victim} sees the hosts down)`);
    }

    const faultAt = Date.now();
    if (hostFault === "vanish") {
      vanished = vanish(sandbox.machineOf(o.target)!.address);
      say(`fault: ${o.target} vanishes from the network (every packet to and from ${sandbox.machineOf(o.target)!.address} dropped)`);
    } else {
      for (const p of victims) if (signalProcess(p, hostFault === "crash" ? "SIGKILL" : "SIGSTOP")) stopped.push(p.pid);
      say(`fault: ${hostFault} of ${o.target} (${hostFault === "crash" ? "SIGKILL" : "SIGSTOP"} pid ${victims.map((p) => p.pid).join(", ")})`);
    }
    o.hooks?.onFault?.(faultAt);
    const resumeAt = faultAt + (o.hangMs ?? 10_000);
    let resumed = hostFault === "crash";

    const fileJournal = new FileJournal(join(t.config.stateDir, "journal.jsonl"));
    const readJournal = (): Promise<JournalRecord[]> => (fleet ? fleet.journal().catch(() => []) : fileJournal.read());
    const faultMarks = fleet?.marks() ?? new Map<string, number>();
    // Several instances: a takeover costs up to a lease TTL more, and a held instance its hold (it is struck then).
    const deadline = faultAt + (o.timeoutMs ?? (fleet ? 120_000 : 60_000));
    const printed = new Set<string>();
    let recovery: RecoverySummary | undefined;
    let records: JournalRecord[] = [];
    let why: string | null = "the recovery did not finish";
    let convergedAt: number | null = null;
    let lastLeader = fleet?.leader() ?? null;
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
      if (fleet) {
        if (atStep !== undefined && struck === null) {
          const who = fleet.pausedBefore(atStep, faultMarks);
          if (who !== null) {
            const marks = fleet.marks();
            if (o.fault === "monitor-leader") {
              const pid = fleet.pidOf(who);
              await fleet.kill(who);
              say(`fault: ${who}, the acting instance, killed (SIGKILL pid ${pid}) before ${atStep}, ${Date.now() - faultAt} ms after the crash`);
            } else {
              fleet.cut(who);
              say(`fault: ${who}, the acting instance, cut off from etcd and the topology before ${atStep}, ${Date.now() - faultAt} ms after the crash`);
            }
            struck = { instance: who, step: atStep, at: Date.now(), healedAt: null, marks };
          }
        }
        if (struck && fleet.cutOff && Date.now() >= struck.at + (o.hangMs ?? 10_000)) {
          fleet.healAll();
          struck.healedAt = Date.now();
          say(`fault: ${struck.instance} reconnected after ${struck.healedAt - struck.at} ms`);
        }
        if (fleet.leader() !== lastLeader) {
          lastLeader = fleet.leader();
          say(`  +${String(Date.now() - faultAt).padStart(6)} ms  leader: ${lastLeader ?? "none"}`);
        }
      }
      records = await readJournal();
      recovery = summarize(records).find((r) => r.host === o.target && r.startedAt >= faultAt - 5000);
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
    const monitors = fleet ? monitorsReport(fleet, o.fault, atStep, struck, startMarks, records, faultAt, problems) : undefined;
    if (why === null && monitors && monitors.problems.length > 0) why = monitors.problems.join("; ");
    return {
      target: o.target,
      fault: o.fault,
      recovered: recovery?.outcome === "succeeded" && why === null,
      ...(why ? { why } : {}),
      playbook: recovery?.playbook ?? null,
      diagnosis: recovery?.diagnosis ?? null,
      budgetMs,
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
      ...(monitors ? { monitors } : {}),
    };
  } finally {
    vanished?.();
    fleet?.healAll();
    await traffic?.stop().catch(() => {});
    for (const p of sandbox.read().machines.flatMap((m) => m.processes)) signalProcess(p, "SIGCONT");
    if (daemon) await stopDaemon(daemon);
    await fleet?.stop();
    await sandboxDown(t);
  }
}

/** The leader changes, who acted, when the recovery resumed after the monitor fault, and what must not have happened. */
function monitorsReport(
  fleet: Fleet,
  fault: Fault,
  atStep: string | undefined,
  struck: { instance: string; step: string | null; at: number; healedAt: number | null; marks: Map<string, number> } | null,
  startMarks: Map<string, number>,
  records: readonly JournalRecord[],
  faultAt: number,
  earlier: readonly string[],
): MonitorsReport {
  const problems = [...earlier];
  let resumedAt: number | null = null;
  let resumedBy: string | null = null;
  if (struck) {
    if (struck.step !== null) {
      const next = records.find((r) => r.type === "step-start" && r.ahead !== true && r.at >= struck.at);
      resumedAt = next?.at ?? null;
      resumedBy = fleet.acts(struck.marks).find((a) => a.what === "resumed" && a.instance !== struck.instance)?.instance ?? null;
      if (resumedAt === null) problems.push(`no instance resumed the recovery after ${struck.instance} was struck before ${struck.step}`);
    }
    if (fault === "monitor-partition") {
      const acted = fleet.actionsSince(struck.instance, struck.marks.get(struck.instance) ?? 0, struck.healedAt ?? Number.POSITIVE_INFINITY);
      if (acted.length > 0) problems.push(`${struck.instance} acted while cut off: ${acted.join("; ")}`);
    }
  } else if (fault === "monitor-leader" || fault === "monitor-partition") {
    problems.push(`the fault never struck: no instance held before ${atStep} (a recovery that resumes at that step does not hold there)`);
  }
  return {
    instances: fleet.instances.map((i) => i.name),
    fault: struck && (fault === "monitor-leader" || fault === "monitor-partition")
      ? { kind: fault, instance: struck.instance, step: struck.step, atMs: struck.at - faultAt, healedMs: struck.healedAt !== null ? struck.healedAt - faultAt : null }
      : null,
    leaders: fleet.leaders.map((l) => ({ atMs: l.at - faultAt, leader: l.leader })),
    acts: fleet.acts(startMarks).map((a) => ({ instance: a.instance, what: a.what, atMs: a.at - faultAt })),
    resumedMs: resumedAt !== null ? resumedAt - faultAt : null,
    resumedBy,
    problems,
  };
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

