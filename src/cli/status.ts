import { join } from "node:path";
import type { Command } from "commander";
import { type CheckRules, diagnose, DIAGNOSES, observe, type TargetHealth } from "../checks/detector.ts";
import type { HaproxyObservation, Observation, RedisObservation } from "../checks/observation.ts";
import { Checker, checkTargets } from "../checks/round.ts";
import type { InstancesView } from "../daemon/peers.ts";
import { DaemonState, type Hold, type Maintenance } from "../daemon/state.ts";
import { errorMessage } from "../errors.ts";
import { silentLogger } from "../log.ts";
import { parseListen } from "../ops/http.ts";
import { countSpares, SPARE_ROLES, type SpareCounts } from "../daemon/spares.ts";
import { createProviders, redisAuthOf } from "../providers/index.ts";
import type { Topology } from "../topology/topology.ts";
import { Inventory } from "../topology/inventory.ts";
import { type ConfigOpts, EXIT_FAILED, loadFrom, out, setExitCode, table, withConfig } from "./common.ts";

export function registerStatus(program: Command): void {
  withConfig(
    program
      .command("status")
      .description("one round of checks: every server's role, state, latency and what each HAProxy says (exit 1 unless all is healthy); with several instances, also who leads"),
  )
    .option("--json", "print one JSON object")
    .option("--http <addr:port>", "several instances: the daemon asked who leads, and for its holds (default: http.listen of the config, else 127.0.0.1:9464)")
    .action(async (opts: ConfigOpts & { json?: boolean; http?: string }) => {
      const t = loadFrom(opts);
      const inv = Inventory.load(t, join(t.config.stateDir, "inventory.json"));
      const checker = new Checker(t.config.checks.timeoutMs, redisAuthOf(t));
      let observations: Observation[];
      try {
        observations = await checker.round(checkTargets(t, inv));
      } finally {
        checker.close();
      }
      // One round: a single failure counts as down here (fall 1), so status answers at once.
      const rules: CheckRules = { fall: 1, rise: 1, intervalMs: t.config.checks.intervalMs };
      const health = new Map<string, TargetHealth>(observations.map((o) => [o.target, observe(undefined, o, rules)]));
      const lastRoles = new Map<string, "primary" | "replica">();
      for (const o of observations) if (o.type === "redis" && o.role) lastRoles.set(o.target, o.role);
      const diagnoses = diagnose({ topology: t, addressOf: (h) => inv.addressOf(h), health, lastRoles });
      const spares = await listSpares(t);
      const healthy = observations.every((o) => o.ok) && diagnoses.length === 0;
      // The daemon's holds, from its state file: they matter most when the daemon is not answering.
      const state = DaemonState.load(join(t.config.stateDir, "daemon.json"), true);
      const now = Date.now();
      let pause = state.isPaused(now) ? state.pause : null;
      let maintenance = [...state.maintenanceAt(now)].map(([host, m]) => ({ host, ...m }));
      // Several instances: the holds are shared through etcd and the daemon holds them; it also says who leads.
      const coordinated = t.config.coordination ? await instancesOf(t, opts.http) : null;
      if (coordinated?.daemon) {
        pause = coordinated.daemon.pause ?? null;
        maintenance = coordinated.daemon.maintenance ?? [];
      }
      if (opts.json) {
        const instances = coordinated ? (coordinated.daemon?.instances ?? { ...coordinated.etcd, error: coordinated.error }) : undefined;
        out(JSON.stringify({ topology: t.name, healthy, paused: pause !== null, pause, maintenance, ...(instances ? { instances } : {}), observations, diagnoses, spares }));
      } else {
        if (coordinated) printInstances(coordinated);
        const when = (at: number | undefined) => (at === undefined ? "until resumed" : `until ${new Date(at).toISOString().replace(/\.\d+Z$/, "Z")}`);
        if (pause) out(`PAUSED ${when(pause.until)} by ${pause.by}${pause.reason ? ` (${pause.reason})` : ""}: no automatic recovery`);
        for (const m of maintenance) out(`MAINTENANCE ${m.host} ${when(m.until)} by ${m.by}${m.reason ? ` (${m.reason})` : ""}: no recovery of it`);
        if (pause || maintenance.length > 0) out();
        for (const c of spares) out(`spares: ${c.role} ${c.stopped + c.running} of ${c.wanted} (kept ${c.state}; stopped ${c.stopped}, running ${c.running}, pending ${c.pending})`);
        if (spares.length > 0) out();
        printStatus(observations);
        out();
        if (diagnoses.length === 0) out("diagnosis: NoProblem (every target is healthy)");
        for (const d of diagnoses) {
          out(`diagnosis: ${d.name} on ${d.host}: ${DIAGNOSES[d.name].description}`);
          for (const e of d.evidence) out(`  - ${e}`);
        }
      }
      if (!healthy) setExitCode(EXIT_FAILED);
    });
}

interface Coordinated {
  /** The daemon's answer: its view of the instances and its holds. */
  readonly daemon?: { readonly instances?: InstancesView; readonly pause?: Hold | null; readonly maintenance?: (Maintenance & { host: string })[] };
  /** When no daemon answers: what etcd says (leader, observers), or why it could not be read. */
  readonly etcd?: { readonly leader: string | null; readonly observers: readonly string[] };
  readonly base: string;
  readonly error?: string;
}

