/**
 * One failoverd instance's session with etcd: its lease (kept alive by hand, so the deadline is ours), its
 * candidacy in the leader election, the verdicts it publishes, and what it reads of the others.
 *
 * The election follows etcd's `client/v3/concurrency`: each candidate puts `<prefix>/election/<lease id>` under its
 * own lease; the lowest create revision leads. The fencing token is that key's create revision: a write that must
 * only happen while leading is a transaction comparing it (`fenced`), so a deposed leader's write fails in etcd
 * whatever it believes. Its belief is bounded too: it stops acting at its own deadline, the time its last successful
 * keep-alive was *sent* + TTL - margin, whatever the client library says (its `lost` event can be 2 x TTL late).
 */
import { EventEmitter } from "node:events";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { Etcd3, EtcdLeaseInvalidError, type IOptions, type Lease as EtcdLease, type Watcher } from "etcd3";
import type { TargetStatus } from "../checks/detector.ts";
import { errorMessage } from "../errors.ts";
import type { Logger } from "../log.ts";

export interface SessionOptions {
  readonly endpoints: readonly string[];
  /** Key prefix, no trailing '/'. */
  readonly prefix: string;
  /** This instance's name. */
  readonly instance: string;
  readonly ttlSeconds: number;
  readonly auth?: { readonly username: string; readonly password: string } | undefined;
  readonly tls?: { readonly ca?: Buffer | undefined; readonly cert?: Buffer | undefined; readonly key?: Buffer | undefined } | undefined;
  readonly log: Logger;
}

/** One instance's published view of one target. */
export interface Verdict {
  readonly status: TargetStatus;
  /** The failure's kind (refused, timeout, ...) when down. */
  readonly kind?: string | undefined;
  /**
   * Failing now with evidence that its process is gone (refused, reset), not down yet: what lets a majority confirm
   * a crash as early as one instance acting alone would act on it. Published on change only.
   */
  readonly failing?: string | undefined;
  /** When this status began (the instance's clock). */
  readonly since: number;
}

/** The verdicts of every instance publishing now: instance -> target -> verdict. */
export type Verdicts = ReadonlyMap<string, ReadonlyMap<string, Verdict>>;

const enc = encodeURIComponent;

/** gRPC keep-alive pings while a call (the watch) is open, and how long one may go unanswered. */
const WATCH_PING_MS = 6000;
const WATCH_PING_TIMEOUT_MS = 2000;

export class EtcdSession extends EventEmitter {
  readonly client: Etcd3;
  readonly instance: string;
  readonly ttlMs: number;
  /** The leader stops acting this long before its lease could have expired. */
  readonly marginMs: number;
  private lease: EtcdLease | null = null;
  private leaseId: string | null = null;
  /** The create revision of our election key: the fencing token. */
  private token: string | null = null;
  private lastOkSentAt = Number.NEGATIVE_INFINITY;
  private leaderName: string | null = null;
  private leaderIsUs = false;
  private problem: string | null = "not started";
  private stopped = false;
  private loop: Promise<void> | null = null;
  private watcher: Watcher | null = null;
  private readonly peers = new Map<string, Map<string, Verdict>>();
  /** The instances whose member key (under their lease) exists: those publishing now. */
  private memberNames = new Set<string>();
  private readonly mine = new Map<string, Verdict>();
  private readonly dirty = new Set<string>();
  private flushing: Promise<void> | null = null;
  private wasHeld = false;
  /** Whether this outage of etcd has been logged. */
  private unreachableSaid = false;
  /** Writes made, for the cost benchmark and metrics. */
  writes = 0;
  leaderChanges = 0;

