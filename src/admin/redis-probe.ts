/**
 * The Redis health probe's connection: PING and `INFO replication` pipelined in one write on a kept
 * connection, the two replies read with a minimal RESP parser, the whole under one deadline. It exists for cost: a
 * daemon checking thousands of endpoints every second spent much of its time in the client library, and a probe needs
 * only four reply types and no command objects, retries or offline queue. (Recovery keeps the ioredis admin client.)
 *
 * Contract: `probe(ms)` resolves with the two replies (an error reply becomes a ProbeError `error-reply` or
 * `loading`) or rejects with a ProbeError within `ms`: refused, reset, timeout or protocol, classified as the admin
 * client classifies them. A timeout, a reset or a protocol error drops the connection; the next probe opens a new one
 * (with AUTH first when the topology has a password). Probes may overlap: replies are matched in order.
 *
 * A kept connection that the server closes while no probe is pending calls `onLost`: a crashed server's sockets are
 * closed by its kernel at once, which tells the monitor sooner than its next scheduled check would.
 */
import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { ProbeError } from "../errors.ts";
import { classify, type Endpoint, endpointId, ioredisTls, keysOf, type RedisAuth, runIdOf } from "./redis.ts";

/**
 * What a Redis check needs from a connection: the replies to PING and INFO replication, and the server's `run_id`
 * (read once per connection, with `INFO server` ahead of the first probe: a connection belongs to one process, so a
 * kept connection's run_id cannot change, and a restarted server is always a new connection). Undefined when the
 * server did not say (an old or unusual server). `keys` is the number of keys in every database (INFO keyspace),
 * undefined when the server would not say.
 */
export interface ProbeConnection {
  probe(deadlineMs: number): Promise<readonly [pong: unknown, info: unknown, runId: string | undefined, keys: number | undefined]>;
  close(): void;
}

const READ_BUFFER = Buffer.alloc(64 * 1024);
const PROBE = Buffer.from("*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nINFO\r\n$11\r\nreplication\r\n*2\r\n$4\r\nINFO\r\n$8\r\nkeyspace\r\n");
/** Sent once, ahead of the first probe of a connection: the server's identity. */
const SERVER_INFO = Buffer.from("*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n");

interface Pending {
  /** Replies received so far, of `expect`: AUTH and INFO server (first probe of a connection only), PING, INFO. */
  readonly replies: unknown[];
  readonly expect: number;
  readonly authFirst: boolean;
  readonly serverFirst: boolean;
  readonly resolve: (r: readonly [unknown, unknown, string | undefined, number | undefined]) => void;
  readonly reject: (e: ProbeError) => void;
  readonly timer: NodeJS.Timeout;
}

type Reply = string | number | null | ProbeError;

export class RedisProbe implements ProbeConnection {
  private socket: Socket | null = null;
  private connected = false;
  private buffer: Buffer | null = null;
  private readonly pending: Pending[] = [];
  private readonly where: string;
  /** The run_id of the process at the other end of the current connection (see ProbeConnection). */
  private runId: string | undefined;

  constructor(
    readonly endpoint: Endpoint,
    private readonly auth: RedisAuth = {},
    private readonly onLost?: () => void,
  ) {
    this.where = endpointId(endpoint);
  }

  probe(deadlineMs: number): Promise<readonly [unknown, unknown, string | undefined, number | undefined]> {
    return new Promise((resolve, reject) => {
      const fresh = this.socket === null;
      if (fresh) this.open();
      const authFirst = fresh && this.auth.password !== undefined;
      const entry: Pending = {
        replies: [],
        expect: 3 + (authFirst ? 1 : 0) + (fresh ? 1 : 0),
        authFirst,
        serverFirst: fresh,
        resolve: (r) => {
          if (fresh && r[2] !== undefined) this.runId = r[2];
          resolve([r[0], r[1], this.runId, r[3]]);
        },
        reject,
        // Timers run before I/O in Node's loop: after a stall of the daemon's own loop the answer may be waiting,
        // unread, in the socket. One turn of I/O first (setImmediate runs after it), so a busy monitor does not
        // call a healthy server dead.
        timer: setTimeout(() => {
          setImmediate(() => {
            if (!this.pending.includes(entry)) return;
            this.fail(new ProbeError("timeout", `${this.connected ? "PING" : "connect"} on ${this.where}: no answer within the deadline`));
          });
        }, deadlineMs),
      };
      this.pending.push(entry);
      // Before the connection is up, net buffers the write and sends it on connect.
      this.socket!.write(fresh ? Buffer.concat([...(authFirst ? [this.authCommand()] : []), SERVER_INFO, PROBE]) : PROBE);
    });
  }

  close(): void {
    this.drop();
  }

  private open(): void {
    const { address: host, port } = this.endpoint;
    // Plain TCP reads into one buffer shared by every probe (`onread`: no stream machinery, no Buffer per read);
    // the reply is parsed before the callback returns, and a partial reply is copied out.
    const s = this.auth.tls
      ? tlsConnect({ host, port, ...ioredisTls(this.auth.tls) })
      : netConnect({
          host,
          port,
          onread: {
            buffer: READ_BUFFER,
            callback: (n: number, buf: Uint8Array) => {
              if (this.socket === s) this.onData(Buffer.from(buf.buffer, buf.byteOffset, n));
              return true;
            },
          },
        });
    this.socket = s;
    this.connected = false;
    this.buffer = null;
    s.setNoDelay(true);
    s.on(this.auth.tls ? "secureConnect" : "connect", () => {
      if (this.socket === s) this.connected = true;
    });
    if (this.auth.tls) {
      s.on("data", (chunk: Buffer) => {
        if (this.socket === s) this.onData(chunk);
      });
    }
    s.on("error", (e: NodeJS.ErrnoException) => {
      if (this.socket === s) this.fail(this.socketError(e));
    });
    s.on("close", () => {
      if (this.socket === s) this.fail(new ProbeError("reset", `${this.connected ? "PING" : "connect"} on ${this.where}: connection closed`));
    });
  }

