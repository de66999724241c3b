/**
 * The HTTP API (node:http, no framework), a subscriber of the daemon like the metrics and notifications:
 *
 *   GET  /          the status page            GET /status   the daemon's state (JSON)
 *   GET  /metrics   Prometheus text            GET /healthz  200 while the check loops turn and the journal can be
 *                                                            written, 503 otherwise
 *   GET  /history   recoveries and operator controls from the journal (`?since=2h` or a date)
 *   POST /pause, /resume, /ack, /switchover, /promote, /maintenance, /failover
 *                   changing requests: `Authorization: Bearer <http.token>`, else 401
 *
 * Changing requests are intents handed to the daemon, which stays the only actor. With no token configured they are
 * refused (403). The token is compared in constant time and never logged. Bodies are small JSON objects (16 KiB at
 * most). A changing request may name the operator (`"operator": "alice"`): the journal and the log then say
 * `alice via http 127.0.0.1`, else `http 127.0.0.1`.
 *
 * Abusive or broken clients cannot pin the daemon's descriptors: a connection must deliver a whole request (headers
 * and body) within `readDeadlineMs` of opening (or of the previous response, when kept alive), else it is closed;
 * that covers connections that never finish their headers, which Node's own headersTimeout leaves open. At most
 * `maxConnections` are open at once; more are closed at once (a warning, at most once a minute). A client that goes
 * away mid-request is its own business: logged at debug, never as a bug.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { HoldRequest } from "../daemon/controls.ts";
import type { FailoverCheck, SwitchoverRequest } from "../daemon/intents.ts";
import type { Hold, Maintenance } from "../daemon/state.ts";
import type { JournalFault } from "../daemon/journal-health.ts";
import type { StatusView } from "../daemon/status.ts";
import { parseDuration, parseSince } from "../duration.ts";
import { errorMessage, FailoverdError, UsageError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { History } from "../recovery/history.ts";
import type { Plan } from "../recovery/plan.ts";
import { splitListen } from "../topology/schema.ts";
import type { Topology } from "../topology/topology.ts";
import type { ScheduledDrill } from "./drills.ts";
import { STATUS_PAGE_CSP, STATUS_PAGE_HTML } from "./status-page.ts";
import type { PairVerdict } from "./verdicts.ts";

/** What the API needs of the daemon. */
export interface ApiDaemon {
  readonly config: Topology;
  readonly paused: boolean;
  status(): Promise<StatusView>;
  lastCycleAt(): number | null;
  /** Why the journal cannot be written (null: it can): /healthz answers 503 meanwhile. */
  journalFault?(): JournalFault | null;
  setPause(by: string, request: HoldRequest): Promise<Hold>;
  resume(by: string, confirm: boolean): Promise<{ resumed: boolean; starts: { playbook: string; host: string; diagnosis: string }[] }>;
  startMaintenance(host: string, by: string, request: HoldRequest & { forMs: number }): Promise<Maintenance | { refused: string }>;
  endMaintenance(host: string, by: string): Promise<Maintenance | null>;
  acknowledge(by: string): string[] | Promise<string[]>;
  /** Several instances: this instance's name (null or absent: it acts alone). */
  readonly instance?: string | null;
  /** Several instances: the acting instance's API when another one acts (switchover, failover and promote go there). */
  actingApi?(): Promise<{ instance: string; url: string } | null>;
  requestSwitchover(request: SwitchoverRequest, origin: "operator", by: string): Promise<{ recoveryId: string; to: string; from: string } | { refused: string }>;
  /** An operator accepts that promoting `host` may lose data (the promotion guard's override). */
  acceptDataLoss(host: string, by: string): { accepted: string; failed: string } | { refused: string };
  requestFailover(
    host: string,
    by: string,
    reason: string | undefined,
    confirm: boolean,
  ): Promise<{ refused: string } | { started: false; check: FailoverCheck; plan: Plan } | { started: true; check: FailoverCheck; recoveryId: string }>;
  history(since?: number): Promise<History>;
}

