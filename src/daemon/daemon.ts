/**
 * The daemon: checks on schedule -> detector -> decider -> runner. One actor: only the lease holder acts, one
 * recovery per group at a time, and an unfinished recovery in the journal is resumed before anything new starts.
 *
 * Every target has its own check loop, scheduled from the start of its previous check (no drift); a check has a
 * deadline, so a hung server delays its own loop and never the others.
 */
import { join } from "node:path";
import { redisBackendName } from "../admin/haproxy-config.ts";
import { type CheckRules, type Diagnosis, diagnose, nextCheckDelay, observe, type TargetHealth, type TargetStatus } from "../checks/detector.ts";
import type { Observation, RedisObservation } from "../checks/observation.ts";
import { classifyRestart, OffsetHistory, type PortReplication, type RestartEvidence, replicationOf } from "../checks/replication.ts";
import { type CheckTarget, Checker, checkTargets, targetId } from "../checks/round.ts";
import { witnessedDown } from "../checks/witnessed.ts";
import { ConfigError, errorMessage } from "../errors.ts";
import type { Logger } from "../log.ts";
import { redisAuthOf } from "../providers/index.ts";
import { DryRunRecorder, dryRun } from "../providers/dry-run.ts";
import type { Providers } from "../providers/types.ts";
import { cooldownKeysOf, decide, type Decision, failedKeyOf, groupOf } from "../recovery/decider.ts";
import { FileJournal, type Journal, type JournalRecord, MemoryJournal, type RecoverySummary, summarize, unfinished } from "../recovery/journal.ts";
import { type Lease, LocalLease } from "../recovery/lease.ts";
import { playbookFor } from "../recovery/registry.ts";
import { chaosPauseFromEnv, type RecoveryMeta, Runner } from "../recovery/runner.ts";
import type { PromoteResult } from "../recovery/steps/redis.ts";
import type { MonitorControl, PlaybookName } from "../recovery/types.ts";
import { Inventory, type Placement } from "../topology/inventory.ts";
import { type Topology, twinOf } from "../topology/topology.ts";
import { type History, historyOf } from "../recovery/history.ts";
import { planRecovery, type Plan } from "../recovery/plan.ts";
import { Controls, followShared, type HoldRequest } from "./controls.ts";
import { type EventBus as Bus, EventBus, type RecoveryOrigin } from "./events.ts";
import { DutyCycle } from "./duty-cycle.ts";
import { type JournalFault, WatchedJournal } from "./journal-health.ts";
import { RecoveryGate } from "./recovery-gate.ts";
import { Findings, findingKey } from "./findings.ts";
import { checkFailover, type FailoverCheck, planSwitchover, type SwitchoverRequest } from "./intents.ts";
import type { Peers } from "./peers.ts";
import { forwardRunnerEvents } from "./recovery-events.ts";
import { Sleeper } from "./sleeper.ts";
import { type Route, SyncGuard } from "./sync-guard.ts";
import { SparePool } from "./spares.ts";
import { DaemonState, type Hold, type Maintenance } from "./state.ts";
import { buildStatus, lastCompleteCycle, type StatusView } from "./status.ts";

export interface DaemonOptions {
  readonly topology: Topology;
  readonly providers: Providers;
  readonly log: Logger;
  /** Shadow mode: monitor for real, describe the recovery it would run, change nothing. */
  readonly dryRun?: boolean;
  readonly journal?: Journal;
  readonly lease?: Lease;
  /** The other instances when several coordinate (quorum confirmation, shared inventory); absent: acting alone. */
  readonly peers?: Peers;
  readonly now?: () => number;
  /** Benchmarks: after every scheduled check, when it was due and when it started (their difference is its lateness). */
  readonly onCheck?: (target: string, dueAt: number, startedAt: number, ok: boolean) => void;
}

/** The current targets by id, and the Redis ones by port (a pair's two servers share it). */
interface TargetIndex {
  readonly of: readonly CheckTarget[];
  readonly byId: Map<string, CheckTarget>;
  readonly byPort: Map<number, CheckTarget[]>;
}

export class Daemon {
  private topology: Topology;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly stopping = new AbortController();
  private readonly sleeper = new Sleeper(this.stopping.signal);
  private targetIndex: TargetIndex | null = null;
  /** When each target was last checked early because its connection was lost (see checkSoon). */
  private readonly checkedSoon = new Map<string, number>();
  /**
   * Diagnoses and decisions, asked for by every check of a down target. They look at the whole topology: with
   * thousands of targets down at once (the monitor's own network cut) one per check was O(N) work per check, O(N²) per
   * interval, and the daemon fell behind its own checks. Now requests in one turn share an evaluation, and
   * evaluations take at most a tenth of the time; while they are cheap (tens of microseconds) nothing waits.
   */
  private readonly evaluation = new DutyCycle(() => this.evaluate(), {
    waitFactor: 9,
    minWaitMs: () => (this.opts.peers !== undefined && !this.mayAct() ? (this.rules.fastIntervalMs ?? this.rules.intervalMs) : 0),
    stopped: () => this.stopping.signal.aborted,
    onError: (e) => this.log.error({ err: errorMessage(e) }, "evaluation failed unexpectedly (a bug); the next check asks again"),
  });
  private readonly health = new Map<string, TargetHealth>();
  private readonly lastRoles = new Map<string, "primary" | "replica">();
  /** Each Redis server's last healthy observation (not replaced by a restart that lost the dataset). */
  private readonly lastGood = new Map<string, RedisObservation>();
  /** Servers that came back with another identity: kept while the lost dataset matters, a while for the others. */
  private readonly restarts = new Map<string, RestartEvidence>();
  /** Replicas whose resync is held while their primary may have restarted empty (see SyncGuard). */
  private readonly syncGuard: SyncGuard;
  /** Replicas looked at for a resync hold an earlier daemon left behind (once each). */
  private readonly leftoverChecked = new Set<string>();
  /** Each primary's recent offsets: lag in time and the data-loss estimate in time. */
  private readonly offsets = new OffsetHistory();
  /** When each replica's link was first seen down (for servers that do not count it themselves). */
  private readonly linkDownSince = new Map<string, number>();
  /** Targets whose latest check failed, or that are down: while any is, every observation is evidence to weigh. */
  private readonly failing = new Set<string>();
  /** Groups whose next promotion an operator allowed to lose data, until when. */
  private readonly dataLossAccepted = new Map<string, { until: number; by: string }>();
  /** The replication of every pair at the last evaluation. */
  private replication: PortReplication[] = [];
  private roundTimer: NodeJS.Timeout | null = null;
  /** The recovery running in each group (a pair, an HAProxy): of which host, and its run. */
  private readonly recoveries = new Map<string, { readonly host: string; readonly run: Promise<void> }>();
  private readonly loops: Promise<void>[] = [];
  private readonly lastAlert = new Map<string, { text: string; at: number }>();
  private inventory: Inventory;
  private checker: Checker;
  /** The journal, watched: a recovery starts only once its first record is written (see RecoveryGate). */
  private readonly journal: WatchedJournal;
  private readonly gate = new RecoveryGate({
    journalRetryMs: () => Math.max(100, this.rules.intervalMs),
    retryBaseMs: () => Math.max(1000, this.rules.intervalMs * this.rules.fall),
    retryMaxMs: () => Math.min(this.topology.config.recovery.cooldownMs, 16 * Math.max(1000, this.rules.intervalMs * this.rules.fall)),
  });
  private readonly lease: Lease;
  private readonly state: DaemonState;
  private readonly providers: Providers;
  private targets: CheckTarget[] = [];
  /** What the daemon tells its observers (metrics, notifications, HTTP, drills); it knows nothing of them. */
  readonly events: Bus;
  private readonly findings: Findings;
  /** The operator's pause and maintenance windows, with their expiry. */
  private readonly controls: Controls;
  /** Several instances: start has adopted the store's holds; from then on a whole read of the store reconciles them. */
  private sharedAdopted = false;
  /** Recovery ids running now. */
  private readonly runningIds = new Set<string>();
  private startedAt = 0;
  /** Warm spares (provider.spares): refilled in the background, never during a recovery. */
  private readonly spares: SparePool;
  /** A config reload waiting for the running recoveries to end (SIGHUP during a recovery). */
  private pendingReload: { readonly topology: Topology; readonly since: number } | null = null;
  private reloadedAt: number | null = null;
  /** The journal was read since the lease was last taken: until then a lease holder does not act (see takeOver). */
  private tookOver = false;
  private takingOver = false;