  constructor(readonly opts: SessionOptions) {
    super();
    this.instance = opts.instance;
    this.ttlMs = opts.ttlSeconds * 1000;
    this.marginMs = Math.max(300, Math.floor(this.ttlMs / 3));
    const options: IOptions = {
      hosts: [...opts.endpoints],
      dialTimeout: 2000,
      // Every call has a deadline shorter than the time we may lead on one keep-alive; the keep-alive's stream too.
      // Not the watch's stream: it lives as long as the session, and a deadline cut it every callTimeoutMs (the
      // client re-created it after a backoff, and everything written meanwhile arrived 100-150 ms late, in a burst;
      // each cut also cost a read of the whole prefix). A watch on a connection that died silently is found by
      // gRPC's keep-alive pings instead (etcd accepts one every 5 s at most: --grpc-keepalive-min-time).
      defaultCallOptions: (ctx) => (ctx.service === "Watch" ? {} : { deadline: Date.now() + this.callTimeoutMs }),
      grpcOptions: { "grpc.keepalive_time_ms": WATCH_PING_MS, "grpc.keepalive_timeout_ms": WATCH_PING_TIMEOUT_MS },
      ...(opts.auth ? { auth: { username: opts.auth.username, password: opts.auth.password } } : {}),
      ...(opts.tls?.ca ? { credentials: { rootCertificate: opts.tls.ca, ...(opts.tls.key ? { privateKey: opts.tls.key } : {}), ...(opts.tls.cert ? { certChain: opts.tls.cert } : {}) } } : {}),
    };
    this.client = new Etcd3(options);
  }

  /** A keep-alive that answers later than this leaves too little of the lease to act on. */
  private get callTimeoutMs(): number {
    return Math.max(1000, Math.floor(this.ttlMs / 2));
  }

  private get tickMs(): number {
    return Math.max(200, Math.floor(this.ttlMs / 6));
  }

  key(...parts: string[]): string {
    return [this.opts.prefix, ...parts].join("/");
  }

  /** Registers (lease, candidacy, verdicts) and starts the keep-alive loop. Throws when etcd cannot be reached. */
  async start(): Promise<void> {
    await this.register();
    await this.resync();
    this.loop = this.run();
  }

  /** Ends the session: resigns and revokes the lease (closing the client alone leaves both alive for a TTL). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.deadlineTimer?.close();
    await this.loop?.catch(() => {});
    await this.watcher?.cancel().catch(() => {});
    try {
      if (this.lease) await this.lease.revoke();
    } catch (e) {
      this.opts.log.warn({ err: errorMessage(e) }, "could not revoke the etcd lease; it ends on its own within its TTL");
    }
    this.lease = null;
    this.client.close();
  }

  /** True while this instance leads and its own deadline has not passed. */
  isLeader(): boolean {
    const held = this.leaderIsUs && this.token !== null && performance.now() < this.deadline();
    // Every change is told, whoever notices it: a deadline that passes between two keep-alives is a loss too, even
    // when the next keep-alive makes this instance leader again (it must then read the journal again).
    if (held !== this.wasHeld) {
      this.wasHeld = held;
      queueMicrotask(() => this.emit("held", held));
    }
    return held;
  }

  /** Last successful keep-alive (when it was sent) + TTL - margin. */
  deadline(): number {
    return this.lastOkSentAt + this.ttlMs - this.marginMs;
  }

  leader(): string | null {
    return this.problem === null || this.leaderIsUs ? this.leaderName : null;
  }

  /** Why this instance may not act now, or null. */
  whyNotActing(): string | null {
    if (this.problem !== null) return `etcd: ${this.problem}; no instance acts without etcd`;
    if (!this.leaderIsUs) return this.leaderName ? `${this.leaderName} is the acting instance; ${this.instance} observes` : "no leader is elected yet";
    if (performance.now() >= this.deadline()) return "the leader's lease deadline passed without a keep-alive";
    return null;
  }

  /** Whether etcd answered our last keep-alive. */
  connected(): boolean {
    return this.problem === null;
  }

  /** The verdicts of the other instances publishing now (empty while etcd does not answer: they may be stale). */
  verdicts(): Verdicts {
    return this.problem === null ? this.peers : new Map();
  }

  /** The instances publishing now (this one included), as of the last keep-alive; empty while etcd does not answer. */
  members(): string[] {
    return this.problem === null ? [...this.memberNames].sort() : [];
  }

  /** Records this instance's verdict; written to etcd (changes only, coalesced) under our lease. */
  publish(target: string, v: Verdict): void {
    const prev = this.mine.get(target);
    // A status change keeps the crash evidence while the target is not down (down says it all).
    const failing = v.status === "down" ? undefined : (v.failing ?? prev?.failing);
    if (prev && prev.status === v.status && prev.kind === v.kind && prev.failing === failing) return;
    this.mine.set(target, { ...v, failing });
    this.dirty.add(target);
    this.flushSoon();
  }

