/**
 * Several failoverd instances coordinated through etcd. This room implements the daemon's seams on etcd: `Lease`
 * (the leader election, with its own deadline), `Journal` (records written in transactions fenced on the leader
 * key), and `Peers` (the other instances' verdicts for quorum confirmation, and the shared inventory). The daemon
 * and the runner know these interfaces only; `run` chooses this room when the config has a `coordination` section.
 */
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import { crashFailing, type Diagnosis, type TargetStatus } from "../checks/detector.ts";
import { Counter, Gauge, type Registry } from "prom-client";
import type { InstancesView, Peers, SharedChange, SharedControls, SharedHolds } from "../daemon/peers.ts";
import type { Hold, Maintenance } from "../daemon/state.ts";
import type { EventBus } from "../daemon/events.ts";
import { ConfigError, errorMessage, FailoverdError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { type Journal, JournalCorruptError, type JournalRecord } from "../recovery/journal.ts";
import { type Lease, type LeaseHolder, LeaseLostError } from "../recovery/lease.ts";
import type { Placement } from "../topology/inventory.ts";
import { resolveSecret } from "../topology/secrets.ts";
import type { Topology } from "../topology/topology.ts";
import { confirmByQuorum, majority } from "./quorum.ts";
import { EtcdSession } from "./session.ts";

export { confirmByQuorum, majority } from "./quorum.ts";

export class Coordination {
  readonly session: EtcdSession;
  readonly lease: Lease;
  readonly journal: Journal;
  readonly peers: Peers;

  private constructor(
    readonly topology: Topology,
    readonly instances: number,
    session: EtcdSession,
  ) {
    this.session = session;
    this.lease = new EtcdLeaderLease(session);
    this.journal = new EtcdJournal(session);
    this.peers = new EtcdPeers(session, instances);
  }

  /** The coordination of this topology's config, or null in single-instance mode (no `coordination` section). */
  static fromTopology(t: Topology, o: { instance?: string | undefined; log: Logger }): Coordination | null {
    const c = t.config.coordination;
    if (!c) return null;
    const password = resolveSecret(c.password, "coordination.password", t.source);
    const read = (f: string | undefined, field: string) => {
      if (f === undefined) return undefined;
      try {
        return readFileSync(f);
      } catch (e) {
        throw new ConfigError(t.source, [`coordination.tls.${field}: cannot read ${f}: ${(e as NodeJS.ErrnoException).code ?? "error"}`]);
      }
    };
    const instance = o.instance ?? c.instance ?? hostname();
    const session = new EtcdSession({
      endpoints: c.endpoints,
      prefix: c.prefix ?? `/failoverd/${t.name}`,
      instance,
      ttlSeconds: c.leaseTtlSeconds,
      auth: c.username !== undefined ? { username: c.username, password: password ?? "" } : undefined,
      tls: c.tls ? { ca: read(c.tls.ca, "ca"), cert: read(c.tls.cert, "cert"), key: read(c.tls.key, "key") } : undefined,
      log: o.log.child({ instance }),
    });
    return new Coordination(t, c.instances, session);
  }

  /**
   * The leader and the instances publishing now, read from etcd without joining (for `failoverd status` when no
   * daemon answers it). Throws when etcd cannot be read.
   */
  static async peek(t: Topology, log: Logger): Promise<{ leader: string | null; observers: string[] }> {
    const c = Coordination.fromTopology(t, { log });
    if (!c) return { leader: null, observers: [] };
    const s = c.session;
    try {
      const election = await s.client.getAll().prefix(s.key("election", "")).sort("Create", "Ascend").strings();
      const members = await s.client.getAll().prefix(s.key("members", "")).keys();
      return {
        leader: Object.values(election)[0] ?? null,
        observers: members.map((k) => decodeURIComponent(k.slice(s.key("members", "").length))).sort(),
      };
    } finally {
      s.client.close();
    }
  }

  /** Publishes this instance's verdicts: every change of a target's status (not every check). */
  attach(events: EventBus): void {
    events.on("status", (e) => {
      const kind = e.failure?.split(":")[0];
      this.session.publish(e.target, { status: e.to, ...(e.to === "down" && kind ? { kind } : {}), since: e.at });
    });
    // A crash seen before `fall` (refused, reset): published so that a majority can confirm it early (see quorum.ts).
    events.on("observation", (e) => this.session.publishFailing(e.observation.target, crashFailing(e.health)));
  }

  /** failoverd_leader, failoverd_observers, failoverd_quorum, failoverd_leader_changes_total, failoverd_etcd_writes_total. */
  registerMetrics(registry: Registry): void {
    const s = this.session;
    const instances = this.instances;
    new Gauge({
      name: "failoverd_leader",
      help: "1 while this instance is the acting one (leads, before its own lease deadline), else 0",
      registers: [registry],
      collect() {
        this.set(s.isLeader() ? 1 : 0);
      },
    });
    new Gauge({
      name: "failoverd_observers",
      help: "failoverd instances publishing their verdicts now (this one included), as this instance sees etcd",
      registers: [registry],
      collect() {
        this.set(s.members().length);
      },
    });
    new Gauge({
      name: "failoverd_quorum",
      help: "1 when etcd answers and a majority of the configured instances publish (a failure can be confirmed), else 0",
      registers: [registry],
      collect() {
        this.set(s.connected() && s.members().length >= majority(instances) ? 1 : 0);
      },
    });
    countOf(registry, "failoverd_leader_changes_total", "Leader changes this instance has seen", () => s.leaderChanges);
    countOf(registry, "failoverd_etcd_writes_total", "Writes this instance made to etcd (verdicts, journal records, inventory, registrations)", () => s.writes);
  }

  /** What /status shows of the instances (the daemon's Peers view). */
  status(): InstancesView {
    return this.peers.view();
  }

  /** Publishes this instance's HTTP API, so a follower can hand the acting instance a request. */
  async advertise(listening: { address: string; port: number }): Promise<void> {
    // A wildcard address is no address to call: the host's name stands for it.
    const host = listening.address === "0.0.0.0" ? hostname() : listening.address;
    await this.peers.advertise(`http://${host}:${listening.port}`);
  }
}

/** A counter that follows a running total the session keeps (each scrape adds what it grew by since the last). */
function countOf(registry: Registry, name: string, help: string, total: () => number): void {
  let seen = 0;
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      const now = total();
      this.inc(now - seen);
      seen = now;
    },
  });
}