  constructor(private readonly opts: DaemonOptions) {
    this.topology = opts.topology;
    this.log = opts.log;
    this.now = opts.now ?? Date.now;
    const dir = opts.topology.config.stateDir;
    this.inventory = Inventory.load(opts.topology, join(dir, "inventory.json"));
    this.checker = new Checker(opts.topology.config.checks.timeoutMs, redisAuthOf(opts.topology), undefined, (ep) => this.checkSoon(ep));
    this.journal = new WatchedJournal(opts.journal ?? (opts.dryRun ? new MemoryJournal() : new FileJournal(join(dir, "journal.jsonl"))), opts.log, this.now);
    this.lease = opts.lease ?? new LocalLease(join(dir, "daemon.lock"));
    this.state = DaemonState.load(join(dir, "daemon.json"), opts.dryRun === true);
    const recorder = new DryRunRecorder((a) => this.log.info({ provider: a.provider, dryRun: true }, a.description));
    this.providers = opts.dryRun ? dryRun(opts.providers, recorder) : opts.providers;
    this.events = new EventBus((event, err) => this.log.error({ event, err: errorMessage(err) }, "an event listener failed (a bug); the daemon goes on"));
    this.findings = new Findings(this.events, (key) => {
      // The acting instance forgets an acknowledgement whose finding is gone (one writer, not every instance).
      if (this.mayAct()) opts.peers?.controls.forgetAck(key).catch((e: unknown) => this.log.debug({ err: errorMessage(e), key }, "could not forget an acknowledgement in etcd"));
    });
    this.syncGuard = new SyncGuard({
      redis: () => this.providers.redis,
      haproxy: () => this.providers.haproxy,
      log: this.log.child({ component: "sync-guard" }),
      // Twice the detection budget (fall fast re-checks and a timeout) and an interval: a crash is confirmed, and its
      // recovery has taken the drain over, well within it.
      drainLimitMs: () => {
        const r = this.rules;
        return 2 * (r.fall * (r.fastIntervalMs ?? r.intervalMs) + this.topology.config.checks.timeoutMs) + r.intervalMs;
      },
      onDrainLimit: (primary) => this.drainLimitReached(primary),
      now: this.now,
    });
    this.spares = new SparePool({
      topology: () => this.topology,
      compute: this.providers.compute,
      log: this.log.child({ component: "spares" }),
      events: this.events,
      busy: () => this.recoveries.size > 0 || !this.mayAct(),
      stopping: this.stopping.signal,
      now: this.now,
    });
    opts.peers?.onChange(() => this.evaluation.request());
    opts.peers?.onPlacements((p) => this.applyPlacements(p));
    this.controls = new Controls({
      state: this.state,
      journal: this.journal,
      events: this.events,
      log: this.log,
      now: this.now,
      changed: () => this.evaluation.request(),
      shared: opts.peers?.controls,
    });
    if (opts.peers) followShared(opts.peers.controls, { controls: this.controls, findings: this.findings, now: this.now, ready: () => this.sharedAdopted });
  }

  get rules(): CheckRules {
    const c = this.topology.config.checks;
    return { fall: c.fall, rise: c.rise, intervalMs: c.intervalMs, fastIntervalMs: c.fastIntervalMs ?? Math.max(10, Math.floor(c.intervalMs / 4)) };
  }

  /** Takes the lease, resumes any unfinished recovery, and starts the check loops. */
  async start(): Promise<void> {
    if (!this.opts.dryRun) await this.lease.acquire();
    this.startedAt = this.now();
    const shared = this.opts.dryRun ? null : await this.opts.peers?.placements();
    if (shared) this.applyPlacements(shared);
    let records: Awaited<ReturnType<Journal["read"]>>;
    try {
      records = await this.journal.read();
      // Several instances: the holds and acknowledgements every instance shares replace the state file's.
      const held = this.opts.dryRun ? null : await this.opts.peers?.controls.read();
      if (held) {
        this.controls.adopt(held);
        for (const [key, ack] of held.acks) this.findings.acknowledgeShared(key, ack, this.now());
        this.sharedAdopted = true;
      }
    } catch (e) {
      // A corrupt journal stops the start: give the lease back.
      if (!this.opts.dryRun) await this.lease.release();
      throw e;
    }
    const pending = unfinished(records);
    this.adoptCooldowns(records);
    // A pause or maintenance that expired while the daemon was down ends now; the rest end at their time.
    await this.controls.expire();
    this.targets = checkTargets(this.topology, this.inventory);
    const c = this.topology.config.checks;
    this.log.info(
      { targets: this.targets.length, intervalMs: c.intervalMs, fall: c.fall, dryRun: this.opts.dryRun === true },
      `failoverd started on topology ${this.topology.name}: ${this.targets.length} targets, down after ${c.fall} failed checks every ${c.intervalMs} ms`,
    );
    // Discover roles before deciding anything: one round first.
    const first = await this.checker.round(this.targets.filter((t) => !this.state.unmonitored.has(t.host)));
    for (const o of first) this.ingest(o, false);
    this.logRoles();
    if (this.opts.dryRun || this.lease.isHeld()) {
      for (const r of pending) {
        this.startRecovery(r.playbook as PlaybookName, r.host, { diagnosis: r.diagnosis, failingSince: r.failingSince }, r, "resume");
      }
      this.tookOver = true;
    }
    this.lease.onChange?.((held) => {
      if (held) void this.takeOver();
      else this.tookOver = false;
    });
    // Loops start spread over one interval, so checks never come in one burst per interval (the first round just ran).
    const t0 = this.now();
    const n = this.targets.length;
    for (const [i, t] of this.targets.entries()) this.loops.push(this.loop(targetId(t), t0 + Math.floor((i * this.rules.intervalMs) / n)));
    // Replication health, two primaries, lag: weighed every round, whatever else is up or down.
    this.roundTimer = setInterval(() => this.evaluation.request(), this.rules.intervalMs);
    this.roundTimer.unref();
    this.afterRecoveries();
  }

  /** No recovery runs: the spare pool is refilled (a dry run only looks at it: it would describe launches forever). */
  private afterRecoveries(): void {
    if (this.recoveries.size > 0 || !this.spares.enabled) return;
    if (this.opts.dryRun) void this.spares.observe();
    else this.spares.refill();
  }

  /** Whether this instance may act now: it holds the lease and has read the journal since taking it. */
  private mayAct(): boolean {
    return this.opts.dryRun === true || (this.lease.isHeld() && this.tookOver);
  }

  /**
   * This instance just took the lease (another instance died, was cut off, or resigned): it reads the journal and
   * resumes the recovery that instance left unfinished, at the step it reached, before it decides anything new.
   */
  private async takeOver(): Promise<void> {
    if (this.takingOver || this.tookOver || this.stopping.signal.aborted) return;
    this.takingOver = true;
    try {
      const shared = await this.opts.peers?.placements();
      if (shared) this.applyPlacements(shared);
      const records = await this.journal.read();
      if (!this.lease.isHeld()) return;
      this.adoptCooldowns(records);
      for (const r of unfinished(records)) {
        if (this.runningIds.has(r.id) || this.recoveries.has(groupOf(this.topology, r.host))) continue;
        this.log.warn({ recoveryId: r.id }, `took over: resuming the unfinished recovery ${r.id} (${r.playbook} for ${r.host})`);
        this.startRecovery(r.playbook as PlaybookName, r.host, { diagnosis: r.diagnosis, failingSince: r.failingSince }, r, "resume");
      }
      this.tookOver = true;
      this.evaluation.request();
    } catch (e) {
      this.log.error({ err: errorMessage(e) }, "taking over failed (the journal could not be read); trying again");
      setTimeout(() => {
        if (this.lease.isHeld()) void this.takeOver();
      }, 500).unref();
    } finally {
      this.takingOver = false;
    }
  }