  /**
   * Records whether a target fails now with crash evidence (the kind that began it) or not (undefined); written when
   * that starts or ends. A run that goes on with another kind of crash evidence (a kept connection reset, then
   * refused) writes nothing more: the others weigh only whether it is crash evidence, and at a crash every write costs
   * every instance and etcd member CPU the acting instance is waiting for.
   */
  publishFailing(target: string, failing: string | undefined): void {
    const prev = this.mine.get(target);
    if (!prev || prev.failing === failing || (prev.status === "down" && failing !== undefined)) return;
    if (prev.failing !== undefined && failing !== undefined) return;
    this.mine.set(target, { ...prev, failing });
    this.dirty.add(target);
    this.flushSoon();
  }

  /** A transaction that succeeds only while our election key still has our create revision. */
  fenced() {
    if (this.token === null || this.leaseId === null) return null;
    return this.client.if(this.key("election", this.leaseId), "Create", "==", this.token);
  }

  /** Reads one key's JSON value (null when absent). */
  async readJson<T>(key: string): Promise<{ value: T; revision: string } | null> {
    const res = await this.client.get(key).exec();
    const kv = res.kvs[0];
    if (!kv) return null;
    return { value: JSON.parse(kv.value.toString()) as T, revision: kv.mod_revision };
  }

  private flushSoon(): void {
    if (this.flushing || this.lease === null) return;
    this.flushing = (async () => {
      // The rest of this turn of the event loop gathers the changes of one check round (or of many targets at once).
      await new Promise<void>((r) => setImmediate(r));
      while (this.dirty.size > 0 && !this.stopped && this.lease !== null) {
        const batch = [...this.dirty].slice(0, 100);
        for (const t of batch) this.dirty.delete(t);
        const lease = this.leaseId;
        try {
          await this.client
            .if(this.key("members", enc(this.instance)), "Lease", "==", lease!)
            .then(...batch.map((t) => this.client.put(this.key("verdicts", enc(this.instance), enc(t))).value(JSON.stringify(this.mine.get(t))).lease(lease!)))
            .commit();
          this.writes++;
        } catch (e) {
          for (const t of batch) this.dirty.add(t);
          this.opts.log.debug({ err: errorMessage(e) }, "publishing verdicts failed; retried at the next keep-alive");
          break;
        }
      }
    })().finally(() => {
      this.flushing = null;
    });
  }

  /** A new lease, our member key and candidacy under it, and every current verdict again. */
  private async register(): Promise<void> {
    const lease = this.client.lease(this.opts.ttlSeconds, { autoKeepAlive: false });
    lease.on("lost", () => {});
    const sent = performance.now();
    const id = await lease.grant();
    if (typeof id !== "string") throw id;
    const member = this.key("members", enc(this.instance));
    const candidate = this.key("election", id);
    const res = await this.client
      .if(candidate, "Create", "==", 0)
      .then(
        this.client.put(member).value(this.memberValue()).lease(id),
        this.client.put(candidate).value(this.instance).lease(id),
      )
      .commit();
    this.writes++;
    this.lease = lease;
    this.leaseId = id;
    this.token = String(res.header.revision);
    this.lastOkSentAt = sent;
    this.problem = null;
    for (const t of this.mine.keys()) this.dirty.add(t);
    this.flushSoon();
    this.opts.log.info({ lease: id, instance: this.instance }, `joined the etcd election as ${this.instance}`);
  }

  /**
   * What a keep-alive tick reads. Every tick: the election and the member keys (a handful of small keys, keys only
   * for the members). The verdicts and the shared inventory come from the watch; the whole prefix is read again only
   * when the watch may have missed something: at start, after etcd did not answer or our lease was renewed, after the
   * watch's stream broke or etcd cancelled it. (Reading the whole prefix every tick cost every instance and etcd a
   * read of every instance's verdicts several times a second: 15,000 keys at 5,000 endpoints x 3 instances.)
   */
  private async resync(): Promise<void> {
    if (this.fullReadDue || this.watcher === null) return this.readAll();
    const [election, members] = await Promise.all([
      this.client.getAll().prefix(this.key("election", "")).exec(),
      this.client.getAll().prefix(this.key("members", "")).keys(),
    ]);
    const before = this.memberNames;
    this.applyElection(
      election.kvs.map((kv) => ({ rev: BigInt(kv.create_revision), key: kv.key.toString(), name: kv.value.toString() })),
      new Set(members.map((k) => decodeURIComponent(k.slice(this.key("members", "").length)))),
    );
    // Who publishes changed: the daemon evaluates again (as after every full read).
    if (before.size !== this.memberNames.size || [...before].some((n) => !this.memberNames.has(n))) this.emit("verdicts");
  }