/** Asks the daemon's /status (its `instances`); when it does not answer, reads the leader and observers from etcd. */
async function instancesOf(t: Topology, http: string | undefined): Promise<Coordinated> {
  const listen = parseListen(http ?? t.config.http?.listen ?? "127.0.0.1:9464", http ? "--http" : "http.listen");
  const base = `http://${listen.address}:${listen.port}`;
  let error: string;
  try {
    const res = await fetch(`${base}/status`, { signal: AbortSignal.timeout(5000) });
    if (res.ok) return { daemon: (await res.json()) as Coordinated["daemon"] & object, base };
    error = `HTTP ${res.status}`;
  } catch (e) {
    error = errorMessage((e as { cause?: unknown }).cause ?? e);
  }
  try {
    const { Coordination } = await import("../coordination/index.ts");
    return { etcd: await Coordination.peek(t, silentLogger()), base, error };
  } catch (e) {
    return { base, error: `${error}; etcd: ${errorMessage(e).split("\n")[0]}` };
  }
}

function printInstances(c: Coordinated): void {
  const v = c.daemon?.instances;
  if (!v) {
    out(`INSTANCES: no daemon answers on ${c.base} (${c.error ?? "?"})`);
    if (c.etcd) out(`  from etcd: leader ${c.etcd.leader ?? "none"}; observers ${c.etcd.observers.join(", ") || "none"}`);
    out();
    return;
  }
  out(`INSTANCES: leader ${v.leader ?? "none"}; ${v.observers.length} of ${v.configured} observing (${v.observers.join(", ") || "none"}); ${v.quorum} must agree to confirm a failure`);
  out(`  this daemon is ${v.instance}: ${v.acting ? "acting" : `not acting: ${v.notActing ?? "?"}`}`);
  out(`  etcd ${v.connected ? "answers" : "does not answer"}; lease TTL ${v.lease.ttlSeconds} s${v.lease.msLeft !== null ? `, ${(Math.max(0, v.lease.msLeft) / 1000).toFixed(1)} s left` : ""}; leader changes seen: ${v.leaderChanges}`);
  for (const [inst, targets] of Object.entries(v.verdicts)) {
    for (const [target, x] of Object.entries(targets)) out(`  ${inst} sees ${target} ${x.status}${x.kind ? ` (${x.kind})` : ""} since ${new Date(x.since).toISOString().replace(/\.\d+Z$/, "Z")}`);
  }
  out();
}

/** The warm spares of each role the config keeps (the provider is asked only when it keeps some). */
async function listSpares(t: Topology): Promise<SpareCounts[]> {
  const roles = SPARE_ROLES.filter((r) => (t.config.provider.spares[r]?.count ?? 0) > 0);
  if (roles.length === 0) return [];
  const providers = await createProviders(t);
  try {
    const signal = AbortSignal.timeout(Math.max(t.config.checks.timeoutMs * 4, 10_000));
    return await Promise.all(roles.map(async (r) => countSpares(r, t, await providers.compute.spares(r, signal))));
  } finally {
    await providers.close();
  }
}

function printStatus(observations: readonly Observation[]): void {
  const redis = observations.filter((o): o is RedisObservation => o.type === "redis");
  const proxies = observations.filter((o): o is HaproxyObservation => o.type === "haproxy");
  const primaryOffset = new Map<number, number>();
  for (const o of redis) if (o.role === "primary" && o.offset !== undefined) primaryOffset.set(o.port, o.offset);
  const views = (o: RedisObservation) =>
    proxies
      .filter((p) => p.role === "haproxy")
      .map((p) => {
        if (!p.ok) return `${p.host}:?`;
        const s = p.servers.find((v) => v.server === o.host && v.port === o.port);
        return `${p.host}:${!s ? "-" : s.maint ? "MAINT" : s.up ? "UP" : "DOWN"}`;
      })
      .join(" ");
  out(
    table(
      ["HOST", "SERVER", "ROLE", "STATE", "LATENCY", "OFFSET", "LAG", "HAPROXY VIEW"],
      redis.map((o) => [
        o.host,
        `${o.address}:${o.port}`,
        o.role ?? "-",
        o.ok ? "up" : `DOWN (${o.failure?.kind})`,
        `${o.latencyMs} ms`,
        o.offset !== undefined ? String(o.offset) : "-",
        o.role === "replica" && o.offset !== undefined
          ? `${Math.max(0, (primaryOffset.get(o.port) ?? o.offset) - o.offset)} B${o.linkUp ? "" : " (link down)"}`
          : "-",
        views(o),
      ]),
    ),
  );
  out();
  out(
    table(
      ["HOST", "ROLE", "ADDRESS", "STATE", "LATENCY", "BACKENDS"],
      proxies.map((o) => [
        o.host,
        o.role,
        o.address,
        o.ok ? "up" : `DOWN (${o.failure?.kind}: ${o.failure?.message})`,
        `${o.latencyMs} ms`,
        o.servers.map((s) => `${s.backend}/${s.server}=${s.maint ? "MAINT" : s.up ? "UP" : "DOWN"}`).join(" "),
      ]),
    ),
  );
}