  private authCommand(): Buffer {
    const args = ["AUTH", ...(this.auth.username ? [this.auth.username] : []), this.auth.password ?? ""];
    return Buffer.from(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")}`);
  }

  private socketError(e: NodeJS.ErrnoException): ProbeError {
    return classify(e, this.endpoint, this.connected ? "PING" : "connect");
  }

  /** Fails every pending probe and drops the connection; with none pending, the connection was lost while idle. */
  private fail(e: ProbeError): void {
    this.drop();
    if (this.pending.length === 0 && e.kind !== "timeout") this.onLost?.();
    for (const p of this.pending.splice(0)) {
      clearTimeout(p.timer);
      p.reject(e);
    }
  }

  private drop(): void {
    const s = this.socket;
    this.socket = null;
    this.connected = false;
    this.buffer = null;
    this.runId = undefined;
    s?.destroy();
  }

  /** `chunk` may be the shared read buffer: nothing may keep a reference to it after this returns. */
  private onData(chunk: Buffer): void {
    const buf = this.buffer ? Buffer.concat([this.buffer, chunk]) : chunk;
    let offset = 0;
    for (;;) {
      const parsed = parseReply(buf, offset, this.where);
      if (parsed === undefined) break;
      offset = parsed.next;
      const head = this.pending[0];
      if (!head) {
        this.fail(new ProbeError("protocol", `PING on ${this.where}: a reply nobody asked for`));
        return;
      }
      head.replies.push(parsed.reply);
      if (parsed.reply instanceof ProbeError && parsed.reply.kind === "protocol") {
        this.fail(parsed.reply);
        return;
      }
      if (head.replies.length === head.expect) {
        this.pending.shift();
        clearTimeout(head.timer);
        settle(head, this.where);
      }
      if (this.socket === null) return;
    }
    this.buffer = offset >= buf.length ? null : Buffer.from(buf.subarray(offset));
  }
}

function settle(p: Pending, where: string): void {
  const replies = [...p.replies];
  const auth = p.authFirst ? replies.shift() : null;
  const server = p.serverFirst ? replies.shift() : null;
  const [pong, info, keyspace] = replies;
  if (auth instanceof ProbeError) p.reject(relabel(auth, "AUTH", where));
  else if (pong instanceof ProbeError) p.reject(relabel(pong, "PING", where));
  else if (info instanceof ProbeError) p.reject(relabel(info, "INFO", where));
  // INFO server's own error (a renamed command, an ACL without it) only leaves the identity unknown.
  else p.resolve([pong, info, typeof server === "string" ? runIdOf(server) : undefined, typeof keyspace === "string" ? keysOf(keyspace) : undefined]);
}

function relabel(e: ProbeError, command: string, where: string): ProbeError {
  return new ProbeError(e.kind, `${command} on ${where}: ${e.message}`);
}

/**
 * One RESP2 reply at `offset`: simple string, error, integer or bulk string (all a probe gets). Undefined when the
 * buffer does not hold the whole reply yet.
 */
export function parseReply(buf: Buffer, offset: number, where = "redis"): { reply: Reply; next: number } | undefined {
  if (offset >= buf.length) return undefined;
  const eol = buf.indexOf("\r\n", offset);
  if (eol < 0) return undefined;
  const type = buf[offset];
  const line = buf.toString("latin1", offset + 1, eol);
  switch (type) {
    case 0x2b: // +
      return { reply: line, next: eol + 2 };
    case 0x2d: // -
      return { reply: new ProbeError(line.startsWith("LOADING") ? "loading" : "error-reply", line), next: eol + 2 };
    case 0x3a: // :
      return { reply: Number(line), next: eol + 2 };
    case 0x24: {
      // $
      const len = Number(line);
      if (len === -1) return { reply: null, next: eol + 2 };
      if (!Number.isInteger(len) || len < 0) return { reply: new ProbeError("protocol", `PING on ${where}: bad bulk length`), next: eol + 2 };
      const end = eol + 2 + len;
      if (buf.length < end + 2) return undefined;
      return { reply: buf.toString("utf8", eol + 2, end), next: end + 2 };
    }
    default:
      return { reply: new ProbeError("protocol", `PING on ${where}: unexpected reply type ${JSON.stringify(String.fromCharCode(type ?? 0))}`), next: buf.length };
  }
}

/** Keeps one probe connection per endpoint. */
export class RedisProbePool {
  private readonly probes = new Map<string, Map<number, RedisProbe>>();
  constructor(
    private readonly auth: RedisAuth = {},
    /** A kept connection to `endpoint` was closed by the other side while idle (see RedisProbe). */
    private readonly onLost?: (endpoint: Endpoint) => void,
  ) {}

  /** By address, then port: no key string built per check. */
  get(endpoint: Endpoint): RedisProbe {
    let byPort = this.probes.get(endpoint.address);
    if (!byPort) {
      byPort = new Map();
      this.probes.set(endpoint.address, byPort);
    }
    let p = byPort.get(endpoint.port);
    if (!p) {
      const ep = { address: endpoint.address, port: endpoint.port };
      p = new RedisProbe(ep, this.auth, this.onLost ? () => this.onLost?.(ep) : undefined);
      byPort.set(endpoint.port, p);
    }
    return p;
  }

  closeAll(): void {
    for (const byPort of this.probes.values()) for (const p of byPort.values()) p.close();
    this.probes.clear();
  }
}