export interface HttpApiOptions {
  readonly daemon: ApiDaemon;
  readonly listen: { readonly address: string; readonly port: number };
  /** The bearer token of changing requests; none: they are refused. */
  readonly token?: string | undefined;
  readonly metrics: { text(): Promise<string>; readonly contentType: string };
  readonly drills?: { list(): ScheduledDrill[] };
  /** Writes OK / DOWN per pair and port, since when (GET /status `verdicts`). */
  readonly verdicts?: { list(): PairVerdict[] };
  readonly log: Logger;
  readonly now?: () => number;
  /** A request's headers and body must arrive within this (10 s). */
  readonly readDeadlineMs?: number;
  /** Open connections at most (100); more are closed on arrival. */
  readonly maxConnections?: number;
}

const MAX_BODY = 16 * 1024;
/** The changing requests only the acting instance carries out: another instance forwards them to it. */
const FORWARDED = new Set(["/switchover", "/failover", "/promote"]);
/** Marks a request one instance handed to another (never handed on again); its value names the sender. */
const FORWARDED_HEADER = "x-failoverd-forwarded-by";
/** A forwarded request's answer: a switchover answers once started (its start journaled), well within this. */
const FORWARD_TIMEOUT_MS = 30_000;
export const READ_DEADLINE_MS = 10_000;
export const MAX_CONNECTIONS = 100;
/** At most one warning per this long about connections refused over the limit. */
const DROP_WARNING_EVERY_MS = 60_000;
/** A pause without `for` ends by itself after this long: a forgotten pause must not leave the fleet unprotected. */
export const DEFAULT_PAUSE_MS = 60 * 60 * 1000;