/** The leader election as the daemon's `Lease`: held while this instance leads and before its own deadline. */
class EtcdLeaderLease implements Lease {
  constructor(private readonly session: EtcdSession) {}

  async acquire(): Promise<void> {
    try {
      await this.session.start();
    } catch (e) {
      await this.session.stop().catch(() => {});
      throw new ConfigError("coordination.endpoints", [`cannot reach etcd at ${this.session.opts.endpoints.join(", ")}: ${errorMessage(e).split("\n")[0]}`]);
    }
  }

  isHeld(): boolean {
    return this.session.isLeader();
  }

  async release(): Promise<void> {
    await this.session.stop();
  }

  holder(): LeaseHolder {
    return { leader: this.session.leader(), notActing: this.session.whyNotActing() };
  }

  onChange(listener: (held: boolean) => void): void {
    this.session.on("held", listener);
  }
}

/**
 * The recovery journal in etcd: one key per record, read in creation order. Every append is a transaction that
 * succeeds only while this instance's election key has the create revision it had when it was elected: a deposed
 * leader cannot record, and so cannot start, another step. Several records appended at once are one transaction
 * (one Raft round, where each record alone costs one): all of them or none.
 */
class EtcdJournal implements Journal {
  private seq = 0;
  private readonly nonce = randomBytes(3).toString("hex");
  constructor(private readonly session: EtcdSession) {}

  append(record: JournalRecord): Promise<void> {
    return this.appendAll([record]);
  }

