/**
 * The daemon's state as one JSON-friendly object (GET /status, the status page): the topology with each host's
 * address now, every target's confirmed status and role, the current findings, and the current and recent
 * recoveries with their steps (from the journal).
 */
import type { PortReplication } from "../checks/replication.ts";
import type { InstancesView } from "./peers.ts";
import type { SpareCounts } from "./spares.ts";
import type { TargetHealth, TargetStatus } from "../checks/detector.ts";
import type { RecoverySummary } from "../recovery/journal.ts";
import type { Topology } from "../topology/topology.ts";
import type { ActiveDiagnosis } from "./events.ts";
import type { JournalFault } from "./journal-health.ts";
import type { Hold, Maintenance } from "./state.ts";

export interface TargetView {
  readonly id: string;
  readonly host: string;
  readonly type: "redis" | "haproxy";
  readonly port?: number;
  readonly status: TargetStatus | "unmonitored";
  readonly since?: number;
  readonly role?: "primary" | "replica";
  readonly latencyMs?: number;
  readonly lastCheckAt?: number;
  readonly failures: number;
  readonly failure?: string;
  readonly offset?: number;
  readonly linkUp?: boolean;
}

export interface HostView {
  readonly name: string;
  readonly role: "redis" | "haproxy" | "app";
  readonly address: string;
  readonly monitored: boolean;
  /** The host's maintenance window, while it lasts. */
  readonly maintenance?: Maintenance;
  readonly targets: readonly TargetView[];
}

export interface RecoveryView {
  readonly id: string;
  readonly playbook: string;
  readonly host: string;
  readonly diagnosis: string;
  readonly startedAt: number;
  readonly endedAt?: number;
  readonly outcome?: string;
  readonly error?: string;
  readonly running: boolean;
  readonly dryRun: boolean;
  readonly steps: readonly { step: string; startedAt: number; endedAt?: number; ok?: boolean; error?: string; attempts: number }[];
}

/** What one HAProxy (or app-side HAProxy) routes where, from its last check (`show servers state`). */
export interface RouteView {
  readonly host: string;
  readonly role: "haproxy" | "app";
  /** Its last check answered; when not, the servers are what it said before. */
  readonly ok: boolean;
  readonly checkedAt?: number;
  readonly backends: readonly {
    readonly backend: string;
    /** The servers' port (Redis port behind an HAProxy, HAProxy frontend behind an app-side one). */
    readonly port: number;
    /** The server it routes new connections to: the first up and not in maint (null: none). */
    readonly to: string | null;
    readonly servers: readonly { readonly server: string; readonly address: string; readonly state: "up" | "down" | "maint" }[];
  }[];
}

export interface StatusView {
  readonly topology: string;
  readonly at: number;
  readonly startedAt: number;
  readonly paused: boolean;
  /** The pause in force: who, why, since and until when (no `until`: until resumed). */
  readonly pause: Hold | null;
  /** The maintenance windows in force. */
  readonly maintenance: readonly (Maintenance & { readonly host: string })[];
  readonly dryRun: boolean;
  /** Every monitored target has been checked since this time (null before the first complete round). */
  readonly lastCycleAt: number | null;
  readonly hosts: readonly HostView[];
  readonly pairs: readonly { readonly hosts: readonly [string, string]; readonly ports: readonly number[]; readonly primaries: Record<string, string | null> }[];
  readonly diagnoses: readonly ActiveDiagnosis[];
  readonly recoveries: { readonly current: readonly RecoveryView[]; readonly recent: readonly RecoveryView[] };
  /** Every pair's replication, per port: the replica's link (and for how long it has been down), lag in bytes and time. */
  readonly replication?: readonly PortReplication[];
  /** The config file, when it was last reloaded (SIGHUP), and since when a reload waits for a recovery to end. */
  readonly config: ConfigView;
  /** Null while the journal can be written; otherwise why not, and since when: no recovery starts meanwhile. */
  readonly journal: JournalFault | null;
  /** Each HAProxy's routing, per backend. */
  readonly routing: readonly RouteView[];
  /** Several instances coordinated through etcd: who leads, who publishes, their verdicts. Absent: a single instance. */
  readonly instances?: InstancesView;
  /** The warm spares per role kept (provider.spares), as last listed. */
  readonly spares: readonly SpareCounts[];
}

export interface ConfigView {
  readonly source: string;
  readonly reloadedAt: number | null;
  readonly reloadPendingSince: number | null;
}

export interface StatusInput {
  readonly topology: Topology;
  readonly now: number;
  readonly startedAt: number;
  readonly paused: boolean;
  readonly pause?: Hold | null;
  readonly maintenance?: ReadonlyMap<string, Maintenance>;
  readonly dryRun: boolean;
  readonly lastCycleAt: number | null;
  readonly addressOf: (host: string) => string;
  readonly health: ReadonlyMap<string, TargetHealth>;
  readonly lastRoles: ReadonlyMap<string, "primary" | "replica">;
  readonly unmonitored: ReadonlySet<string>;
  readonly diagnoses: readonly ActiveDiagnosis[];
  readonly recoveries: readonly RecoverySummary[];
  /** Recovery ids running now in this daemon. */
  readonly running: ReadonlySet<string>;
  readonly replication?: readonly PortReplication[];
  readonly recentLimit?: number;
  readonly config: ConfigView;
  readonly journal: JournalFault | null;
  readonly spares?: readonly SpareCounts[];
}