  /**
   * Several instances: the cooldowns the recoveries in the shared journal armed, whichever instance ran them (a new
   * leader honours the previous leader's). An unfinished recovery arms nothing and is resumed whatever they hold.
   */
  private adoptCooldowns(records: readonly JournalRecord[]): void {
    if (!this.opts.peers) return;
    for (const r of summarize(records)) {
      if (r.endedAt === undefined) continue;
      for (const key of cooldownKeysOf(this.topology, r)) {
        if ((this.state.lastEnded.get(key) ?? Number.NEGATIVE_INFINITY) >= r.endedAt) continue;
        this.state.recoveryEnded(key, r.endedAt);
        this.log.info({ key, recoveryId: r.id, endedAt: r.endedAt }, `cooldown ${key} armed by ${r.id} (ended ${new Date(r.endedAt).toISOString()}), from the shared journal`);
      }
    }
  }

  /** Where the hosts live now, as the acting instance shared it. */
  private applyPlacements(placements: readonly Placement[]): void {
    let changed = false;
    for (const p of placements) {
      if (!this.topology.hosts.has(p.host) || this.inventory.addressOf(p.host) === p.address) continue;
      this.inventory.place(p.host, p.address, p.machineId);
      this.log.info({ host: p.host, address: p.address }, `${p.host} now lives at ${p.address} (shared by the acting instance)`);
      changed = true;
    }
    if (!changed) return;
    this.inventory.save(join(this.topology.config.stateDir, "inventory.json"));
    this.targets = checkTargets(this.topology, this.inventory);
  }

  /** Stops the loops; a running recovery finishes its current step (journaled) and resumes at the next start. */
  async stop(): Promise<void> {
    this.stopping.abort();
    if (this.roundTimer) clearInterval(this.roundTimer);
    this.controls.close();
    await Promise.allSettled([...this.loops, ...[...this.recoveries.values()].map((r) => r.run), this.spares.stop()]);
    this.checker.close();
    this.journal.close();
    await this.opts.providers.close();
    if (!this.opts.dryRun) await this.lease.release();
    this.log.info("failoverd stopped");
  }

  /**
   * Applies a new config (SIGHUP). While a recovery runs, the new config waits and is applied when the last recovery
   * ends (a later SIGHUP replaces it): a recovery never sees its hosts or pairs change under it. Throws ConfigError
   * (the running config is kept) for what a reload cannot change.
   */
  reload(next: Topology): void {
    const why = whyNotReloadable(this.topology, next);
    if (why) throw new ConfigError(next.source, [why]);
    if (this.recoveries.size > 0) {
      this.pendingReload = { topology: next, since: this.now() };
      this.log.warn(
        { source: next.source, recoveries: [...this.recoveries.keys()] },
        `config reload postponed: a recovery of ${[...this.recoveries.keys()].join(", ")} is under way; the new config from ${next.source} is applied when it ends`,
      );
      return;
    }
    this.applyConfig(next);
  }

  private applyConfig(next: Topology, postponedSince?: number): void {
    this.topology = next;
    this.inventory = Inventory.load(next, join(next.config.stateDir, "inventory.json"));
    this.checker.close();
    this.checker = new Checker(next.config.checks.timeoutMs, redisAuthOf(next), undefined, (ep) => this.checkSoon(ep));
    const before = new Set(this.targets.map(targetId));
    this.targets = checkTargets(next, this.inventory);
    for (const t of this.targets) if (!before.has(targetId(t))) this.loops.push(this.loop(targetId(t)));
    this.reloadedAt = this.now();
    const c = next.config.checks;
    const waited = postponedSince === undefined ? "" : ` (postponed ${this.reloadedAt - postponedSince} ms, until the recovery ended)`;
    this.log.info(
      { source: next.source, targets: this.targets.length, intervalMs: c.intervalMs },
      `config reloaded from ${next.source}${waited}: ${this.targets.length} targets, down after ${c.fall} failed checks every ${c.intervalMs} ms`,
    );
  }

  /** A reload postponed by a recovery, once none runs any more. */
  private applyPendingReload(): void {
    const pending = this.pendingReload;
    if (!pending || this.recoveries.size > 0 || this.stopping.signal.aborted) return;
    this.pendingReload = null;
    try {
      this.applyConfig(pending.topology, pending.since);
    } catch (e) {
      this.log.error({ source: pending.topology.source }, `the postponed config reload is refused, keeping the running config: ${errorMessage(e)}`);
    }
  }

  healthOf(target: string): TargetHealth | undefined {
    return this.health.get(target);
  }

  /**
   * A Redis server closed the kept check connection between checks: its process is most likely gone. Check it, and
   * its twin (whose link to it is the witness), now rather than at their next turn: a crash is then confirmed in
   * `fall` fast re-checks whatever the phase of the schedule, with a fresh witness.
   */
  private checkSoon(ep: { readonly address: string; readonly port: number }): void {
    const t = this.index().byPort.get(ep.port)?.find((x) => this.inventory.addressOf(x.host) === ep.address);
    if (t?.type !== "redis") return;
    // At most one early check per target and interval: a server (or a proxy) that closes every idle connection must
    // not turn this into a busy loop.
    const soon = (id: string) => {
      const now = this.now();
      const prev = this.checkedSoon.get(id);
      if (prev !== undefined && now - prev < this.rules.intervalMs) return;
      this.checkedSoon.set(id, now);
      this.sleeper.wake(id);
    };
    soon(targetId(t));
    this.guardSync(targetId(t), "its connection closed");
    const twin = twinOf(this.topology, t.host);
    // The twin a moment later: it learns of the lost link by the same kernel event, and a check that reached it first
    // would still say the link is up. Half a fast interval: before the failed server can be confirmed down.
    const fast = this.rules.fastIntervalMs ?? this.rules.intervalMs;
    if (twin) setTimeout(() => soon(`${twin}:${t.port}`), Math.max(1, Math.floor(fast / 2))).unref();
  }

  /**
   * The first sign that `primary` may have restarted (its kept connection closed, a check refused or reset): its
   * replica's resync is held until it answers again as it was (see SyncGuard). Only by the acting instance, never in
   * dry-run, and never while a recovery of the pair runs (its own `hold` step owns the replica then).
   */
  private guardSync(primary: string, why: string): void {
    if (this.opts.dryRun || !this.mayAct() || this.lastRoles.get(primary) !== "primary") return;
    const host = hostOf(primary);
    const { port } = this.endpointOf(primary);
    // Its clients too: no new connection reaches it until it answers as it was. Not while an operator holds failoverd
    // back (a pause, the host's maintenance) nor while a recovery of its host owns its state.
    const now = this.now();
    if (!this.state.unmonitored.has(host) && !this.state.isPaused(now) && !this.state.maintenanceAt(now).has(host) && !this.recovering(host)) {
      void this.syncGuard.drain(primary, this.routeOf(primary), `${primary}: ${why}`);
    }
    const twin = twinOf(this.topology, host);
    if (!twin || this.state.unmonitored.has(host) || this.state.unmonitored.has(twin)) return;
    if (this.recoveries.has(groupOf(this.topology, host))) return;
    const replica = `${twin}:${port}`;
    const r = this.lastGood.get(replica);
    if (r?.role !== "replica" || r.primaryAddress !== this.inventory.addressOf(host)) return;
    void this.syncGuard.hold(primary, replica, { address: this.inventory.addressOf(twin), port }, `${primary}: ${why}`);
  }