  async appendAll(records: readonly JournalRecord[]): Promise<void> {
    const first = records[0];
    if (first === undefined) return;
    // An operator's control (pause, resume, maintenance) is no step: any instance records the one it was sent.
    if (first.type === "control" && records.length === 1) return this.recordControl(first);
    if (records.some((r) => r.type === "control")) throw new FailoverdError("a control is journaled alone, never with a recovery's records (a bug)");
    const s = this.session;
    const what = `${records.map((r) => r.type).join(" + ")} of ${first.id}`;
    const txn = s.isLeader() ? s.fenced() : null;
    if (!txn) throw new LeaseLostError(`not recording ${what}: ${s.whyNotActing() ?? "this instance no longer leads"}`);
    const keys = this.keysOf(records);
    let res: Awaited<ReturnType<typeof txn.commit>>;
    try {
      res = await txn.then(...records.map((r, i) => s.client.put(keys[i]!).value(JSON.stringify(r)))).commit();
    } catch (e) {
      throw new LeaseLostError(`could not record ${what} in etcd: ${errorMessage(e).split("\n")[0]}`);
    }
    s.writes++;
    if (!res.succeeded) throw new LeaseLostError(`etcd refused ${what}: this instance no longer leads`);
  }

  private async recordControl(record: Extract<JournalRecord, { type: "control" }>): Promise<void> {
    const s = this.session;
    try {
      await s.client.put(this.keysOf([record])[0]!).value(JSON.stringify(record)).exec();
    } catch (e) {
      throw new FailoverdError(`could not record the ${record.action} in etcd: ${errorMessage(e).split("\n")[0]}`);
    }
    s.writes++;
  }

  /**
   * One key per record, in their order. The records of one transaction share its create revision, so the key orders
   * them: each carries the first record's time and the next sequence number (a clock that stepped back between two
   * records of one append cannot reorder them).
   */
  private keysOf(records: readonly JournalRecord[]): string[] {
    const at = String(records[0]?.at ?? 0).padStart(15, "0");
    return records.map(() => this.session.key("journal", `${at}-${this.nonce}-${String(this.seq++).padStart(6, "0")}`));
  }

  async read(): Promise<JournalRecord[]> {
    const s = this.session;
    const res = await s.client.getAll().prefix(s.key("journal", "")).exec();
    // Creation order across writers (the revision), key order within one transaction (etcd's own sort is not stable).
    const kvs = [...res.kvs].sort((a, b) => compareRevisions(a.create_revision, b.create_revision) || Buffer.compare(a.key, b.key));
    return kvs.map((kv) => {
      try {
        return JSON.parse(kv.value.toString()) as JournalRecord;
      } catch {
        throw new JournalCorruptError(`the etcd journal record ${kv.key.toString()} is corrupt: failoverd will not act blindly`);
      }
    });
  }
}

/**
 * A hold as its key keeps it: the hold, or once an operator ended it `{"ended":{"by","at"}}` rather than no key, so
 * every instance reading the end can say who ended it (a deleted key says nothing). An expiry still deletes the key.
 */
function holdValue(hold: Hold | null, by: string): string {
  return JSON.stringify(hold ?? { ended: { by, at: Date.now() } });
}