/** Parses `ADDR:PORT` (port 0: any free port). */
export function parseListen(s: string, what = "--http"): { address: string; port: number } {
  const listen = splitListen(s);
  if (!listen) throw new UsageError(`${what}: '${s}' is not ADDR:PORT (an IPv4 address and a port, e.g. 127.0.0.1:9464)`);
  return listen;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export class HttpApi {
  private server: Server | null = null;
  private readonly tokenDigest: Buffer | null;
  private readonly now: () => number;
  private readonly readDeadlineMs: number;
  /** Each open connection's read deadline, while one runs. */
  private readonly deadlines = new WeakMap<Socket, NodeJS.Timeout>();
  private dropped = 0;
  private lastDropWarning = Number.NEGATIVE_INFINITY;

  constructor(private readonly o: HttpApiOptions) {
    this.tokenDigest = o.token ? digest(o.token) : null;
    this.now = o.now ?? Date.now;
    this.readDeadlineMs = o.readDeadlineMs ?? READ_DEADLINE_MS;
  }

  /** Listens; resolves with the bound address (useful with port 0). */
  async start(): Promise<{ address: string; port: number }> {
    const server = createServer((req, res) => {
      // Armed again once this response is sent: the next request on a kept-alive connection has its own deadline.
      const socket = req.socket;
      res.once("finish", () => this.armDeadline(socket));
      this.handle(req, res).catch((e: unknown) => {
        if (isClientGone(req, e)) {
          this.o.log.debug({ path: req.url, from: req.socket.remoteAddress }, "HTTP request abandoned: the client went away or missed the read deadline");
          res.destroy();
          return;
        }
        this.o.log.error({ err: errorMessage(e), path: req.url }, "HTTP request failed (a bug)");
        if (!res.headersSent) send(res, 500, { error: "internal error" });
        else res.destroy();
      });
    });
    server.on("connection", (socket: Socket) => {
      this.armDeadline(socket);
      socket.once("close", () => clearTimeout(this.deadlines.get(socket)));
    });
    server.maxConnections = this.o.maxConnections ?? MAX_CONNECTIONS;
    server.on("drop", () => this.warnDropped(server.maxConnections));
    // Node's own limits stay as a second line; the read deadline above is what closes a stalled connection.
    server.requestTimeout = this.readDeadlineMs;
    server.headersTimeout = Math.min(5_000, this.readDeadlineMs);
    server.keepAliveTimeout = 5_000;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", (e: NodeJS.ErrnoException) => {
        const where = `${this.o.listen.address}:${this.o.listen.port}`;
        const why = e.code === "EADDRINUSE" ? "the address is in use" : e.code === "EADDRNOTAVAIL" ? "no interface has that address" : errorMessage(e);
        reject(new FailoverdError(`the HTTP API cannot listen on ${where}: ${why} (set http.listen or --http)`));
      });
      server.listen(this.o.listen.port, this.o.listen.address, () => {
        server.removeAllListeners("error");
        resolve();
      });
    });
    server.on("error", (e) => this.o.log.error({ err: errorMessage(e) }, "HTTP API error"));
    const a = server.address() as AddressInfo;
    const loopback = a.address.startsWith("127.");
    this.o.log.info(
      { listen: `${a.address}:${a.port}`, changingRequests: this.tokenDigest ? "token" : "off" },
      `HTTP API on http://${a.address}:${a.port}/ (status page, /status, /metrics, /healthz)${loopback ? "" : ": not loopback, the read endpoints are open to this network"}`,
    );
    return { address: a.address, port: a.port };
  }

  /** Closes `socket` unless a whole request arrives within the read deadline (restarts the deadline). */
  private armDeadline(socket: Socket): void {
    clearTimeout(this.deadlines.get(socket));
    if (socket.destroyed) return;
    const timer = setTimeout(() => socket.destroy(), this.readDeadlineMs);
    timer.unref();
    this.deadlines.set(socket, timer);
  }

  /** The request has been read in full: what remains is failoverd's to answer. */
  private disarmDeadline(socket: Socket): void {
    clearTimeout(this.deadlines.get(socket));
    this.deadlines.delete(socket);
  }

  private warnDropped(limit: number): void {
    this.dropped++;
    const now = this.now();
    if (now - this.lastDropWarning < DROP_WARNING_EVERY_MS) return;
    this.lastDropWarning = now;
    this.o.log.warn({ dropped: this.dropped, maxConnections: limit }, `HTTP API: ${this.dropped} connection(s) closed on arrival, over the limit of ${limit} open at once`);
    this.dropped = 0;
  }

  async close(): Promise<void> {
    const s = this.server;
    if (!s) return;
    this.server = null;
    await new Promise<void>((resolve) => {
      s.close(() => resolve());
      s.closeAllConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? "/", "http://failoverd").pathname;
    const method = req.method ?? "GET";
    try {
      const reads: Record<string, () => Promise<void>> = {
        "/": async () => {
          res.writeHead(200, {
            "content-type": "text/html; charset=utf-8",
            "content-security-policy": STATUS_PAGE_CSP,
            "x-content-type-options": "nosniff",
            "referrer-policy": "no-referrer",
            "cache-control": "no-store",
          });
          res.end(STATUS_PAGE_HTML);
        },
        "/status": async () => {
          const status = await this.o.daemon.status();
          send(res, 200, { ...status, staleAfterMs: this.staleAfterMs(), verdicts: this.o.verdicts?.list() ?? [], drills: this.o.drills?.list() ?? [] });
        },
        "/metrics": async () => {
          const text = await this.o.metrics.text();
          res.writeHead(200, { "content-type": this.o.metrics.contentType, "cache-control": "no-store" });
          res.end(text);
        },
        "/healthz": async () => this.healthz(res),
        "/history": async () => {
          const q = new URL(req.url ?? "/", "http://failoverd").searchParams.get("since");
          const since = q === null ? undefined : parseSince(q, this.now());
          if (typeof since === "object") throw new HttpError(400, `since: ${since.error}`);
          send(res, 200, await this.o.daemon.history(since));
        },
      };
      // Several instances: every answer to a changing request names the instance that carried it out (or refused it).
      const instance = this.o.daemon.instance ?? null;
      const answer = (status: number, body: Record<string, unknown>) => send(res, status, instance ? { ...body, instance } : body);
      const writes: Record<string, (body: Record<string, unknown>, by: string) => Promise<void>> = {
        "/pause": async (body, by) => {
          only(body, ["reason", "for"], "a pause");
          const forMs = body["for"] === "forever" ? null : body["for"] === undefined ? DEFAULT_PAUSE_MS : duration(body["for"]);
          answer(200, { paused: true, pause: await this.o.daemon.setPause(by, { reason: reason(body), forMs }) });
        },
        "/resume": async (body, by) => {
          only(body, ["confirm"], "a resume");
          const r = await this.o.daemon.resume(by, flag(body, "confirm"));
          if (r.resumed) answer(200, { paused: false, started: r.starts });
          else {
            const what = r.starts.map((x) => `${x.playbook} for ${x.host} (${x.diagnosis})`).join(", ");
            answer(409, { error: `resuming starts ${what} at once: confirm it (confirm: true)`, wouldStart: r.starts });
          }
        },
        "/maintenance": async (body, by) => {
          only(body, ["host", "for", "reason", "end"], "a maintenance");
          const host = hostOf(body);
          if (flag(body, "end")) {
            if (body["for"] !== undefined || body["reason"] !== undefined) throw new HttpError(400, "end takes no for or reason");
            answer(200, { host, ended: await this.o.daemon.endMaintenance(host, by) });
            return;
          }
          if (body["for"] === undefined) throw new HttpError(400, "for is required: how long the maintenance lasts (30m, 2h)");
          const why = reason(body);
          if (!why) throw new HttpError(400, "reason is required: why the host is in maintenance");
          const m = await this.o.daemon.startMaintenance(host, by, { reason: why, forMs: duration(body["for"]) });
          if ("refused" in m) answer(409, { error: m.refused });
          else answer(200, { host, maintenance: m });
        },
        "/failover": async (body, by) => {
          only(body, ["host", "reason", "confirm"], "a failover");
          const r = await this.o.daemon.requestFailover(hostOf(body), by, reason(body), flag(body, "confirm"));
          if ("refused" in r) answer(409, { error: r.refused });
          else if (r.started) answer(202, { started: true, recoveryId: r.recoveryId, ...r.check });
          else answer(200, { started: false, ...r.check, plan: r.plan });
        },
        "/ack": async (_b, by) => answer(200, { acknowledged: await this.o.daemon.acknowledge(by) }),
        "/switchover": async (body, by) => {
          const request = switchoverRequest(body);
          const r = await this.o.daemon.requestSwitchover(request, "operator", by);
          if ("refused" in r) answer(409, { error: r.refused });
          else answer(202, r);
        },
        "/promote": async (body, by) => {
          const unknown = Object.keys(body).filter((k) => k !== "host" && k !== "acceptDataLoss");
          if (unknown.length > 0) throw new HttpError(400, `unknown field ${unknown.join(", ")} (a promotion takes host and acceptDataLoss)`);
          if (typeof body["host"] !== "string") throw new HttpError(400, "host must be the name of the Redis host to promote");
          if (body["acceptDataLoss"] !== true) {
            throw new HttpError(400, "acceptDataLoss must be true: this overrides the promotion guard, which refused because the promotion would lose data");
          }
          const r = this.o.daemon.acceptDataLoss(body["host"], by);
          if ("refused" in r) answer(409, { error: r.refused });
          else answer(202, r);
        },
      };
      const read = reads[path];
      const write = writes[path];
      if (read && Object.hasOwn(reads, path)) {
        if (method !== "GET" && method !== "HEAD") throw new HttpError(405, `${path} answers GET`, { allow: "GET, HEAD" });
        await drain(req);
        this.disarmDeadline(req.socket);
        await read();
      } else if (write && Object.hasOwn(writes, path)) {
        if (method !== "POST") throw new HttpError(405, `${path} answers POST`, { allow: "POST" });
        this.authorize(req);
        const { operator, ...body } = await readBody(req);
        if (operator !== undefined && !(typeof operator === "string" && /^[\w.@+-]{1,64}$/.test(operator))) {
          throw new HttpError(400, "operator must be a name (letters, digits, . @ + - _; at most 64)");
        }
        this.disarmDeadline(req.socket);
        const by = `${operator ? `${operator} via ` : ""}http ${req.socket.remoteAddress ?? "?"}`;
        this.o.log.info({ path, by }, `HTTP ${path} by ${by}`);
        // Only the acting instance switches over, fails over or promotes: another instance hands it the request.
        const acting = FORWARDED.has(path) && req.headers[FORWARDED_HEADER] === undefined ? await this.o.daemon.actingApi?.() : null;
        if (acting) await this.forward(res, path, acting, { ...(operator !== undefined ? { operator } : {}), ...body }, instance);
        else await write(body, by);
      } else {
        throw new HttpError(404, `no such resource: ${path} (try /, /status, /history, /metrics, /healthz)`);
      }
    } catch (e) {
      // A store that did not take a shared hold (several instances): said as it is, nothing changed.
      if (e instanceof FailoverdError) {
        this.o.log.warn({ path, err: e.message }, `HTTP ${path} failed: ${e.message}`);
        send(res, 503, { error: e.message });
        return;
      }
      if (!(e instanceof HttpError)) throw e;
      if (e.status === 401 || e.status === 403) this.o.log.warn({ path, from: req.socket.remoteAddress }, `HTTP ${path} refused: ${e.message}`);
      send(res, e.status, { error: e.message }, e.headers);
    }
  }

  /**
   * Hands a changing request to the acting instance's API, with this instance's token (the caller's was checked here),
   * and answers with its answer, naming the instance that carried it out. A forwarded request is never forwarded again.
   */
  private async forward(res: ServerResponse, path: string, to: { instance: string; url: string }, body: Record<string, unknown>, self: string | null): Promise<void> {
    this.o.log.info({ path, leader: to.instance, url: to.url }, `HTTP ${path}: handed to the acting instance ${to.instance} at ${to.url}`);
    let r: Response;
    try {
      r = await fetch(`${to.url}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json", [FORWARDED_HEADER]: self ?? "?", ...(this.o.token ? { authorization: `Bearer ${this.o.token}` } : {}) },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(FORWARD_TIMEOUT_MS),
      });
    } catch (e) {
      const why = errorMessage((e as { cause?: unknown }).cause ?? e);
      throw new HttpError(502, `the acting instance ${to.instance} did not answer at ${to.url} (${why}); nothing was done here`);
    }
    let answer: Record<string, unknown>;
    try {
      answer = (await r.json()) as Record<string, unknown>;
    } catch {
      throw new HttpError(502, `the acting instance ${to.instance} at ${to.url} answered HTTP ${r.status} without JSON`);
    }
    if (r.status === 401 || r.status === 403) {
      throw new HttpError(502, `the acting instance ${to.instance} refused this instance's token (${String(answer["error"] ?? r.status)}): give every instance the same http.token`);
    }
    send(res, r.status, { ...answer, instance: to.instance, ...(self ? { via: self } : {}) });
  }

  /** The slowest a target's loop turns while healthy: one interval plus a check's deadline, with room to spare. */
  private staleAfterMs(): number {
    const c = this.o.daemon.config.config.checks;
    return 3 * (c.intervalMs + c.timeoutMs) + 1000;
  }

  private healthz(res: ServerResponse): void {
    const windowMs = this.staleAfterMs();
    const at = this.o.daemon.lastCycleAt();
    const age = at === null ? null : this.now() - at;
    const turning = age !== null && age <= windowMs;
    // The loops turn but no recovery can start: not healthy either.
    const journal = this.o.daemon.journalFault?.() ?? null;
    const ok = turning && journal === null;
    const status = !turning ? (at === null ? "starting" : "stale") : journal ? "journal-unwritable" : "ok";
    send(res, ok ? 200 : 503, { status, lastCycleAgeMs: age, windowMs, paused: this.o.daemon.paused, ...(journal ? { journal } : {}) });
  }

  private authorize(req: IncomingMessage): void {
    if (!this.tokenDigest) throw new HttpError(403, "changing requests are off: set http.token in the config ({env: VAR} or {file: PATH})");
    const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? "");
    const challenge = { "www-authenticate": 'Bearer realm="failoverd"' };
    if (!m) throw new HttpError(401, "a bearer token is required (Authorization: Bearer <token>)", challenge);
    if (!timingSafeEqual(digest(m[1]!), this.tokenDigest)) throw new HttpError(401, "the bearer token is wrong", challenge);
  }
}