  /**
   * A Redis server answered: a hold it no longer needs is released, one a promotion released is forgotten, and a
   * replica seen for the first time is looked at for a hold an earlier daemon left. On every check: nothing is
   * allocated while nothing is held and the replica was looked at already.
   */
  private syncGuardSeen(obs: RedisObservation, lost: boolean): void {
    // A drained primary that answers as it was (or restarted with its data, or is a replica now) takes connections
    // again; one that came back empty stays drained. Not while a recovery of its host owns its state.
    if (this.syncGuard.draining && !lost && this.syncGuard.isDrained(obs.target) && !this.recovering(hostOf(obs.target))) {
      const r = this.restarts.get(obs.target);
      const why = obs.role !== "primary" ? `${obs.target} is a replica now` : r ? `${r.text}, with its data` : `${obs.target} answers as the same server`;
      void this.syncGuard.undrain(obs.target, why);
    }
    // Its replica still linked to it, read a moment after the drain (the time a replica takes to see a lost link, as
    // in checkSoon): the primary is alive and only this daemon lost it (its own network). Not one that came back
    // empty: its replica's resync is held, so its link cannot come up.
    if (this.syncGuard.draining && obs.role === "replica" && obs.linkUp === true) this.undrainIfLinked(obs);
    if (this.syncGuard.holding) {
      if (obs.role === "primary" && this.syncGuard.isHeld(obs.target)) this.syncGuard.promoted(obs.target);
      if (!lost && this.syncGuard.heldFor(obs.target).length > 0 && !this.recoveries.has(groupOf(this.topology, hostOf(obs.target)))) {
        const r = this.restarts.get(obs.target);
        const why = obs.role !== "primary" ? `${obs.target} is a replica now` : r ? `${r.text}, with its data` : `${obs.target} answers as the same server`;
        void this.syncGuard.release(obs.target, (replica) => this.endpointOf(replica), why);
      }
    }
    if (obs.role !== "replica" || obs.linkUp !== true || this.leftoverChecked.has(obs.target) || this.opts.dryRun || !this.mayAct()) return;
    if (this.recoveries.has(groupOf(this.topology, hostOf(obs.target))) || this.syncGuard.isHeld(obs.target)) return;
    this.leftoverChecked.add(obs.target);
    void this.syncGuard.releaseLeftover(obs.target, this.endpointOf(obs.target));
  }

  private undrainIfLinked(replica: RedisObservation): void {
    const twin = twinOf(this.topology, hostOf(replica.target));
    if (!twin || replica.primaryAddress !== this.inventory.addressOf(twin)) return;
    const primary = `${twin}:${this.endpointOf(replica.target).port}`;
    const since = this.syncGuard.drainedSince(primary);
    const fast = this.rules.fastIntervalMs ?? this.rules.intervalMs;
    if (since === undefined || replica.at < since + Math.max(10, Math.floor(fast / 2)) || this.recovering(twin)) return;
    if (this.restarts.get(primary)?.datasetLost === true) return;
    void this.syncGuard.undrain(primary, `its replica ${replica.target} is linked to it (read after the drain): it is alive`);
  }

  /**
   * A drain that no recovery of its host took over within the limit: the failure was not confirmed (witnesses say the
   * server may be alive), so failoverd does not keep it out on a doubt. One that came back empty stays drained.
   */
  private drainLimitReached(primary: string): void {
    if (this.recovering(hostOf(primary))) return;
    if (this.restarts.get(primary)?.datasetLost === true) return;
    void this.syncGuard.undrain(primary, "no failure confirmed within the limit: not kept out on a doubt");
  }

  /**
   * A target of a host unmonitored by a recovery that started before the failure was confirmed (early, on crash
   * evidence; see detector.ts) and that is failing but not down yet: it is still checked on its schedule, and its
   * failures counted, until it is down or answers. The promotion must see `fall` failed checks in a row; counted from
   * the last check before the unmonitor instead, a promotion reached late (several instances: each step's start is
   * an etcd transaction) waited up to (fall - 1) fast intervals more for checks that could have been made meanwhile.
   */
  private confirming(id: string): boolean {
    const h = this.health.get(id);
    return h !== undefined && h.failures > 0 && h.status !== "down" && this.recovering(hostOf(id));
  }

  /** Whether a recovery of `host` itself runs (not merely one of its pair). */
  private recovering(host: string): boolean {
    return this.recoveries.get(groupOf(this.topology, host))?.host === host;
  }

  /** Where a Redis target is routed: its backend and server on every HAProxy that serves its port. */
  private routeOf(target: string): Route {
    const host = hostOf(target);
    const { port } = this.endpointOf(target);
    return {
      backend: redisBackendName(port),
      server: host,
      haproxies: this.topology.haproxyHosts
        .filter((h) => Object.values(h.frontends).includes(port))
        .map((h) => ({ name: h.name, admin: { address: this.inventory.addressOf(h.name), port: h.adminPort } })),
    };
  }

  /**
   * An HAProxy shows a Redis server drained that this daemon did not drain: an earlier daemon died holding it. It is
   * released once that server answers as the primary, healthy, with its replica's link up (so not one that came back
   * empty, whose replica's resync is held).
   */
  private releaseLeftoverDrains(obs: Observation): void {
    if (obs.type !== "haproxy" || this.opts.dryRun || !this.mayAct() || !obs.servers.some((s) => s.drain === true)) return;
    for (const s of obs.servers) {
      if (s.drain !== true || !s.backend.startsWith("be_redis_")) continue;
      const target = `${s.server}:${s.port}`;
      if (this.syncGuard.isDrained(target) || this.recovering(s.server) || this.lastRoles.get(target) !== "primary") continue;
      const h = this.health.get(target);
      if (h?.status !== "up" || h.failures > 0 || this.restarts.get(target)?.datasetLost === true) continue;
      const twin = twinOf(this.topology, s.server);
      const replica = twin ? this.lastGood.get(`${twin}:${s.port}`) : undefined;
      if (replica?.role !== "replica" || replica.linkUp !== true || replica.primaryAddress !== this.inventory.addressOf(s.server)) continue;
      void this.syncGuard.releaseLeftoverDrain(target, this.routeOf(target));
    }
  }

  /** The endpoint of a Redis target (`host:port`) where its host lives now. */
  private endpointOf(target: string): { address: string; port: number } {
    const host = hostOf(target);
    return { address: this.inventory.addressOf(host), port: Number(target.slice(host.length + 1)) };
  }

  /** The current target with this id, by a map rebuilt whenever the target list is replaced. */
  private targetOf(id: string): CheckTarget | undefined {
    return this.index().byId.get(id);
  }

  private index(): TargetIndex {
    if (this.targetIndex?.of !== this.targets) {
      const byPort = new Map<number, CheckTarget[]>();
      for (const t of this.targets) if (t.type === "redis") byPort.set(t.port, [...(byPort.get(t.port) ?? []), t]);
      this.targetIndex = { of: this.targets, byId: new Map(this.targets.map((t) => [targetId(t), t])), byPort };
    }
    return this.targetIndex;
  }

