/**
 * Traffic like the seed's `redis-test 7001`: a sequential writer of numbered keys (one operation in flight, each
 * with a deadline) and a prober that opens a fresh connection at a fixed period. Every acknowledgement is kept with
 * its time, so outage and lost writes can be computed afterwards.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import type { RedisAuth } from "../admin/redis.ts";

export interface Ack {
  readonly seq: number;
  readonly at: number;
}

export interface ProbeResult {
  readonly at: number;
  readonly ok: boolean;
  readonly latencyMs: number;
}

export interface TrafficOptions {
  readonly address: string;
  readonly port: number;
  readonly auth?: RedisAuth;
  /** Key prefix, so several writers and runs never collide. */
  readonly prefix: string;
  readonly opTimeoutMs?: number;
  readonly probeEveryMs?: number;
  readonly now?: () => number;
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
    this.running = Promise.all([this.writer(), this.prober()]);
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
      tls: this.o.auth?.tls ? {} : undefined,
      lazyConnect: true,
      connectTimeout: this.o.opTimeoutMs ?? 1000,
      commandTimeout: this.o.opTimeoutMs ?? 1000,
      enableOfflineQueue: false,
      enableReadyCheck: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    c.on("error", () => {});
    return c;
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
          return conn.c.set(this.key(seq), String(seq));
        };
        // One deadline for the whole operation, connection included.
        const reply = await withTimeout(op(), this.o.opTimeoutMs ?? 1000);
        if (reply !== "OK") throw new Error(`SET answered ${String(reply)}`);
        this.acks.push({ seq, at: this.now() });
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
      let ok = false;
      try {
        await c.connect();
        ok = (await c.set(`${this.o.prefix}:probe:${n++}`, "1")) === "OK";
      } catch {
        ok = false;
      }
      c.disconnect();
      this.probes.push({ at, ok, latencyMs: this.now() - at });
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
