/**
 * Prometheus metrics (`failoverd_*`), fed by the daemon's events: checks and failures per target, check latency,
 * each target's status and role, findings, recoveries per playbook and outcome, step durations, the last complete
 * cycle, drills and notification deliveries, and the build. One registry per daemon (never prom-client's global one),
 * so two daemons in one process (tests) never mix their numbers.
 *
 * Every series whose labels the config determines exists from the start (counters at 0, a target's status
 * `unknown`): `increase()` and `rate()` see a counter's first event (a series born at 1 shows no increase), and a
 * dashboard shows 0 rather than "no data". Durations are in seconds.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { DIAGNOSES, type DiagnosisName, type TargetStatus } from "../checks/detector.ts";
import type { DaemonEvents, RecoveryOrigin } from "../daemon/events.ts";
import type { ProbeFailureKind } from "../errors.ts";
import { PLAYBOOK_FOR } from "../recovery/registry.ts";
import type { PlaybookName } from "../recovery/types.ts";
import type { Topology } from "../topology/topology.ts";
import { VERSION } from "../version.ts";

/** What the metrics need of the daemon: its events, the paused flag, the last complete cycle, and its config. */
export interface MetricsSource {
  readonly events: { on<K extends keyof DaemonEvents>(name: K, fn: (e: DaemonEvents[K]) => void): () => void };
  readonly paused: boolean;
  /** The pause in force and when it ends by itself (no `until`: until resumed). */
  readonly pause?: { readonly until?: number } | null;
  /** The hosts in maintenance now, and until when. */
  readonly maintenance?: ReadonlyMap<string, { readonly until: number }>;
  lastCycleAt(): number | null;
  /** The topology whose label values are initialised at 0 (see `configure`). */
  readonly config?: Topology;
  /** Why the journal cannot be written (null: it can). */
  journalFault?(): { readonly error: string } | null;
}

const STATUSES: readonly TargetStatus[] = ["up", "down", "unknown"];

// Records over each union, so a new failure kind, diagnosis, playbook, origin or outcome makes the compiler ask for
// its place here (and its series exist from the start).
/** Failure kinds per target type: an HAProxy's Runtime API has no role and no LOADING. */
const FAILURE_KINDS: Readonly<Record<ProbeFailureKind, { readonly haproxy: boolean }>> = {
  refused: { haproxy: true },
  timeout: { haproxy: true },
  reset: { haproxy: true },
  "error-reply": { haproxy: true },
  protocol: { haproxy: true },
  "wrong-role": { haproxy: false },
  loading: { haproxy: false },
};
/** The role of the host a diagnosis names (null: never announced). */
const DIAGNOSIS_ROLE: Readonly<Record<DiagnosisName, "redis" | "haproxy" | "app" | null>> = {
  NoProblem: null,
  DeadPrimary: "redis",
  PrimaryRestartedEmpty: "redis",
  PrimaryRestarted: "redis",
  ReplicaLinkDown: "redis",
  ReplicaLagging: "redis",
  UnreachablePrimary: "redis",
  DeadReplica: "redis",
  UnreachableReplica: "redis",
  PairDown: "redis",
  TwoPrimaries: "redis",
  HaproxyDown: "haproxy",
  UnreachableHaproxy: "haproxy",
  AppProxyDown: "app",
};
const PLAYBOOKS = Object.keys({ failed_redis: 1, failed_haproxy: 1, switchover: 1 } satisfies Record<PlaybookName, 1>) as PlaybookName[];
const ORIGINS = Object.keys({ diagnosis: 1, operator: 1, drill: 1, resume: 1 } satisfies Record<RecoveryOrigin, 1>) as RecoveryOrigin[];
/** How a recovery that started can end (one whose first record could not be written never started: no series). */
type EndOutcome = DaemonEvents["recovery-end"]["outcome"];
const OUTCOMES = Object.keys({ succeeded: 1, "rolled-back": 1, failed: 1, interrupted: 1 } satisfies Record<EndOutcome, 1>) as EndOutcome[];
const DRILL_OUTCOMES = [...OUTCOMES, "skipped"] as const;
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const STEP_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900];

export class Metrics {
  readonly registry = new Registry();
  readonly contentType = this.registry.contentType;
  private readonly unsubscribe: (() => void)[] = [];