  /** Set when the watch may have missed events: the next tick reads the whole prefix. */
  private fullReadDue = true;

  /**
   * The election, every verdict and the operator's holds read at once (one consistent revision), then a watch from it.
   * Emits `verdicts`, then `controls` with every key and value under `controls/`.
   */
  private async readAll(): Promise<void> {
    this.fullReadDue = false;
    let res: Awaited<ReturnType<ReturnType<Etcd3["getAll"]>["exec"]>>;
    try {
      res = await this.client.getAll().prefix(`${this.opts.prefix}/`).exec();
    } catch (e) {
      this.fullReadDue = true;
      throw e;
    }
    const election: { rev: bigint; key: string; name: string }[] = [];
    this.peers.clear();
    const members = new Set<string>();
    const controls: [string, string][] = [];
    for (const kv of res.kvs) {
      const k = kv.key.toString();
      if (k.startsWith(this.key("election", ""))) election.push({ rev: BigInt(kv.create_revision), key: k, name: kv.value.toString() });
      else if (k.startsWith(this.key("verdicts", ""))) this.applyVerdict(k, kv.value.toString());
      else if (k === this.key("inventory")) this.applyShared(kv.mod_revision, kv.value.toString());
      else if (k.startsWith(this.key("members", ""))) members.add(decodeURIComponent(k.slice(this.key("members", "").length)));
      else if (k.startsWith(this.key("controls", ""))) controls.push([k, kv.value.toString()]);
    }
    this.applyElection(election, members);
    if (!this.watcher) {
      const w = await this.client.watch().prefix(`${this.opts.prefix}/`).startRevision(String(BigInt(res.header.revision) + 1n)).create();
      w.on("put", (kv) => {
        const k = kv.key.toString();
        this.emit("watched", k, kv.value.toString());
        if (k === this.key("inventory")) this.applyShared(kv.mod_revision, kv.value.toString());
        if (!k.startsWith(this.key("verdicts", ""))) return;
        this.applyVerdict(k, kv.value.toString());
        this.emit("verdicts");
      });
      w.on("delete", (kv) => {
        const k = kv.key.toString();
        this.emit("watched", k, null);
        if (k.startsWith(this.key("election", ""))) this.electionChanged();
        if (!k.startsWith(this.key("verdicts", ""))) return;
        this.applyVerdict(k, null);
        this.emit("verdicts");
      });
      // The stream broke: the client reconnects the watch on its own; read everything again to be sure.
      w.on("disconnected", () => {
        this.fullReadDue = true;
      });
      // etcd cancelled the watch (e.g. its revision was compacted): a new one from the next full read.
      w.on("error", () => {
        this.fullReadDue = true;
        if (this.watcher === w) this.watcher = null;
        w.cancel().catch(() => {});
      });
      this.watcher = w;
    }
    this.emit("verdicts");
    // The operator's holds as they are now: what the watch missed of them is in here too.
    this.emit("controls", controls);
  }

  /** Where this instance's HTTP API answers (published in its member key), once known. */
  private httpUrl: string | null = null;

  private memberValue(): string {
    return JSON.stringify({ instance: this.instance, pid: process.pid, since: Date.now(), ...(this.httpUrl ? { http: this.httpUrl } : {}) });
  }

  /** Publishes this instance's HTTP API in its member key (now, and at every registration). */
  async advertise(url: string): Promise<void> {
    this.httpUrl = url;
    if (this.leaseId === null) return;
    await this.client.put(this.key("members", enc(this.instance))).value(this.memberValue()).lease(this.leaseId);
    this.writes++;
  }