  private async loop(id: string, firstAt?: number): Promise<void> {
    const signal = this.stopping.signal;
    let due = firstAt ?? this.now();
    if (due > this.now()) await this.sleeper.sleep(due - this.now());
    while (!signal.aborted) {
      const started = this.now();
      const target = this.targetOf(id);
      if (!target) return; // removed by a reload
      let delay = this.rules.intervalMs;
      if (!this.state.unmonitored.has(target.host) || this.confirming(id)) {
        try {
          const address = this.inventory.addressOf(target.host);
          const obs = await this.checker.check(address === target.address ? target : { ...target, address });
          this.opts.onCheck?.(id, due, started, obs.ok);
          if (signal.aborted) return;
          if (!this.state.unmonitored.has(target.host)) {
            this.ingest(obs, true);
          } else if (this.confirming(id)) {
            // Counted, not weighed: the recovery's point of no return reads the count (confirmStillFailed).
            this.health.set(id, observe(this.health.get(id), obs, this.rules));
          }
          const h = this.health.get(id);
          if (h) delay = nextCheckDelay(h, this.rules);
        } catch (e) {
          this.log.error({ target: id, err: errorMessage(e) }, "check failed unexpectedly (a bug); the loop goes on");
        }
      }
      due = started + delay;
      const wait = Math.max(0, due - this.now());
      await this.sleeper.sleep(wait, id);
    }
  }

  private ingest(obs: Observation, evaluate: boolean): void {
    const prev = this.health.get(obs.target);
    const next = observe(prev, obs, this.rules);
    this.health.set(obs.target, next);
    this.events.emit("observation", { observation: obs, health: next });
    if (prev === undefined || prev.status !== next.status) {
      const failure = obs.failure ? `${obs.failure.kind}: ${obs.failure.message}` : undefined;
      this.events.emit("status", { target: obs.target, from: prev?.status ?? "unknown", to: next.status, at: obs.at, ...(failure ? { failure } : {}) });
    }
    if (!obs.ok) this.log.debug({ target: obs.target, failure: obs.failure, failures: next.failures }, "check failed");
    if (obs.type === "redis" && obs.failure && (obs.failure.kind === "refused" || obs.failure.kind === "reset")) {
      this.guardSync(obs.target, `a check was ${obs.failure.kind}`);
    }
    if (prev && prev.status !== next.status) {
      const line = `${obs.target} is ${next.status}${obs.failure ? ` (${obs.failure.kind}: ${obs.failure.message})` : ""}`;
      if (next.status === "down") this.log.warn({ target: obs.target, failures: next.failures }, line);
      else this.log.info({ target: obs.target }, line);
    }
    const wasFailing = this.failing.has(obs.target);
    if (next.failures > 0 || next.status === "down") this.failing.add(obs.target);
    else this.failing.delete(obs.target);
    const changed = obs.type === "redis" ? this.ingestRedis(obs, prev?.last) : haproxyViewChanged(prev?.last, obs);
    if (obs.type === "haproxy") this.releaseLeftoverDrains(obs);
    // Evidence is weighed as soon as it arrives: any change while something fails (an HAProxy's view, a replica's
    // link), and any change of a server's role, link, replicas or identity at any time.
    if (evaluate && (this.failing.size > 0 || wasFailing || changed || prev?.status !== next.status)) this.evaluation.request();
  }

  /** Roles, identities, offsets and links of one Redis observation. True when something a diagnosis weighs changed. */
  private ingestRedis(obs: RedisObservation, prevObs: Observation | undefined): boolean {
    const before = prevObs?.type === "redis" ? prevObs : undefined;
    if (!obs.ok) return before?.ok === true;
    if (obs.role) this.lastRoles.set(obs.target, obs.role);
    const good = this.lastGood.get(obs.target);
    const restart = good ? classifyRestart(good, obs) : null;
    const known = this.restarts.get(obs.target);
    // Against the reference kept from before a lost dataset, every later check of the same empty process would read as
    // a restart again: only a new process (or a first restart) is news.
    if (restart && (!known || known.runId !== obs.runId || obs.runId === undefined && known.text !== restart.text)) {
      const evidence: RestartEvidence = { ...restart, before: known?.datasetLost ? known.before : good! };
      this.restarts.set(obs.target, evidence);
      this.log.warn({ target: obs.target, runId: obs.runId, offset: obs.offset, keys: obs.keys }, evidence.text);
    }
    const lost = this.restarts.get(obs.target)?.datasetLost === true && obs.role === "primary";
    this.syncGuardSeen(obs, lost);
    if (!lost) {
      this.lastGood.set(obs.target, obs);
      if (obs.role === "primary" && obs.offset !== undefined) this.offsets.record(obs.target, obs.at, obs.offset, obs.replid);
    }
    const r = this.restarts.get(obs.target);
    // A restart that kept its data is reported for a minute; one that lost it lasts until the server is a replica again.
    if (r && ((!r.datasetLost && obs.at - r.at > 60_000) || (r.datasetLost && obs.role === "replica"))) this.restarts.delete(obs.target);
    if (obs.role === "replica" && obs.linkUp !== true) {
      if (!this.linkDownSince.has(obs.target)) this.linkDownSince.set(obs.target, obs.at);
    } else {
      this.linkDownSince.delete(obs.target);
    }
    if (!before?.ok) return true;
    return (
      restart !== null ||
      before.role !== obs.role ||
      before.linkUp !== obs.linkUp ||
      (before.linkDownSeconds === -1) !== (obs.linkDownSeconds === -1) ||
      before.primaryAddress !== obs.primaryAddress ||
      (before.replicas ?? []).filter((x) => x.online).length !== (obs.replicas ?? []).filter((x) => x.online).length
    );
  }

  private evaluate(): void {
    const now = this.now();
    const decided = this.decisions(this.state.isPaused(now), now);
    // Only the lease holder acts; the others say why not.
    const acting = this.mayAct();
    const decisions = decided.map((d): Decision =>
      d.kind === "recover" && !acting
        ? {
            kind: "alert",
            host: d.host,
            diagnosis: d.diagnosis,
            reason: this.lease.holder?.().notActing ?? "taking over: reading the journal before acting",
          }
        : d,
    );
    // A journal that cannot be written, or a last recovery that changed nothing, holds a recovery back (RecoveryGate).
    const shown: Decision[] = [];
    for (const d of decisions) {
      const g = this.gate.gate(d, this.journal.fault, this.now());
      this.act(g.shown);
      if (g.attempt && g.shown !== d) this.begin(g.attempt);
      shown.push(g.shown);
    }
    this.gate.sweep(decisions, new Set(this.recoveries.keys()));
    this.findings.update(shown, this.now());
    this.wakeWitnesses();
    this.replication = replicationOf({
      pairs: this.topology.pairs.filter((p) => !p.hosts.some((h) => this.state.unmonitored.has(h))),
      addressOf: (h) => this.inventory.addressOf(h),
      latest: (t) => {
        const o = this.health.get(t)?.last;
        return o?.type === "redis" ? o : undefined;
      },
      history: this.offsets,
      linkDownSince: this.linkDownSince,
      now,
    });
    this.events.emit("replication", { rows: this.replication, at: now });
  }

  /**
   * While a target fails, the observations that could confirm it (its twin's link or replicas, the HAProxies' views,
   * the app-side HAProxies' views of an HAProxy) are read again at once, at most once per fast interval: a decision
   * waits for its last piece of evidence, not for the witnesses' next turn.
   */
  private wakeWitnesses(): void {
    const witnesses = new Set<string>();
    for (const id of this.failing) {
      const t = this.targetOf(id);
      if (!t || this.state.unmonitored.has(t.host) || (this.health.get(id)?.failures ?? 0) === 0) continue;
      if (t.type === "redis") {
        const twin = twinOf(this.topology, t.host);
        if (twin) witnesses.add(`${twin}:${t.port}`);
        for (const h of this.topology.haproxyHosts) witnesses.add(h.name);
      } else {
        for (const a of this.topology.appHosts) if (a.upstreams.includes(t.host)) witnesses.add(a.name);
      }
    }
    const fast = this.rules.fastIntervalMs ?? this.rules.intervalMs;
    const now = this.now();
    for (const w of witnesses) {
      if (this.failing.has(w) || this.state.unmonitored.has(hostOf(w))) continue;
      const prev = this.checkedSoon.get(w);
      if (prev !== undefined && now - prev < fast) continue;
      this.checkedSoon.set(w, now);
      this.sleeper.wake(w);
    }
  }

