/**
 * Traffic like the seed's `redis-test 7001`: a sequential writer of numbered keys (one operation in flight, each
 * with a deadline) and a prober that opens a fresh connection at a fixed period. Every acknowledgement is kept with
 * its time, so outage and lost writes can be computed afterwards.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { Redis, type RedisOptions } from "ioredis";
import { ioredisTls, type RedisAuth } from "../admin/redis.ts";

export interface Ack {
  readonly seq: number;
  readonly at: number;
  /** The run_id of the server that acknowledged it (with `identify`). */
  readonly server?: string;
}

export interface ProbeResult {
  readonly at: number;
  readonly ok: boolean;
  readonly latencyMs: number;
  /** The key the probe wrote (`<prefix>:probe:<n>`). */
  readonly key: string;
  readonly server?: string;
}

/** One write that also names the server that took it: SET, then the run_id from INFO server (Redis 7 allows INFO in scripts). */
const IDENTIFIED_SET =
  "redis.call('SET', KEYS[1], ARGV[1]) return string.match(redis.call('INFO', 'server'), 'run_id:(%w+)')";

export interface TrafficOptions {
  readonly address: string;
  readonly port: number;
  readonly auth?: RedisAuth;
  /** Key prefix, so several writers and runs never collide. */
  readonly prefix: string;
  readonly opTimeoutMs?: number;
  /** 0: no prober. */
  readonly probeEveryMs?: number;
  readonly now?: () => number;
  /** Every write also returns the run_id of the server that acknowledged it (a one-line Lua script instead of SET). */
  readonly identify?: boolean;
  /** ioredis options merged over the probe-safe defaults, e.g. `{ sentinels, name }` for Sentinel mode. */
  readonly redis?: Partial<RedisOptions>;
}

export class Traffic {
  readonly acks: Ack[] = [];
  readonly failures: { at: number; error: string }[] = [];
  readonly probes: ProbeResult[] = [];
  private readonly stopping = new AbortController();
  private running: Promise<unknown> | null = null;
  private readonly now: () => number;

  constructor(private readonly o: TrafficOptions) {
    this.now = o.now ?? Date.now;
  }

  start(): void {
    this.running = Promise.all([this.writer(), this.o.probeEveryMs === 0 ? null : this.prober()]);
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    await this.running;
  }

  key(seq: number): string {
    return `${this.o.prefix}:${seq}`;
  }

  private client(): Redis {
    const c = new Redis({
      host: this.o.address,
      port: this.o.port,
      username: this.o.auth?.username,
      password: this.o.auth?.password,
      tls: ioredisTls(this.o.auth?.tls),
      lazyConnect: true,
      connectTimeout: this.o.opTimeoutMs ?? 1000,
      commandTimeout: this.o.opTimeoutMs ?? 1000,
      enableOfflineQueue: false,
      enableReadyCheck: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      ...this.o.redis,
    });
    c.on("error", () => {});
    return c;
  }

  /** SET key value; resolves with the acknowledging server's run_id when identifying, else "". */
  private async set(c: Redis, key: string, value: string): Promise<string> {
    if (this.o.identify) {
      const id = await c.eval(IDENTIFIED_SET, 1, key, value);
      if (typeof id !== "string") throw new Error(`the write answered ${String(id)}`);
      return id;
    }
    const reply = await c.set(key, value);
    if (reply !== "OK") throw new Error(`SET answered ${String(reply)}`);
    return "";
  }

  /** One write in flight; on failure a fresh connection and the same key again. */
  private async writer(): Promise<void> {
    let seq = 1;
    const conn: { c: Redis | null } = { c: null };
    while (!this.stopping.signal.aborted) {
      try {
        const op = async () => {
          if (!conn.c) {
            conn.c = this.client();
            await conn.c.connect();
          }
          return this.set(conn.c, this.key(seq), String(seq));
        };
        // One deadline for the whole operation, connection included.
        const server = await withTimeout(op(), this.o.opTimeoutMs ?? 1000);
        this.acks.push(server ? { seq, at: this.now(), server } : { seq, at: this.now() });
        seq += 1;
      } catch (e) {
        this.failures.push({ at: this.now(), error: (e as Error).message.split("\n")[0] ?? "" });
        conn.c?.disconnect();
        conn.c = null;
        await sleep(10);
      }
    }
    conn.c?.disconnect();
  }

  /** A fresh connection every period: can a new client write now? */
  private async prober(): Promise<void> {
    const every = this.o.probeEveryMs ?? 200;
    let n = 0;
    while (!this.stopping.signal.aborted) {
      const at = this.now();
      const c = this.client();
      const key = `${this.o.prefix}:probe:${n++}`;
      let ok = false;
      let server = "";
      try {
        // One deadline for the whole probe, connection included, like the writer's.
        server = await withTimeout(
          c.connect().then(() => this.set(c, key, "1")),
          this.o.opTimeoutMs ?? 1000,
        );
        ok = true;
      } catch {
        ok = false;
      }
      c.disconnect();
      this.probes.push({ at, ok, latencyMs: this.now() - at, key, ...(server ? { server } : {}) });
      await sleep(Math.max(0, at + every - this.now()), undefined, { signal: this.stopping.signal }).catch(() => {});
    }
  }
}

/**
 * The longest time without an acknowledgement in [from, to]: between two consecutive acks, from the last ack before
 * `from` to the first after it, or from the last ack to `to` when writes never came back.
 */
export function longestGap(acks: readonly Ack[], from: number, to: number): { ms: number; start: number; end: number } {
  let best = { ms: 0, start: from, end: from };
  let prev = acks.filter((a) => a.at <= from).at(-1)?.at ?? from;
  for (const a of acks) {
    if (a.at <= from) continue;
    if (a.at > to) break;
    if (a.at - prev > best.ms) best = { ms: a.at - prev, start: prev, end: a.at };
    prev = a.at;
  }
  if (to - prev > best.ms) best = { ms: to - prev, start: prev, end: to };
  return best;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no reply within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
