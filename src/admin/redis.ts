/**
 * A Redis client for probes and administration, on ioredis with probe-safe options: every command has a deadline
 * (ioredis' connectTimeout does not catch a hung server; commandTimeout does), no offline queue, no retry, no silent
 * reconnect. A broken connection is dropped and the next call opens a fresh one.
 *
 * Every failure is a ProbeError whose `kind` keeps the evidence (refused, timeout, reset, error-reply, loading,
 * protocol), because a refusal confirmed by witnesses means something different from a timeout.
 */
import { Redis, ReplyError } from "ioredis";
import { ProbeError, type ProbeFailureKind } from "../errors.ts";

export interface Endpoint {
  readonly address: string;
  readonly port: number;
}

export interface RedisAuth {
  readonly username?: string | undefined;
  readonly password?: string | undefined;
  /** TLS for the connection (PEM texts); absent = plain TCP. */
  readonly tls?: TlsOptions | undefined;
}

export interface TlsOptions {
  readonly ca?: string | undefined;
  readonly cert?: string | undefined;
  readonly key?: string | undefined;
  readonly servername?: string | undefined;
}

/** ioredis' `tls` option for these settings (verification always on). */
export function ioredisTls(tls: TlsOptions | undefined): Record<string, string> | undefined {
  if (!tls) return undefined;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(tls)) if (typeof v === "string") out[k] = v;
  return out;
}

export type RoleReply =
  | { readonly role: "primary"; readonly offset: number; readonly replicas: readonly ReplicaInfo[] }
  | {
      readonly role: "replica";
      readonly primary: Endpoint;
      readonly linkState: string;
      readonly offset: number;
    };

export interface ReplicaInfo {
  readonly address: string;
  readonly port: number;
  readonly offset: number;
}

export const endpointId = (e: Endpoint): string => `${e.address}:${e.port}`;

export class RedisAdminClient {
  private client: Redis | null = null;
  private connecting: Promise<Redis> | null = null;

  constructor(
    readonly endpoint: Endpoint,
    private readonly timeoutMs: number,
    private readonly auth: RedisAuth = {},
  ) {}

  /** Sends one command; resolves with its reply or rejects with a ProbeError within the deadline. */
  async call(command: string, ...args: (string | number)[]): Promise<unknown> {
    const deadline = this.timeoutMs;
    const client = await this.connected();
    try {
      return await withDeadline(client.call(command, ...args), deadline, `${command} on ${endpointId(this.endpoint)}`);
    } catch (e) {
      const err = classify(e, this.endpoint, command);
      if (err.kind === "timeout" || err.kind === "reset" || err.kind === "refused") this.drop();
      throw err;
    }
  }

  /** PING and INFO replication under one deadline: a ProbeConnection (the check) on this client. */
  async probe(deadlineMs: number): Promise<readonly [unknown, unknown, string | undefined, number | undefined]> {
    const [pong, info, server, keyspace] = await withDeadline(
      Promise.all([
        this.call("PING"),
        this.call("INFO", "replication"),
        this.call("INFO", "server").catch(() => undefined),
        this.call("INFO", "keyspace").catch(() => undefined),
      ]),
      deadlineMs,
      `check of ${endpointId(this.endpoint)}`,
    );
    return [pong, info, typeof server === "string" ? runIdOf(server) : undefined, typeof keyspace === "string" ? keysOf(keyspace) : undefined];
  }

  /** The server's run_id (INFO server), or undefined when it does not say. */
  async runId(): Promise<string | undefined> {
    const reply = await this.call("INFO", "server");
    return typeof reply === "string" ? runIdOf(reply) : undefined;
  }

  async role(): Promise<RoleReply> {
    return parseRole(await this.call("ROLE"), this.endpoint);
  }

  async info(section: string): Promise<Record<string, string>> {
    const reply = await this.call("INFO", section);
    if (typeof reply !== "string") {
      throw new ProbeError("protocol", `INFO ${section} on ${endpointId(this.endpoint)} answered a non-string`);
    }
    return parseInfo(reply);
  }

  close(): void {
    this.drop();
  }

  private async connected(): Promise<Redis> {
    if (this.client && this.client.status === "ready") return this.client;
    if (this.connecting) return this.connecting;
    this.drop();
    const client = new Redis({
      host: this.endpoint.address,
      port: this.endpoint.port,
      username: this.auth.username,
      password: this.auth.password,
      tls: ioredisTls(this.auth.tls),
      lazyConnect: true,
      connectTimeout: this.timeoutMs,
      commandTimeout: this.timeoutMs,
      // Without it ioredis keeps a dropped connection (and the process) alive for 2 s after disconnect().
      disconnectTimeout: 0,
      enableReadyCheck: false,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      reconnectOnError: () => false,
      autoResubscribe: false,
      showFriendlyErrorStack: false,
    });
    // Without a listener ioredis would print unhandled 'error' events. The socket's own error (ECONNREFUSED) is
    // kept: ioredis rejects connect() with a generic "Connection is closed", which would lose the evidence.
    let socketError: unknown;
    client.on("error", (e: unknown) => {
      socketError = e;
    });
    this.client = client;
    const connecting: Promise<Redis> = withDeadline(client.connect(), this.timeoutMs, `connect to ${endpointId(this.endpoint)}`)
      .then(() => client)
      .catch(async (e: unknown) => {
        // Only this attempt's client: after a drop, a later call may already have opened the next one.
        if (this.client === client) this.drop();
        // ioredis may reject connect() before it emits the socket's error: give that event one turn to arrive.
        if (socketError === undefined) await new Promise((r) => setImmediate(r));
        throw classify(socketError ?? e, this.endpoint, "connect");
      })
      .finally(() => {
        if (this.connecting === connecting) this.connecting = null;
      });
    this.connecting = connecting;
    return connecting;
  }