  /** What the decider says now (with `paused` as given: resume's preview asks as if resumed). */
  private decisions(paused: boolean, now = this.now()): Decision[] {
    for (const [g, a] of this.dataLossAccepted) if (a.until < now) this.dataLossAccepted.delete(g);
    const monitored = [...this.health.values()].filter((h) => !this.state.unmonitored.has(hostOf(h.target)));
    const seen = {
      topology: this.topology,
      addressOf: (h: string) => this.inventory.addressOf(h),
      health: this.health,
      lastRoles: this.lastRoles,
      unmonitored: this.state.unmonitored,
      now,
      restarts: this.restarts,
      lastGood: (t: string) => this.lastGood.get(t),
      history: this.offsets,
      linkDownSince: this.linkDownSince,
    };
    const raw = diagnose(seen);
    // Several instances: a failure is confirmed only when a majority of them sees it.
    const diagnoses = this.opts.peers ? this.opts.peers.confirm(raw, (t) => this.health.get(t)?.status) : raw;
    const down = monitored.filter((h) => h.status === "down");
    const witnessed = down.length > 0 ? witnessedDown(seen) : new Set<string>();
    return decide({
      topology: this.topology,
      diagnoses,
      targetsTotal: monitored.length,
      targetsDown: down.length,
      targetsConfirmed: down.filter((h) => witnessed.has(h.target)).length,
      state: {
        paused,
        active: new Set(this.recoveries.keys()),
        lastEnded: this.state.lastEnded,
        acceptDataLoss: new Set(this.dataLossAccepted.keys()),
        maintenance: this.state.maintenanceAt(now),
      },
      now,
    });
  }

  private act(d: Decision): void {
    if (d.kind === "alert") {
      const key = findingKey(d);
      const prev = this.lastAlert.get(key);
      // Repeated non-actionable findings are throttled: once, then once a minute while they last (the same finding
      // in other numbers, "4.1 s behind" then "4.3 s behind", is the same finding).
      const text = [d.reason, ...d.diagnosis.evidence].join(" | ").replace(/\d+(\.\d+)?/g, "#");
      if (prev && prev.text === text && this.now() - prev.at < 60_000) return;
      this.lastAlert.set(key, { text, at: this.now() });
      this.log.warn({ diagnosis: d.diagnosis.name, host: d.host, evidence: d.diagnosis.evidence }, `${d.diagnosis.name} on ${d.host}: ${d.reason}`);
      return;
    }
    this.log.warn(
      { diagnosis: d.diagnosis.name, host: d.host, evidence: d.diagnosis.evidence, playbook: d.playbook },
      `${d.diagnosis.name} on ${d.host}: running ${d.playbook}`,
    );
    this.begin(d);
  }

  private begin(d: Extract<Decision, { kind: "recover" }>): void {
    const failingSince = Math.min(...d.diagnosis.targets.map((t) => this.health.get(t)?.failingSince ?? this.restarts.get(t)?.at ?? this.now()));
    const accepted = this.dataLossAccepted.get(d.group);
    if (accepted) this.dataLossAccepted.delete(d.group);
    this.startRecovery(d.playbook, d.host, {
      diagnosis: d.diagnosis.name,
      failingSince,
      targets: d.diagnosis.targets.filter((t) => hostOf(t) === d.host),
      ...(accepted ? { acceptDataLoss: true, by: accepted.by } : {}),
    });
  }

  private startRecovery(
    playbook: PlaybookName,
    host: string,
    meta: RecoveryMeta,
    resume?: Parameters<Runner["run"]>[2],
    origin: RecoveryOrigin = "diagnosis",
  ): Runner {
    const group = groupOf(this.topology, host);
    // Never a spare launch during a recovery: one under way is cut short (the pool is refilled after it).
    this.spares.interrupt();
    const runner = new Runner({
      topology: this.topology,
      inventory: this.inventory,
      providers: this.providers,
      journal: this.journal,
      monitor: this.monitorControl(),
      log: this.log,
      dryRun: this.opts.dryRun === true,
      saveInventory: () => {
        this.inventory.save(join(this.topology.config.stateDir, "inventory.json"));
        this.opts.peers?.savePlacements(this.inventory.all()).catch((e: unknown) => this.log.error({ err: errorMessage(e) }, "could not share the inventory"));
      },
      lease: this.opts.dryRun ? undefined : this.lease,
      shutdown: this.stopping.signal,
      now: this.now,
      pauseBefore: chaosPauseFromEnv(),
    });
    const tracker = forwardRunnerEvents(runner, this.events, { playbook, host, group, diagnosis: meta.diagnosis, origin, resumeId: resume?.id }, this.now);
    runner.on("recovery-start", (e: { recoveryId: string }) => this.runningIds.add(e.recoveryId));
    if (resume) this.runningIds.add(resume.id);
    let endError: string | undefined;
    runner.on("recovery-end", (e: { error?: string }) => {
      endError = e.error;
    });
    const run = runner
      .run(playbookFor(playbook, host), meta, resume)
      .then(async (outcome) => {
        const summary = await this.summaryOf(tracker.id());
        tracker.ended(outcome, undefined, describeDataLoss(summary?.completed.get("promote") as PromoteResult | undefined));
        // Interrupted without a shutdown: this instance lost the lease; the next leader resumes. Watch the host again.
        if (outcome === "interrupted" && !this.stopping.signal.aborted) this.forget(host);
        // Not started (the journal cannot be written) or interrupted: nothing ended, no cooldown.
        if (outcome === "not-started" || outcome === "interrupted") return;
        // Rolled back (it undid what it did: a refused promotion, a failure that was over before the point of no
        // return): no cooldown; if the fault lasts it is tried again after a short, growing delay.
        const retryIn = this.gate.ended(group, this.now(), outcome === "rolled-back", endError);
        if (retryIn !== null) {
          this.log.info({ host, group }, `the recovery of ${group} changed nothing: no cooldown; if the fault lasts it is tried again in ${Math.ceil(retryIn / 1000)} s`);
        } else if (playbook !== "switchover") {
          // A planned switchover is no failover: it starts no cooldown.
          this.armCooldown(playbook, host, meta.diagnosis, outcome, summary);
        }
        // Failed forward: roles changed and the machine may be gone. Watch the host again with a clean record, so
        // it is diagnosed as it is now, and read the rest of its pair and every HAProxy again at once: the next
        // decision starts from what is there, not from what was.
        if (outcome === "failed") {
          this.forget(host);
          const twin = twinOf(this.topology, host);
          for (const t of this.targets) if (t.host === twin || t.type === "haproxy") this.sleeper.wake(targetId(t));
        }
      })
      .catch((e: unknown) => {
        // A state file that cannot be saved (a full disk) is the host's trouble, not a bug: said as it is.
        const system = typeof (e as NodeJS.ErrnoException).code === "string";
        this.log.error({ err: errorMessage(e), host }, system ? `after the recovery of ${host}: ${errorMessage(e)}` : "recovery crashed (a bug)");
      })
      .finally(() => {
        this.recoveries.delete(group);
        const id = tracker.id();
        if (id) this.runningIds.delete(id);
        this.applyPendingReload();
        this.afterRecoveries();
      });
    this.recoveries.set(group, { host, run });
    // Its fence and rollback own the state of the host's servers on the HAProxies now: a drain has no time limit.
    for (const t of this.targets) if (t.host === host && t.type === "redis") this.syncGuard.recoveryOwns(targetId(t));
    return runner;
  }