/** Orders two etcd revisions (decimal strings of 64-bit numbers). */
function compareRevisions(a: string, b: string): number {
  const x = BigInt(a);
  const y = BigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** The other instances, for the daemon: their verdicts confirm (or not) a failure; the inventory is shared. */
class EtcdPeers implements Peers {
  readonly controls: SharedControls;

  constructor(
    private readonly session: EtcdSession,
    private readonly instances: number,
  ) {
    this.controls = new EtcdControls(session);
  }

  advertise(url: string): Promise<void> {
    return this.session.advertise(url);
  }

  async leaderApi(): Promise<{ instance: string; url: string } | null> {
    const s = this.session;
    const name = s.leader();
    if (name === null || s.isLeader()) return null;
    const r = await s.readJson<{ http?: unknown }>(s.key("members", encodeURIComponent(name)));
    return typeof r?.value.http === "string" ? { instance: name, url: r.value.http } : null;
  }

  confirm(diagnoses: readonly Diagnosis[], statusOf: (target: string) => TargetStatus | undefined): Diagnosis[] {
    const s = this.session;
    return confirmByQuorum({ diagnoses, self: s.instance, statusOf, peers: s.verdicts(), instances: this.instances, unknownBecause: s.connected() ? null : s.whyNotActing() });
  }

  get quorum(): number {
    return majority(this.instances);
  }

  onChange(cb: () => void): void {
    this.session.on("verdicts", cb);
  }

  async savePlacements(placements: readonly Placement[]): Promise<void> {
    const s = this.session;
    const txn = s.isLeader() ? s.fenced() : null;
    if (!txn) throw new LeaseLostError("not sharing the inventory: this instance no longer leads");
    const res = await txn.then(s.client.put(s.key("inventory")).value(JSON.stringify(placements))).commit();
    s.writes++;
    if (!res.succeeded) throw new LeaseLostError("etcd refused the inventory: this instance no longer leads");
  }

  onPlacements(cb: (placements: readonly Placement[]) => void): void {
    this.session.on("inventory", (value: unknown) => {
      // The acting instance wrote it; it already holds it.
      if (this.session.isLeader() || !Array.isArray(value)) return;
      cb(value as Placement[]);
    });
  }

  view(): InstancesView {
    const s = this.session;
    const verdicts: Record<string, Record<string, { status: string; kind?: string | undefined; since: number }>> = {};
    for (const [inst, vs] of s.verdicts()) {
      for (const [target, v] of vs) {
        if (v.status === "up") continue;
        verdicts[inst] ??= {};
        verdicts[inst][target] = { status: v.status, ...(v.kind ? { kind: v.kind } : {}), since: v.since };
      }
    }
    return {
      instance: s.instance,
      configured: this.instances,
      quorum: majority(this.instances),
      leader: s.leader(),
      acting: s.isLeader(),
      notActing: s.whyNotActing(),
      connected: s.connected(),
      observers: s.members(),
      leaderChanges: s.leaderChanges,
      lease: { ttlSeconds: s.ttlMs / 1000, msLeft: s.isLeader() ? Math.round(s.deadline() - performance.now()) : null },
      verdicts,
    };
  }

  async placements(): Promise<readonly Placement[] | null> {
    const r = await this.session.readJson<Placement[]>(this.session.key("inventory"));
    return r && Array.isArray(r.value) ? r.value : null;
  }
}

/**
 * The operator's holds in etcd, under `<prefix>/controls/`: `pause`, `maintenance/<host>`, `acks/<finding>` (a hold
 * an operator ended keeps who ended it: `holdValue`). Not fenced on leadership (any instance writes what it was sent)
 * and not under a lease (they outlive every instance). Each is one key written whole, so two writers at once leave
 * one whole value; an expiry deletes only the value it saw expire (compared in a transaction), never a newer one.
 * Every instance reads the changes through its watch, and all of them again after every whole read of the store
 * (what the watch may have missed).
 */
class EtcdControls implements SharedControls {
  private readonly listeners: ((c: SharedChange) => void)[] = [];
  private readonly resyncListeners: ((h: SharedHolds) => void)[] = [];

  constructor(private readonly session: EtcdSession) {
    session.on("watched", (key: string, value: string | null) => {
      const c = this.parse(key, value);
      if (c) for (const l of this.listeners) l(c);
    });
    session.on("controls", (entries: readonly (readonly [string, string])[]) => {
      const h = this.holdsOf(entries);
      for (const l of this.resyncListeners) l(h);
    });
  }

  private pauseKey(): string {
    return this.session.key("controls", "pause");
  }

  private maintenanceKey(host: string): string {
    return this.session.key("controls", "maintenance", encodeURIComponent(host));
  }

  private ackKey(key: string): string {
    return this.session.key("controls", "acks", encodeURIComponent(key));
  }

  private parse(key: string, value: string | null): SharedChange | null {
    const s = this.session;
    if (!key.startsWith(s.key("controls", ""))) return null;
    let v: unknown = null;
    if (value !== null) {
      try {
        v = JSON.parse(value) as unknown;
      } catch {
        return null;
      }
      if (typeof v !== "object" || v === null) return null;
    }
    // A hold ended by an operator: no hold, and who ended it.
    const ended = (v as { ended?: { by?: unknown } } | null)?.ended;
    const by = typeof ended?.by === "string" ? ended.by : undefined;
    if (ended !== undefined) v = null;
    if (key === this.pauseKey()) return { kind: "pause", hold: v as Hold | null, by };
    const m = s.key("controls", "maintenance", "");
    if (key.startsWith(m)) return { kind: "maintenance", host: decodeURIComponent(key.slice(m.length)), hold: v as Maintenance | null, by };
    const a = s.key("controls", "acks", "");
    if (key.startsWith(a)) return { kind: "ack", key: decodeURIComponent(key.slice(a.length)), ack: v as { by: string; at: number } | null };
    return null;
  }

  private async write(what: string, op: () => Promise<unknown>): Promise<void> {
    try {
      await op();
    } catch (e) {
      throw new FailoverdError(`etcd did not take the ${what} (${errorMessage(e).split("\n")[0]}): every instance shares it through etcd, so nothing changed`);
    }
    this.session.writes++;
  }

  setPause(hold: Hold | null, by: string): Promise<void> {
    const c = this.session.client;
    return this.write(hold ? "pause" : "resume", () => c.put(this.pauseKey()).value(holdValue(hold, by)).exec());
  }

  setMaintenance(host: string, m: Maintenance | null, by: string): Promise<void> {
    const c = this.session.client;
    return this.write(m ? "maintenance" : "end of maintenance", () => c.put(this.maintenanceKey(host)).value(holdValue(m, by)).exec());
  }

  async endExpired(what: { host?: string | undefined }, hold: Hold): Promise<boolean> {
    const c = this.session.client;
    const key = what.host !== undefined ? this.maintenanceKey(what.host) : this.pauseKey();
    const res = await c.if(key, "Value", "==", JSON.stringify(hold)).then(c.delete().key(key)).commit();
    this.session.writes++;
    return res.succeeded;
  }

  async acknowledge(keys: readonly string[], by: string, at: number): Promise<void> {
    if (keys.length === 0) return;
    const c = this.session.client;
    await this.write("acknowledgement", () => Promise.all(keys.map((k) => c.put(this.ackKey(k)).value(JSON.stringify({ by, at })).exec())));
  }

  async forgetAck(key: string): Promise<void> {
    await this.session.client.delete().key(this.ackKey(key)).exec();
    this.session.writes++;
  }

  async read(): Promise<SharedHolds> {
    const res = await this.session.client.getAll().prefix(this.session.key("controls", "")).exec();
    return this.holdsOf(res.kvs.map((kv) => [kv.key.toString(), kv.value.toString()] as const));
  }

  private holdsOf(entries: readonly (readonly [string, string])[]): SharedHolds {
    let pause: Hold | null = null;
    let pauseEndedBy: string | null = null;
    const maintenance = new Map<string, Maintenance>();
    const maintenanceEndedBy = new Map<string, string>();
    const acks = new Map<string, { by: string; at: number }>();
    for (const [key, value] of entries) {
      const c = this.parse(key, value);
      if (c?.kind === "pause") [pause, pauseEndedBy] = [c.hold, c.by ?? null];
      else if (c?.kind === "maintenance" && c.hold) maintenance.set(c.host, c.hold);
      else if (c?.kind === "maintenance" && c.by !== undefined) maintenanceEndedBy.set(c.host, c.by);
      else if (c?.kind === "ack" && c.ack) acks.set(c.key, c.ack);
    }
    return { pause, maintenance, acks, endedBy: { pause: pauseEndedBy, maintenance: maintenanceEndedBy } };
  }

  onChange(cb: (change: SharedChange) => void): void {
    this.listeners.push(cb);
  }

  onResync(cb: (holds: SharedHolds) => void): void {
    this.resyncListeners.push(cb);
  }
}