/** The request failed because its client closed the connection (or the read deadline closed it), not by a bug. */
function isClientGone(req: IncomingMessage, e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return code === "ECONNRESET" || code === "ERR_STREAM_PREMATURE_CLOSE" || code === "EPIPE" || (req.destroyed && !req.complete);
}

function digest(s: string): Buffer {
  return createHash("sha256").update(s).digest();
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store", ...headers });
  res.end(text);
}

/** Reads and drops a body nobody asked for (a GET's): the request is whole only once it is read. */
async function drain(req: IncomingMessage): Promise<void> {
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) throw new HttpError(413, `the body is larger than ${MAX_BODY} bytes`);
  }
}

async function readBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) throw new HttpError(413, `the body is larger than ${MAX_BODY} bytes`);
    chunks.push(c as Buffer);
  }
  const text = Buffer.concat(chunks).toString("utf8").trim();
  if (text === "") return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new HttpError(400, "the body is not JSON");
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new HttpError(400, "the body must be a JSON object");
  return v as Record<string, unknown>;
}

function switchoverRequest(body: Record<string, unknown>): SwitchoverRequest {
  const unknown = Object.keys(body).filter((k) => k !== "to" && k !== "pair");
  if (unknown.length > 0) throw new HttpError(400, `unknown field ${unknown.join(", ")} (a switchover takes to and/or pair)`);
  const { to, pair } = body;
  if (to !== undefined && typeof to !== "string") throw new HttpError(400, "to must be a host name");
  if (pair !== undefined && !(Array.isArray(pair) && pair.length === 2 && pair.every((h) => typeof h === "string"))) {
    throw new HttpError(400, "pair must be a list of two host names");
  }
  if (to === undefined && pair === undefined) throw new HttpError(400, "name the new primary (to) or the pair (pair)");
  return { to, pair: pair as string[] | undefined };
}