export function buildStatus(i: StatusInput): StatusView {
  const target = (id: string, host: string, type: "redis" | "haproxy", port?: number): TargetView => {
    const h = i.health.get(id);
    const o = h?.last;
    const base = {
      id,
      host,
      type,
      ...(port !== undefined ? { port } : {}),
      status: i.unmonitored.has(host) ? ("unmonitored" as const) : (h?.status ?? "unknown"),
      failures: h?.failures ?? 0,
      ...(h ? { since: h.since, latencyMs: o?.latencyMs, lastCheckAt: o?.at } : {}),
      ...(o?.failure ? { failure: `${o.failure.kind}: ${o.failure.message}` } : {}),
    };
    if (type !== "redis") return base;
    const role = o?.type === "redis" && o.ok ? o.role : i.lastRoles.get(id);
    return {
      ...base,
      ...(role ? { role } : {}),
      ...(o?.type === "redis" && o.offset !== undefined ? { offset: o.offset } : {}),
      ...(o?.type === "redis" && o.linkUp !== undefined ? { linkUp: o.linkUp } : {}),
    };
  };
  const hosts: HostView[] = [...i.topology.hosts.values()].map((h) => ({
    name: h.name,
    role: h.role,
    address: i.addressOf(h.name),
    monitored: !i.unmonitored.has(h.name),
    ...(i.maintenance?.has(h.name) ? { maintenance: i.maintenance.get(h.name)! } : {}),
    targets: h.role === "redis" ? h.ports.map((p) => target(`${h.name}:${p}`, h.name, "redis", p)) : [target(h.name, h.name, "haproxy")],
  }));
  const pairs = i.topology.pairs.map((p) => ({
    hosts: p.hosts,
    ports: p.ports,
    primaries: Object.fromEntries(p.ports.map((port) => [String(port), p.hosts.find((h) => i.lastRoles.get(`${h}:${port}`) === "primary") ?? null])),
  }));
  const view = (r: RecoverySummary): RecoveryView => ({
    id: r.id,
    playbook: r.playbook,
    host: r.host,
    diagnosis: r.diagnosis,
    startedAt: r.startedAt,
    ...(r.endedAt !== undefined ? { endedAt: r.endedAt } : {}),
    ...(r.outcome !== undefined ? { outcome: r.outcome } : {}),
    ...(r.error !== undefined ? { error: r.error } : {}),
    running: i.running.has(r.id),
    dryRun: r.dryRun,
    steps: r.steps,
  });
  const all = i.recoveries.map(view);
  const routing = [...i.topology.haproxyHosts, ...i.topology.appHosts].map((h): RouteView => {
    const o = i.health.get(h.name)?.last;
    const servers = o?.type === "haproxy" ? o.servers : [];
    const backends = [...new Set(servers.map((s) => s.backend))].map((backend) => {
      const of = servers.filter((s) => s.backend === backend);
      const state = (s: (typeof of)[number]) => (s.maint ? ("maint" as const) : s.up ? ("up" as const) : ("down" as const));
      return {
        backend,
        port: of[0]?.port ?? 0,
        to: of.find((s) => state(s) === "up")?.server ?? null,
        servers: of.map((s) => ({ server: s.server, address: s.address, state: state(s) })),
      };
    });
    return { host: h.name, role: h.role, ok: o?.ok === true, ...(o ? { checkedAt: o.at } : {}), backends };
  });
  return {
    topology: i.topology.name,
    at: i.now,
    startedAt: i.startedAt,
    paused: i.paused,
    pause: i.pause ?? null,
    maintenance: [...(i.maintenance ?? [])].map(([host, m]) => ({ host, ...m })),
    dryRun: i.dryRun,
    lastCycleAt: i.lastCycleAt,
    hosts,
    pairs,
    diagnoses: i.diagnoses,
    ...(i.replication ? { replication: i.replication } : {}),
    recoveries: {
      current: all.filter((r) => r.running || r.outcome === undefined),
      recent: all.filter((r) => !r.running && r.outcome !== undefined).slice(-(i.recentLimit ?? 20)).reverse(),
    },
    config: i.config,
    journal: i.journal,
    routing,
    spares: i.spares ?? [],
  };
}

/**
 * The time since which every monitored target has been checked: the oldest "last check" among them. Null while a
 * monitored target has never been checked.
 */
export function lastCompleteCycle(ids: readonly string[], health: ReadonlyMap<string, TargetHealth>): number | null {
  let oldest = Number.POSITIVE_INFINITY;
  for (const id of ids) {
    const at = health.get(id)?.last.at;
    if (at === undefined) return null;
    if (at < oldest) oldest = at;
  }
  return Number.isFinite(oldest) ? oldest : null;
}