  /**
   * Anti-flap by what happened: a failover that promoted holds the pair's next failover; an HAProxy that was rebuilt
   * holds that HAProxy's next rebuild. A replica rebuild, or a recovery that changed nothing (rolled back, or failed
   * before it touched anything), holds nothing.
   */
  private armCooldown(playbook: PlaybookName, host: string, diagnosis: string, outcome: string, summary: RecoverySummary | undefined): void {
    const keys = cooldownKeysOf(this.topology, { playbook, host, outcome, completed: summary?.completed ?? new Map(), steps: summary?.steps ?? [] });
    if (outcome === "rolled-back") return;
    if (!keys.some((k) => k !== failedKeyOf(host))) {
      this.log.info({ host, diagnosis }, `no cooldown: the recovery of ${host} promoted nothing (a replica rebuild, or nothing changed)`);
    }
    const now = this.now();
    for (const key of keys) this.state.recoveryEnded(key, now);
  }

  private async summaryOf(id: string | undefined): Promise<RecoverySummary | undefined> {
    if (!id) return undefined;
    try {
      return summarize(await this.journal.read()).find((r) => r.id === id);
    } catch {
      return undefined;
    }
  }

  private monitorControl(): MonitorControl {
    return {
      unmonitor: async (host) => {
        this.state.setMonitored(host, false);
        this.findings.resolveHost(host, this.now());
      },
      monitor: async (host) => this.forget(host),
      statusOf: (target: string): TargetStatus => {
        if (this.state.unmonitored.has(hostOf(target))) return "down";
        return this.health.get(target)?.status ?? "unknown";
      },
      rules: this.rules,
      recheck: async (target, deadlineMs) => {
        const t = this.targetOf(target);
        if (!t) throw new Error(`no target ${target} to check`);
        const address = this.inventory.addressOf(t.host);
        return this.checker.check(address === t.address ? t : { ...t, address }, deadlineMs);
      },
      failuresOf: (target) => this.health.get(target)?.failures ?? 0,
      downSince: (target) => {
        const h = this.health.get(target);
        return h?.status === "down" ? h.since : undefined;
      },
      lastGood: (target) => this.restarts.get(target)?.before ?? this.lastGood.get(target),
      firstAbove: (target, offset) => this.offsets.firstAbove(target, offset),
      noteRole: (target, role) => {
        this.lastRoles.set(target, role);
      },
    };
  }

  /** Monitors `host` again with a clean record: its roles are learned again, its failures counted anew. */
  private forget(host: string): void {
    for (const m of [this.health, this.lastRoles, this.lastGood, this.restarts, this.linkDownSince] as Map<string, unknown>[]) {
      for (const k of [...m.keys()]) if (hostOf(k) === host) m.delete(k);
    }
    for (const k of [...this.failing]) if (hostOf(k) === host) this.failing.delete(k);
    for (const t of this.targets) if (t.host === host) this.offsets.forget(targetId(t));
    this.targets = checkTargets(this.topology, this.inventory);
    this.state.setMonitored(host, true);
  }

  // ----- operator intents (HTTP API, CLI, drills): the daemon stays the only actor ---------------------------------

  /** Paused now (a pause past its expiry no longer counts, even before the timer has ended it). */
  get paused(): boolean {
    return this.state.isPaused(this.now());
  }

  /** The pause in force, with who, why and until when; null when not paused. */
  get pause(): Hold | null {
    return this.paused ? this.state.pause : null;
  }

  /** The maintenance windows in force. */
  get maintenance(): ReadonlyMap<string, Maintenance> {
    return this.state.maintenanceAt(this.now());
  }

  /** Pauses automatic recovery (persisted across restarts), until `forMs` has passed or until resumed. */
  async setPause(by: string, request: HoldRequest): Promise<Hold> {
    return this.controls.pause(by, request);
  }

  /** The recoveries that resuming would start now (the decider asked as if not paused). */
  wouldStartOnResume(): { playbook: string; host: string; diagnosis: string }[] {
    return this.decisions(false).flatMap((d) => (d.kind === "recover" ? [{ playbook: d.playbook, host: d.host, diagnosis: d.diagnosis.name }] : []));
  }

  /**
   * Resumes automatic recovery. When that starts a recovery at once, only with `confirm` (the operator saw what it
   * starts); otherwise it stays paused and says what would start.
   */
  async resume(by: string, confirm: boolean): Promise<{ resumed: boolean; starts: { playbook: string; host: string; diagnosis: string }[] }> {
    const starts = this.paused ? this.wouldStartOnResume() : [];
    if (starts.length > 0 && !confirm) return { resumed: false, starts };
    if (this.state.pause !== null) await this.controls.resume(by);
    return { resumed: true, starts };
  }

  /** Puts a host in maintenance: no recovery of its group until it expires or is ended. */
  async startMaintenance(host: string, by: string, request: HoldRequest & { forMs: number }): Promise<Maintenance | { refused: string }> {
    const h = this.topology.hosts.get(host);
    if (!h) return { refused: `unknown host '${host}' (hosts: ${[...this.topology.hosts.keys()].join(", ")})` };
    if (h.role === "app") return { refused: `${host} is an app host: failoverd never acts on it` };
    return this.controls.startMaintenance(host, by, request);
  }

  /** Ends a host's maintenance; null when it had none. */
  async endMaintenance(host: string, by: string): Promise<Maintenance | null> {
    return this.controls.endMaintenance(host, by);
  }

  /**
   * Acknowledges the current findings: they are not notified again until they change. Several instances: written to
   * the store first, so every instance (a later leader too) holds them acknowledged.
   */
  async acknowledge(by: string): Promise<string[]> {
    await this.opts.peers?.controls.acknowledge(
      this.findings.list().map((f) => f.key),
      by,
      this.now(),
    );
    const keys = this.findings.acknowledge(this.now(), by);
    this.log.info({ by, keys }, `acknowledged ${keys.length} finding(s)`);
    return keys;
  }

  /**
   * Starts a planned switchover as a recovery (journaled, one per pair, never beside another recovery of the pair).
   * Resolves with the recovery's id once it has started, or with why it was refused.
   */
  async requestSwitchover(request: SwitchoverRequest, origin: "operator" | "drill", by: string): Promise<{ recoveryId: string; to: string; from: string } | { refused: string }> {
    if (this.stopping.signal.aborted) return { refused: "failoverd is stopping" };
    const fault = this.journal.fault;
    if (fault) return { refused: `${fault.error}: no recovery starts until the journal can be written` };
    // Several instances: only the acting one switches over (a follower's API hands the request to it: see actingApi).
    if (!this.mayAct()) return { refused: this.lease.holder?.().notActing ?? "this instance does not act now" };
    const plan = planSwitchover({
      topology: this.topology,
      request,
      lastRoles: this.lastRoles,
      statusOf: (t) => this.health.get(t)?.status ?? "unknown",
      unmonitored: this.state.unmonitored,
      active: new Set(this.recoveries.keys()),
      maintenance: this.maintenance,
      now: this.now(),
    });
    if ("refused" in plan) {
      this.log.warn({ by, request }, `switchover refused: ${plan.refused}`);
      return plan;
    }
    this.log.warn({ by, to: plan.to, from: plan.from }, `switchover of ${plan.group} to ${plan.to} requested by ${by}`);
    const runner = this.startRecovery("switchover", plan.to, { diagnosis: `switchover requested by ${by}`, origin, by }, undefined, origin);
    const recoveryId = await this.started(runner, plan.group);
    if (!recoveryId) return { refused: "the switchover could not start (see the log)" };
    return { recoveryId, to: plan.to, from: plan.from };
  }