  private drop(): void {
    const c = this.client;
    this.client = null;
    // A dropped attempt is never handed to the next call (it would fail with this attempt's error).
    this.connecting = null;
    if (c) c.disconnect(false);
  }
}

/** Keeps one admin client per endpoint so probes reuse their connection. */
export class RedisClientPool {
  private readonly clients = new Map<string, RedisAdminClient>();
  constructor(
    private readonly timeoutMs: number,
    private readonly auth: RedisAuth = {},
  ) {}

  get(endpoint: Endpoint): RedisAdminClient {
    const id = endpointId(endpoint);
    let c = this.clients.get(id);
    if (!c) {
      c = new RedisAdminClient(endpoint, this.timeoutMs, this.auth);
      this.clients.set(id, c);
    }
    return c;
  }

  closeAll(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}

export function parseRole(reply: unknown, from: Endpoint): RoleReply {
  const bad = (why: string) => new ProbeError("protocol", `ROLE on ${endpointId(from)}: ${why}`);
  if (!Array.isArray(reply) || typeof reply[0] !== "string") throw bad("the reply is not a list");
  const kind = reply[0];
  if (kind === "master") {
    const offset = integer(reply[1]);
    const list = reply[2];
    if (offset === null || !Array.isArray(list)) throw bad("malformed primary reply");
    const replicas = list.map((r: unknown) => {
      if (!Array.isArray(r) || r.length < 3 || typeof r[0] !== "string" || r[0] === "") throw bad("malformed replica entry");
      const port = integer(r[1]);
      const off = integer(r[2]);
      if (port === null || port < 1 || port > 65535 || off === null) throw bad("malformed replica entry");
      return { address: r[0], port, offset: off };
    });
    return { role: "primary", offset, replicas };
  }
  if (kind === "slave") {
    const [, address, rawPort, linkState, rawOffset] = reply;
    const port = integer(rawPort);
    const offset = integer(rawOffset);
    if (typeof address !== "string" || address === "" || port === null || port < 1 || port > 65535) {
      throw bad("malformed replica reply");
    }
    if (typeof linkState !== "string" || offset === null) throw bad("malformed replica reply");
    return { role: "replica", primary: { address, port }, linkState, offset };
  }
  throw new ProbeError("wrong-role", `ROLE on ${endpointId(from)} says '${kind.slice(0, 20)}', not master or slave`);
}

/** A whole number sent as a number or a decimal string; null for anything else (never a silent 0 or NaN). */
function integer(v: unknown): number | null {
  if (typeof v === "number") return Number.isInteger(v) ? v : null;
  if (typeof v === "string" && /^-?\d+$/.test(v)) return Number(v);
  return null;
}

export function parseInfo(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\r\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const i = line.indexOf(":");
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

export function classify(e: unknown, ep: Endpoint, command: string): ProbeError {
  if (e instanceof ProbeError) return e;
  const where = `${command} on ${endpointId(ep)}`;
  if (e instanceof ReplyError) {
    const msg = (e as Error).message.split("\n")[0] ?? "";
    const kind: ProbeFailureKind = msg.startsWith("LOADING") ? "loading" : "error-reply";
    return new ProbeError(kind, `${where}: ${msg}`);
  }
  const err = e as NodeJS.ErrnoException;
  const code = err?.code;
  const msg = err?.message ?? String(e);
  if (code === "ECONNREFUSED") return new ProbeError("refused", `${where}: connection refused`);
  if (code === "ETIMEDOUT" || /timed out|deadline/i.test(msg)) {
    return new ProbeError("timeout", `${where}: no answer within the deadline`);
  }
  if (code === "ECONNRESET" || code === "EPIPE" || /Connection is closed|Stream isn't writeable/i.test(msg)) {
    return new ProbeError("reset", `${where}: connection closed`);
  }
  if (code === "EHOSTUNREACH" || code === "ENETUNREACH" || code === "EADDRNOTAVAIL") {
    return new ProbeError("timeout", `${where}: ${code}`);
  }
  return new ProbeError("protocol", `${where}: ${msg}`);
}

/** Rejects with a timeout-classified error when `p` does not settle within `ms`. */
export function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ProbeError("timeout", `${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** `run_id:<hex>` of INFO server's text. */
export function runIdOf(text: string): string | undefined {
  const m = /\nrun_id:([0-9a-f]{8,64})\r/.exec(text);
  return m?.[1];
}

/** The keys of every database in INFO keyspace's text (`db0:keys=12,expires=0,avg_ttl=0`). */
export function keysOf(text: string): number {
  let n = 0;
  for (const m of text.matchAll(/\ndb\d+:keys=(\d+)/g)) n += Number(m[1]);
  return n;
}