  readonly checks = new Counter({ name: "failoverd_checks_total", help: "Checks run, per target", labelNames: ["target", "type"], registers: [this.registry] });
  readonly checkFailures = new Counter({
    name: "failoverd_check_failures_total",
    help: "Failed checks, per target and kind of failure (refused, timeout, reset, error-reply, wrong-role, loading, protocol)",
    labelNames: ["target", "kind"],
    registers: [this.registry],
  });
  readonly checkLatency = new Histogram({
    name: "failoverd_check_duration_seconds",
    help: "How long a check took, per type of target",
    labelNames: ["type"],
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly lastLatency = new Gauge({ name: "failoverd_check_last_duration_seconds", help: "The last check's duration, per target", labelNames: ["target"], registers: [this.registry] });
  readonly targetStatus = new Gauge({
    name: "failoverd_target_status",
    help: "1 for the target's confirmed status (up, down, unknown), 0 for the others",
    labelNames: ["target", "status"],
    registers: [this.registry],
  });
  readonly linkUp = new Gauge({ name: "failoverd_replication_link_up", help: "1 while a replica's link to its primary is up, 0 while down", labelNames: ["target"], registers: [this.registry] });
  readonly linkDown = new Gauge({
    name: "failoverd_replication_link_down_seconds",
    help: "How long a replica's link to its primary has been down (0 while up)",
    labelNames: ["target"],
    registers: [this.registry],
  });
  readonly lagBytes = new Gauge({ name: "failoverd_replication_lag_bytes", help: "How many bytes of the replication stream a replica is behind its primary", labelNames: ["target"], registers: [this.registry] });
  readonly lagSeconds = new Gauge({
    name: "failoverd_replication_lag_seconds",
    help: "How old a replica's data is: how long ago its primary was at the replica's offset (writes only, pings ignored)",
    labelNames: ["target"],
    registers: [this.registry],
  });
  readonly connectedReplicas = new Gauge({ name: "failoverd_redis_connected_replicas", help: "Replicas a primary lists as online", labelNames: ["target"], registers: [this.registry] });
  readonly redisPrimary = new Gauge({ name: "failoverd_redis_primary", help: "1 when the Redis server answered as primary at its last check, 0 as replica", labelNames: ["target"], registers: [this.registry] });
  readonly diagnoses = new Counter({ name: "failoverd_diagnoses_total", help: "Findings announced, per diagnosis and decision", labelNames: ["diagnosis", "host", "decision"], registers: [this.registry] });
  readonly activeDiagnoses = new Gauge({ name: "failoverd_diagnosis_active", help: "1 while a finding lasts", labelNames: ["diagnosis", "host"], registers: [this.registry] });
  readonly recoveries = new Counter({ name: "failoverd_recoveries_total", help: "Recoveries ended, per playbook and outcome", labelNames: ["playbook", "outcome", "origin"], registers: [this.registry] });
  readonly recoveriesRunning = new Gauge({ name: "failoverd_recoveries_running", help: "Recoveries under way, per playbook", labelNames: ["playbook"], registers: [this.registry] });
  readonly recoveryDuration = new Histogram({
    name: "failoverd_recovery_duration_seconds",
    help: "How long a recovery took, per playbook and outcome",
    labelNames: ["playbook", "outcome"],
    buckets: STEP_BUCKETS,
    registers: [this.registry],
  });
  readonly stepDuration = new Histogram({
    name: "failoverd_step_duration_seconds",
    help: "How long a recovery step's attempt took, per playbook, step and result",
    labelNames: ["playbook", "step", "ok"],
    buckets: STEP_BUCKETS,
    registers: [this.registry],
  });
  readonly drills = new Counter({ name: "failoverd_drills_total", help: "Drills run, per pair and outcome (succeeded, failed, rolled-back, skipped)", labelNames: ["pair", "outcome"], registers: [this.registry] });
  readonly lastDrill = new Gauge({ name: "failoverd_drill_last_timestamp_seconds", help: "When the last drill of a pair ended, per outcome", labelNames: ["pair", "outcome"], registers: [this.registry] });
  readonly notifications = new Counter({
    name: "failoverd_notifications_total",
    help: "Webhook deliveries, per webhook and result (sent, retried, dropped)",
    labelNames: ["webhook", "result"],
    registers: [this.registry],
  });

  readonly spares = new Gauge({
    name: "failoverd_spares",
    help: "Warm spares per role and state (stopped, running, pending; wanted: the count the config keeps)",
    labelNames: ["role", "state"],
    registers: [this.registry],
  });

  /** Targets whose status series exist (set to `unknown` once, then by the daemon's status events). */
  private readonly statusKnown = new Set<string>();

  constructor(source: MetricsSource, options: { processMetrics?: boolean } = {}) {
    const r = this.registry;
    new Gauge({ name: "failoverd_build_info", help: "Always 1: the failoverd version and the Node.js version it runs on", labelNames: ["version", "node"], registers: [r] }).set(
      { version: VERSION, node: process.version },
      1,
    );
    new Gauge({
      name: "failoverd_last_cycle_timestamp_seconds",
      help: "Every monitored target has been checked since this time (0 before the first complete round)",
      registers: [r],
      collect() {
        const at = source.lastCycleAt();
        this.set(at === null ? 0 : at / 1000);
      },
    });
    new Gauge({
      name: "failoverd_paused",
      help: "1 while automatic recovery is paused",
      registers: [r],
      collect() {
        this.set(source.paused ? 1 : 0);
      },
    });
    new Gauge({
      name: "failoverd_journal_writable",
      help: "1 while the recovery journal can be written, 0 while it cannot (no recovery starts then)",
      registers: [r],
      collect() {
        this.set(source.journalFault?.() ? 0 : 1);
      },
    });
    new Gauge({
      name: "failoverd_pause_expiry_timestamp_seconds",
      help: "When the pause in force ends by itself (0: not paused, or paused until resumed)",
      registers: [r],
      collect() {
        this.set((source.pause?.until ?? 0) / 1000);
      },
    });
    new Gauge({
      name: "failoverd_maintenance_expiry_timestamp_seconds",
      help: "Per host in maintenance (no recovery of its pair or tier): when the maintenance ends by itself",
      labelNames: ["host"],
      registers: [r],
      collect() {
        this.reset();
        for (const [host, m] of source.maintenance ?? []) this.set({ host }, m.until / 1000);
      },
    });
    if (options.processMetrics !== false) collectDefaultMetrics({ register: r, prefix: "failoverd_" });
    const on = <K extends keyof DaemonEvents>(k: K, fn: (e: DaemonEvents[K]) => void) => this.unsubscribe.push(source.events.on(k, fn));
    on("observation", ({ observation: o }) => {
      const type = o.type === "redis" ? "redis" : o.role;
      this.checks.inc({ target: o.target, type });
      if (!o.ok && o.failure) this.checkFailures.inc({ target: o.target, kind: o.failure.kind });
      this.checkLatency.observe({ type }, o.latencyMs / 1000);
      this.lastLatency.set({ target: o.target }, o.latencyMs / 1000);
      if (o.type === "redis" && o.ok && o.role) this.redisPrimary.set({ target: o.target }, o.role === "primary" ? 1 : 0);
    });
    // Set on a change only: three labelled gauges per check add up with thousands of targets (issue 5, scale).
    on("status", ({ target, to }) => {
      this.statusKnown.add(target);
      for (const s of STATUSES) this.targetStatus.set({ target, status: s }, s === to ? 1 : 0);
    });
    on("diagnosis", (d) => {
      this.diagnoses.inc({ diagnosis: d.diagnosis.name, host: d.diagnosis.host, decision: d.decision.kind });
      this.activeDiagnoses.set({ diagnosis: d.diagnosis.name, host: d.diagnosis.host }, 1);
    });
    on("resolved", (d) => this.activeDiagnoses.set({ diagnosis: d.diagnosis.name, host: d.diagnosis.host }, 0));
    on("recovery-start", (e) => this.recoveriesRunning.inc({ playbook: e.playbook }));
    on("step-end", (e) => this.stepDuration.observe({ playbook: e.playbook, step: e.step, ok: String(e.ok) }, e.durationMs / 1000));
    on("recovery-end", (e) => {
      this.recoveriesRunning.dec({ playbook: e.playbook });
      this.recoveries.inc({ playbook: e.playbook, outcome: e.outcome, origin: e.origin });
      if (e.outcome !== "interrupted") this.recoveryDuration.observe({ playbook: e.playbook, outcome: e.outcome }, e.durationMs / 1000);
    });
    // Replication, every round: per replica its link, how long it has been down, its lag in bytes and in time; per
    // primary its online replicas. A server that left the pair's answer (down, under recovery) loses its series.
    const replicaLabels = new Set<string>();
    const primaryLabels = new Set<string>();
    on("replication", ({ rows }) => {
      const replicas = new Set<string>();
      const primaries = new Set<string>();
      for (const r of rows) {
        if (r.primary) {
          const target = `${r.primary}:${r.port}`;
          primaries.add(target);
          this.connectedReplicas.set({ target }, r.connectedReplicas ?? 0);
        }
        if (r.replica) {
          const target = `${r.replica}:${r.port}`;
          replicas.add(target);
          this.linkUp.set({ target }, r.linkUp ? 1 : 0);
          this.linkDown.set({ target }, r.linkUp ? 0 : (r.linkDownMs ?? 0) / 1000);
          if (r.lagBytes !== undefined) this.lagBytes.set({ target }, r.lagBytes);
          if (r.lagMs !== undefined) this.lagSeconds.set({ target }, r.lagMs / 1000);
        }
      }
      for (const t of replicaLabels) {
        if (replicas.has(t)) continue;
        for (const g of [this.linkUp, this.linkDown, this.lagBytes, this.lagSeconds]) g.remove({ target: t });
      }
      for (const t of primaryLabels) if (!primaries.has(t)) this.connectedReplicas.remove({ target: t });
      replicaLabels.clear();
      for (const t of replicas) replicaLabels.add(t);
      primaryLabels.clear();
      for (const t of primaries) primaryLabels.add(t);
    });
    on("spares", (c) => {
      for (const state of ["stopped", "running", "pending", "wanted"] as const) this.spares.set({ role: c.role, state }, c[state]);
    });
    on("drill", (d) => {
      const pair = d.pair.join("+");
      this.drills.inc({ pair, outcome: d.outcome });
      this.lastDrill.set({ pair, outcome: d.outcome }, d.endedAt / 1000);
    });
    for (const playbook of PLAYBOOKS) {
      this.recoveriesRunning.inc({ playbook }, 0);
      for (const outcome of OUTCOMES) {
        for (const origin of ORIGINS) this.recoveries.inc({ playbook, outcome, origin }, 0);
        if (outcome !== "interrupted") this.recoveryDuration.zero({ playbook, outcome });
      }
    }
    if (source.config) this.configure(source.config);
  }

  /**
   * Creates at 0 every series the config names (start, SIGHUP): per target its checks, failures of each kind and
   * status (`unknown` until the first check says); per host the findings its role can have and their decisions; per
   * drill its outcomes. A series already there keeps its value.
   */
  configure(t: Topology): void {
    for (const role of ["redis", "haproxy"] as const) {
      const count = t.config.provider.spares[role]?.count ?? 0;
      if (count === 0) continue;
      this.spares.set({ role, state: "wanted" }, count);
      for (const state of ["stopped", "running", "pending"] as const) this.spares.inc({ role, state }, 0);
    }
    const targets = [
      ...t.redisHosts.flatMap((h) => h.ports.map((p) => ({ target: `${h.name}:${p}`, type: "redis" as const }))),
      ...t.haproxyHosts.map((h) => ({ target: h.name, type: "haproxy" as const })),
      ...t.appHosts.map((h) => ({ target: h.name, type: "app" as const })),
    ];
    for (const { target, type } of targets) {
      this.checks.inc({ target, type }, 0);
      this.checkLatency.zero({ type });
      for (const [kind, k] of Object.entries(FAILURE_KINDS)) if (type === "redis" || k.haproxy) this.checkFailures.inc({ target, kind }, 0);
      if (!this.statusKnown.has(target)) {
        this.statusKnown.add(target);
        for (const s of STATUSES) this.targetStatus.set({ target, status: s }, s === "unknown" ? 1 : 0);
      }
    }
    for (const [diagnosis, role] of Object.entries(DIAGNOSIS_ROLE) as [DiagnosisName, string | null][]) {
      for (const h of t.hosts.values()) {
        if (h.role !== role) continue;
        this.activeDiagnoses.inc({ diagnosis, host: h.name }, 0);
        this.diagnoses.inc({ diagnosis, host: h.name, decision: "alert" }, 0);
        if (PLAYBOOK_FOR[diagnosis] && DIAGNOSES[diagnosis].actionable) this.diagnoses.inc({ diagnosis, host: h.name, decision: "recover" }, 0);
      }
    }
    for (const drill of t.config.drills) {
      for (const outcome of DRILL_OUTCOMES) this.drills.inc({ pair: drill.pair.join("+"), outcome }, 0);
    }
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  close(): void {
    for (const u of this.unsubscribe.splice(0)) u();
    this.registry.clear();
  }
}