  /** The leader is the candidate with the lowest create revision. */
  private applyElection(election: { rev: bigint; key: string; name: string }[], members: Set<string>): void {
    this.memberNames = members;
    election.sort((a, b) => (a.rev < b.rev ? -1 : a.rev > b.rev ? 1 : 0));
    const first = election[0];
    const name = first?.name ?? null;
    const us = first !== undefined && this.leaseId !== null && first.key === this.key("election", this.leaseId);
    if (name !== this.leaderName || us !== this.leaderIsUs) {
      if (this.leaderName !== null || name !== null) this.leaderChanges++;
      this.opts.log.info({ leader: name }, name ? `leader: ${name}${us ? " (this instance)" : ""}` : "no leader");
    }
    this.leaderName = name;
    this.leaderIsUs = us;
  }

  private sharedRevision = "";

  /** The shared inventory (where the hosts live now), written by the acting instance. */
  private applyShared(revision: string, value: string): void {
    if (revision === this.sharedRevision) return;
    this.sharedRevision = revision;
    try {
      this.emit("inventory", JSON.parse(value) as unknown);
    } catch {
      // A value that does not parse is ignored: the next write replaces it.
    }
  }

  private applyVerdict(key: string, value: string | null): void {
    const rest = key.slice(this.key("verdicts", "").length).split("/");
    if (rest.length !== 2) return;
    const inst = decodeURIComponent(rest[0]!);
    const target = decodeURIComponent(rest[1]!);
    if (inst === this.instance) return;
    let m = this.peers.get(inst);
    if (value === null) {
      m?.delete(target);
      if (m?.size === 0) this.peers.delete(inst);
      return;
    }
    try {
      const v = JSON.parse(value) as Verdict;
      if (!m) {
        m = new Map();
        this.peers.set(inst, m);
      }
      m.set(target, v);
    } catch {
      // Not ours to judge: a malformed verdict counts as none.
    }
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      await sleep(this.tickMs);
      if (this.stopped) break;
      await this.tick();
    }
  }

  private async tick(): Promise<void> {
    const sent = performance.now();
    // After etcd did not answer, or with a new lease, the watch may have missed changes: read everything.
    if (this.problem !== null || this.lease === null) this.fullReadDue = true;
    try {
      if (this.lease === null) {
        await this.register();
      } else {
        await this.lease.keepaliveOnce();
        this.lastOkSentAt = sent;
      }
      await this.resync();
      if (this.problem !== null) this.opts.log.warn("etcd answers again");
      this.problem = null;
      this.unreachableSaid = false;
      if (this.dirty.size > 0) this.flushSoon();
    } catch (e) {
      if (e instanceof EtcdLeaseInvalidError) {
        // Our lease expired (we were stopped, or cut off longer than the TTL): our candidacy and verdicts are gone.
        this.opts.log.warn("the etcd lease expired: standing again for election, at the back of the queue");
        this.lease = null;
        this.leaseId = null;
        this.token = null;
        this.leaderIsUs = false;
        this.problem = "the lease expired";
      } else {
        // The first clause only: grpc appends timings that differ on every failure (and an empty resolution note).
        const why = (errorMessage(e).split(/[\n,]/)[0] ?? "error").replace(/\.?\s*Resolution note:\s*$/, "");
        // Said once per outage: the reason's text changes with the endpoint tried, and /status shows the latest.
        if (!this.unreachableSaid) this.opts.log.error({ err: why }, `etcd unreachable: ${why}; not acting`);
        this.unreachableSaid = true;
        this.problem = why;
      }
    }
    this.armDeadline();
  }

  /** While leading: the loss is noticed at the deadline even if no keep-alive or caller comes before it. */
  private armDeadline(): void {
    if (!this.isLeader()) return;
    this.deadlineTimer?.close();
    this.deadlineTimer = setTimeout(() => this.isLeader(), Math.max(0, this.deadline() - performance.now()) + 1).unref();
  }

  private electionReading = false;

  /**
   * A candidate's key was deleted (its lease expired or was revoked): the election is read at once rather than at the
   * next tick, so the next leader takes over as soon as etcd ends the last one's lease. Only while etcd answers and
   * our own lease is alive; the leadership still rests on our last keep-alive's deadline and on the fenced writes.
   */
  private electionChanged(): void {
    if (this.stopped || this.electionReading || this.problem !== null || this.lease === null) return;
    this.electionReading = true;
    this.resync()
      .then(
        () => this.armDeadline(),
        () => {},
      )
      .finally(() => {
        this.electionReading = false;
      });
  }

  private deadlineTimer: NodeJS.Timeout | null = null;
}