  /**
   * The promotion guard's override: the next failover of `host`'s pair may promote `host` even when it misses more
   * than the configured bound of acknowledged writes. Journaled with that recovery's start (who accepted it). Holds
   * for ten minutes or one recovery, whichever comes first; refused when `host`'s twin is not failing now.
   */
  acceptDataLoss(host: string, by: string): { accepted: string; failed: string } | { refused: string } {
    const h = this.topology.hosts.get(host);
    if (h?.role !== "redis") return { refused: `${host} is not a Redis host of ${this.topology.name}` };
    const failed = twinOf(this.topology, host);
    if (!failed) return { refused: `${host} is in no pair` };
    const group = groupOf(this.topology, host);
    if (this.recoveries.has(group)) return { refused: `a recovery of ${group} is already under way` };
    // Several instances: the acting one promotes; accepting here would change nothing (a follower's API forwards it).
    if (this.opts.peers && !this.mayAct()) return { refused: this.lease.holder?.().notActing ?? "this instance does not act now" };
    const failingNow = [...this.failing].some((t) => hostOf(t) === failed && (this.health.get(t)?.failures ?? 0) > 0);
    const lostNow = [...this.restarts.values()].some((r) => hostOf(r.target) === failed && r.datasetLost);
    if (!failingNow && !lostNow) return { refused: `${failed} is not failing now: nothing to promote ${host} in place of` };
    this.dataLossAccepted.set(group, { until: this.now() + 600_000, by });
    this.log.warn({ by, host, failed }, `${by} accepts data loss: the next failover of ${group} may promote ${host} whatever it misses`);
    this.evaluation.request();
    return { accepted: host, failed };
  }

  /**
   * A forced failover: the recovery of `host`'s failure although failoverd does not consider it failed. Without
   * `confirm` nothing happens: the answer is the plan (every step and action, resolved now) and what to know before
   * saying yes. With it, the recovery starts (journaled with who and why), or the reason it may not.
   */
  async requestFailover(
    host: string,
    by: string,
    reason: string | undefined,
    confirm: boolean,
  ): Promise<{ refused: string } | { started: false; check: FailoverCheck; plan: Plan } | { started: true; check: FailoverCheck; recoveryId: string }> {
    if (this.stopping.signal.aborted) return { refused: "failoverd is stopping" };
    const check = checkFailover({
      topology: this.topology,
      host,
      health: this.health,
      lastRoles: this.lastRoles,
      unmonitored: this.state.unmonitored,
      active: new Set(this.recoveries.keys()),
      maintenance: this.maintenance,
      now: this.now(),
    });
    if ("refused" in check) {
      this.log.warn({ by, host }, `forced failover of ${host} refused: ${check.refused}`);
      return check;
    }
    if (!confirm) return { started: false, check, plan: await planRecovery(this.topology, host, this.opts.providers) };
    // Several instances: only the acting one starts it (a follower's API hands it the request: see actingApi).
    if (!this.mayAct()) return { refused: this.lease.holder?.().notActing ?? "this instance does not act now" };
    this.log.warn({ by, host, reason }, `forced failover of ${host} requested by ${by}${reason ? ` (${reason})` : ""}: running ${check.playbook}`);
    const meta: RecoveryMeta = { diagnosis: `forced failover requested by ${by}`, origin: "operator", by, forced: true, ...(reason ? { reason } : {}) };
    const runner = this.startRecovery(check.playbook, host, meta, undefined, "operator");
    const recoveryId = await this.started(runner, check.group);
    if (!recoveryId) return { refused: "the failover could not start (see the log)" };
    return { started: true, check, recoveryId };
  }

  /** Several instances: this instance's name (null: it acts alone). */
  get instance(): string | null {
    return this.opts.peers?.view().instance ?? null;
  }

  /**
   * Several instances: where a request only the acting instance carries out (switchover, failover, promote) goes
   * when another instance acts: its name and HTTP API. Null when this instance acts, acts alone, or the acting one
   * has published no API (the request is then answered here, refused with the reason).
   */
  async actingApi(): Promise<{ instance: string; url: string } | null> {
    if (!this.opts.peers || this.opts.dryRun || this.mayAct()) return null;
    return this.opts.peers.leaderApi().catch(() => null);
  }

  /** The id of a recovery just started, once its start is journaled; undefined when it ended without starting. */
  private started(runner: Runner, group: string): Promise<string | undefined> {
    return new Promise<string | undefined>((resolve) => {
      runner.once("recovery-start", (e: { recoveryId: string }) => resolve(e.recoveryId));
      void this.recoveries.get(group)?.run.then(() => resolve(undefined));
    });
  }

  /** The time since which every monitored target has been checked (null before the first complete round). */
  lastCycleAt(): number | null {
    const ids = this.targets.filter((t) => !this.state.unmonitored.has(t.host)).map(targetId);
    return lastCompleteCycle(ids, this.health);
  }

  /** Everything the daemon knows now, for GET /status and the status page. */
  async status(): Promise<StatusView> {
    const view = await this.baseStatus();
    return this.opts.peers ? { ...view, instances: this.opts.peers.view() } : view;
  }

  private async baseStatus(): Promise<StatusView> {
    return buildStatus({
      topology: this.topology,
      now: this.now(),
      startedAt: this.startedAt,
      paused: this.paused,
      pause: this.pause,
      maintenance: this.maintenance,
      dryRun: this.opts.dryRun === true,
      lastCycleAt: this.lastCycleAt(),
      addressOf: (h) => this.inventory.addressOf(h),
      health: this.health,
      lastRoles: this.lastRoles,
      unmonitored: this.state.unmonitored,
      diagnoses: this.findings.list(),
      // With several instances the journal is in etcd, which may not answer: the status still shows the rest.
      recoveries: summarize(await (this.opts.peers ? this.journal.read().catch(() => []) : this.journal.read())),
      running: this.runningIds,
      config: { source: this.topology.source, reloadedAt: this.reloadedAt, reloadPendingSince: this.pendingReload?.since ?? null },
      journal: this.journalFault(),
      replication: this.replication,
      spares: this.spares.snapshot(),
    });
  }

  /** Why the journal cannot be written now (null: it can); metrics, /healthz and the status page show it. */
  journalFault(): JournalFault | null {
    return this.journal.fault;
  }

  /** Recoveries and operator controls from the journal since `since`, newest first. */
  async history(since?: number): Promise<History> {
    return historyOf(await this.journal.read(), since);
  }

  get config(): Topology {
    return this.topology;
  }

  private logRoles(): void {
    const roles = [...this.lastRoles.entries()].map(([t, r]) => `${t}=${r}`).join(" ");
    this.log.info({ roles: Object.fromEntries(this.lastRoles) }, `roles discovered: ${roles || "none reachable"}`);
  }
}

/** Why `next` cannot replace `current` without a restart (null: it can). */
export function whyNotReloadable(current: Topology, next: Topology): string | null {
  if (next.config.stateDir !== current.config.stateDir) {
    return `stateDir changed (${current.config.stateDir} -> ${next.config.stateDir}): the journal, lock and state stay where they are until failoverd restarts`;
  }
  if (next.name !== current.name) return `the topology's name changed (${current.name} -> ${next.name}): restart failoverd to watch another topology`;
  return null;
}

/** An HAProxy observation whose view of some server (up, maint, address) differs from the previous one. */
function haproxyViewChanged(prev: Observation | undefined, next: Observation): boolean {
  if (next.type !== "haproxy") return false;
  if (prev?.type !== "haproxy" || prev.ok !== next.ok) return true;
  if (prev.servers.length !== next.servers.length) return true;
  for (let i = 0; i < next.servers.length; i++) {
    const a = prev.servers[i]!;
    const b = next.servers[i]!;
    if (a.up !== b.up || a.maint !== b.maint || a.address !== b.address || a.server !== b.server) return true;
  }
  return false;
}

/** One line for the recovery's end: what the promotion lost (estimated). */
function describeDataLoss(p: PromoteResult | undefined): string | undefined {
  if (!p?.dataLoss || p.dataLoss.length === 0) return undefined;
  return p.dataLoss.map((l) => l.text).join("; ");
}

function hostOf(target: string): string {
  const i = target.indexOf(":");
  return i < 0 ? target : target.slice(0, i);
}

export type { Diagnosis };