function only(body: Record<string, unknown>, allowed: readonly string[], what: string): void {
  const unknown = Object.keys(body).filter((k) => !allowed.includes(k));
  if (unknown.length > 0) throw new HttpError(400, `unknown field ${unknown.join(", ")} (${what} takes ${allowed.join(", ")})`);
}

function flag(body: Record<string, unknown>, key: string): boolean {
  const v = body[key];
  if (v !== undefined && typeof v !== "boolean") throw new HttpError(400, `${key} must be true or false`);
  return v === true;
}

function hostOf(body: Record<string, unknown>): string {
  const h = body["host"];
  if (typeof h !== "string" || h === "") throw new HttpError(400, "host is required: the host's name");
  return h;
}

/** A reason: one line of text, at most 300 characters (it goes to logs, the journal and notifications). */
function reason(body: Record<string, unknown>): string | undefined {
  const r = body["reason"];
  if (r === undefined) return undefined;
  if (typeof r !== "string" || r.length > 300 || [...r].some((c) => c < " " || c === "\u007f")) throw new HttpError(400, "reason must be one line of text (at most 300 characters)");
  return r.trim() || undefined;
}

/** A duration: `"2h"`, `"30m"` (a number with a unit), or a number of milliseconds. */
function duration(v: unknown): number {
  if (typeof v === "number" && Number.isSafeInteger(v) && v > 0) return v;
  const d = typeof v === "string" ? parseDuration(v) : { error: "for must be a duration (30m, 2h) or a number of milliseconds" };
  if (typeof d === "object") throw new HttpError(400, `for: ${d.error}`);
  return d;
}
