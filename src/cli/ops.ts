/**
 * Commands for a running daemon: pause, resume, ack, switchover, maintenance, failover. They talk to its HTTP API and
 * leave an intent; the daemon stays the only actor. The address is --http, else http.listen of the config, else
 * 127.0.0.1:9464; the token is --token-file, else $FAILOVERD_TOKEN, else the config's http.token reference. Each
 * request names the operator (the user running the command, or who ran sudo) for the journal.
 */
import { readFileSync } from "node:fs";
import { userInfo } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { type Command, InvalidArgumentError } from "commander";
import type { RecoveryView, StatusView } from "../daemon/status.ts";
import type { Plan } from "../recovery/plan.ts";
import { parseDuration } from "../duration.ts";
import { errorMessage, FailoverdError, UsageError } from "../errors.ts";
import { DEFAULT_PAUSE_MS, parseListen } from "../ops/http.ts";
import { resolveSecret } from "../topology/secrets.ts";
import { type ConfigOpts, EXIT_FAILED, loadFrom, out, parseMs, setExitCode, withConfig } from "./common.ts";

interface ApiOpts extends ConfigOpts {
  http?: string;
  tokenFile?: string;
}

interface Api {
  readonly base: string;
  call(method: "GET" | "POST", path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }>;
}

function api(opts: ApiOpts): Api {
  const t = loadFrom(opts);
  const listen = parseListen(opts.http ?? t.config.http?.listen ?? "127.0.0.1:9464", opts.http ? "--http" : "http.listen");
  const base = `http://${listen.address}:${listen.port}`;
  let token: string | undefined;
  if (opts.tokenFile) {
    try {
      token = readFileSync(opts.tokenFile, "utf8").trim();
    } catch (e) {
      throw new UsageError(`--token-file: cannot read ${opts.tokenFile}: ${(e as NodeJS.ErrnoException).code ?? errorMessage(e)}`);
    }
  } else {
    token = process.env["FAILOVERD_TOKEN"] || resolveSecret(t.config.http?.token, "http.token", t.source);
  }
  return {
    base,
    async call(method, path, body) {
      let res: Response;
      const sent = method === "POST" ? { ...(operator() ? { operator: operator() } : {}), ...(body as object | undefined) } : undefined;
      try {
        res = await fetch(`${base}${path}`, {
          method,
          headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(sent !== undefined ? { "content-type": "application/json" } : {}) },
          ...(sent !== undefined ? { body: JSON.stringify(sent) } : {}),
          signal: AbortSignal.timeout(15_000),
        });
      } catch (e) {
        const why = errorMessage((e as { cause?: unknown }).cause ?? e);
        throw new FailoverdError(`no daemon answers on ${base} (${why}): is 'failoverd run' running with its HTTP API (http: in the config, or --http)?`);
      }
      const text = await res.text();
      let parsed: Record<string, unknown> = {};
      try {
        parsed = JSON.parse(text) as Record<string, unknown>;
      } catch {
        parsed = { error: text.trim().slice(0, 200) };
      }
      return { status: res.status, body: parsed };
    },
  };
}

/** Who runs the command (who ran sudo, when through sudo), if it is a name the API takes. */
function operator(): string | undefined {
  let name = process.env["SUDO_USER"];
  if (!name) {
    try {
      name = userInfo().username;
    } catch {
      return undefined;
    }
  }
  return /^[\w.@+-]{1,64}$/.test(name) ? name : undefined;
}

/** A commander parser of a duration with a unit (`30m`, `2h`). */
function parseFor(v: string): number {
  const d = parseDuration(v);
  if (typeof d === "object") throw new InvalidArgumentError(d.error);
  return d;
}

/** Several instances: which instance carried the request out (and through which one), from the answer. */
function actedBy(r: Record<string, unknown>): string {
  if (typeof r["instance"] !== "string") return "";
  return ` [instance ${r["instance"]}${typeof r["via"] === "string" ? `, via ${r["via"]}` : ""}]`;
}

const at = (t: number | undefined) => (t === undefined ? "" : new Date(t).toISOString().replace(/\.\d+Z$/, "Z"));

/** A changing request: prints the daemon's answer; a refusal is one line on stderr and exit 1. */
async function change(a: Api, path: string, body?: unknown): Promise<Record<string, unknown> | null> {
  const r = await a.call("POST", path, body);
  if (r.status >= 200 && r.status < 300) return r.body;
  const error = typeof r.body["error"] === "string" ? r.body["error"] : `HTTP ${r.status}`;
  process.stderr.write(`failoverd: the daemon at ${a.base} refused ${path}: ${error}\n`);
  setExitCode(EXIT_FAILED);
  return null;
}

function withApi(cmd: Command): Command {
  return withConfig(cmd)
    .option("--http <addr:port>", "the daemon's HTTP API (default: http.listen of the config, else 127.0.0.1:9464)")
    .option("--token-file <path>", "a file holding the bearer token (default: $FAILOVERD_TOKEN, else the config's http.token)");
}

function parsePair(v: string): [string, string] {
  const hosts = v.split(/[,+]/).map((h) => h.trim());
  if (hosts.length !== 2 || hosts.some((h) => h === "")) throw new InvalidArgumentError("must name two hosts: redis1,redis2");
  return [hosts[0]!, hosts[1]!];
}

export function registerOps(program: Command): void {
  withApi(program.command("pause").description("pause automatic recovery in the running daemon (it still checks, diagnoses and alerts); it ends by itself"))
    .option("--reason <text>", "why (journaled, shown in status and on the status page)")
    .option("--for <duration>", `how long (30m, 2h, 1d; default ${DEFAULT_PAUSE_MS / 60_000}m), or 'forever': until 'failoverd resume'`)
    .action(async (opts: ApiOpts & { reason?: string; for?: string }) => {
      const d = opts.for === undefined || opts.for === "forever" ? opts.for : parseDuration(opts.for);
      if (typeof d === "object") throw new UsageError(`--for: ${d.error}, or 'forever'`);
      const forMs = d;
      const r = await change(api(opts), "/pause", { ...(opts.reason ? { reason: opts.reason } : {}), ...(forMs !== undefined ? { for: forMs } : {}) });
      if (!r) return;
      const until = (r["pause"] as { until?: number } | undefined)?.until;
      out(`paused ${until === undefined ? "until 'failoverd resume'" : `until ${at(until)}`}${opts.reason ? ` (${opts.reason})` : ""}: failoverd diagnoses and alerts, and recovers nothing${actedBy(r)}`);
    });
  withApi(program.command("resume").description("resume automatic recovery in the running daemon; prints what that starts, and needs --yes when it starts a recovery"))
    .option("--yes", "resume even though that starts a recovery at once")
    .action(async (opts: ApiOpts & { yes?: boolean }) => {
      const a = api(opts);
      const r = await a.call("POST", "/resume", opts.yes ? { confirm: true } : {});
      const starts = (r.body["started"] ?? r.body["wouldStart"] ?? []) as { playbook: string; host: string; diagnosis: string }[];
      const list = () => {
        for (const s of starts) out(`  ${s.playbook} for ${s.host} (${s.diagnosis})`);
      };
      if (r.status === 409 && Array.isArray(r.body["wouldStart"])) {
        out("resuming would start at once:");
        list();
        process.stderr.write("failoverd: not resumed: run 'failoverd resume --yes' to resume and start it\n");
        setExitCode(EXIT_FAILED);
        return;
      }
      if (r.status !== 200) {
        process.stderr.write(`failoverd: the daemon at ${a.base} refused /resume: ${String(r.body["error"] ?? `HTTP ${r.status}`)}\n`);
        setExitCode(EXIT_FAILED);
        return;
      }
      out(`${starts.length === 0 ? "resumed: failoverd recovers again (nothing to recover now)" : "resumed: failoverd recovers again, starting:"}${actedBy(r.body)}`);
      list();
    });
  withApi(
    program
      .command("maintenance")
      .description("put a host in maintenance: no recovery of it (or of its pair or HAProxy tier) until it expires or is ended; with no host, list them")
      .argument("[host]", "the host"),
  )
    .option("--for <duration>", "how long (30m, 2h, 1d)", parseFor)
    .option("--reason <text>", "why (required; journaled, shown in status and on the status page)")
    .option("--end", "end the host's maintenance now")
    .action(async (host: string | undefined, opts: ApiOpts & { for?: number; reason?: string; end?: boolean }) => {
      const a = api(opts);
      if (!host) {
        if (opts.end || opts.for !== undefined || opts.reason) throw new UsageError("name the host: failoverd maintenance HOST ...");
        const s = (await a.call("GET", "/status")).body as unknown as StatusView;
        if (!s.maintenance?.length) out("no host is in maintenance");
        for (const m of s.maintenance ?? []) out(`${m.host}: in maintenance until ${at(m.until)} (${m.reason ?? "no reason given"}), set by ${m.by}`);
        return;
      }
      if (opts.end) {
        if (opts.for !== undefined || opts.reason) throw new UsageError("--end takes no --for or --reason");
        const r = await change(a, "/maintenance", { host, end: true });
        if (r) out(r["ended"] ? `${host}: maintenance ended; failoverd may act on it again` : `${host} was not in maintenance`);
        return;
      }
      if (opts.for === undefined) throw new UsageError("--for is required: how long the maintenance lasts (30m, 2h)");
      if (!opts.reason) throw new UsageError("--reason is required: why the host is in maintenance");
      const r = await change(a, "/maintenance", { host, for: opts.for, reason: opts.reason });
      if (r) out(`${host}: in maintenance until ${at((r["maintenance"] as { until: number }).until)} (${opts.reason}): failoverd will not act on it`);
    });
  withApi(
    program
      .command("failover")
      .description("forced failover: recover a host failoverd does not consider failed (prints the plan; starts only with --yes)"),
  )
    .requiredOption("--host <host>", "the host to fail over (its servers fenced, its twin promoted, the machine replaced)")
    .option("--reason <text>", "why (journaled)")
    .option("--yes", "start it (without: print the plan and exit 1, changing nothing)")
    .option("--wait", "wait until it has ended and print its steps (exit 1 unless it succeeded)")
    .option("--timeout <ms>", "how long --wait waits", parseMs(1), 600_000)
    .action(async (opts: ApiOpts & { host: string; reason?: string; yes?: boolean; wait?: boolean; timeout: number }) => {
      const a = api(opts);
      const body = { host: opts.host, ...(opts.reason ? { reason: opts.reason } : {}) };
      const preview = await change(a, "/failover", body);
      if (!preview) return;
      const plan = preview["plan"] as Plan;
      out(`forced failover of ${opts.host}: ${plan.playbook}, as the daemon would run it now:`);
      plan.steps.forEach((s, i) => {
        out(`${String(i + 1).padStart(2)}. ${s.title}${s.pointOfNoReturn ? "   [point of no return]" : ""}`);
        for (const x of s.actions) out(`      ${x}`);
        if (s.error) out(`      ! ${s.error}`);
      });
      for (const w of (preview["warnings"] ?? []) as string[]) out(`warning: ${w}`);
      if (!opts.yes) {
        process.stderr.write(`failoverd: nothing was done: run 'failoverd failover --host ${opts.host} --yes' to start it\n`);
        setExitCode(EXIT_FAILED);
        return;
      }
      const r = await change(a, "/failover", { ...body, confirm: true });
      if (!r) return;
      const id = String(r["recoveryId"]);
      out(`failover ${id} started: ${plan.playbook} for ${opts.host}${actedBy(r)}`);
      if (opts.wait) await printEnd(a, id, "failover", opts.timeout);
    });
  withApi(program.command("ack").description("acknowledge the current findings: they are not notified again until they change")).action(
    async (opts: ApiOpts) => {
      const r = await change(api(opts), "/ack");
      if (!r) return;
      const keys = Array.isArray(r["acknowledged"]) ? (r["acknowledged"] as string[]) : [];
      out(`${keys.length === 0 ? "nothing to acknowledge: no current findings" : `acknowledged: ${keys.join(", ")}`}${actedBy(r)}`);
    },
  );
  withApi(
    program
      .command("switchover")
      .description("planned switchover of a pair: the daemon moves its primaries to the other host (FAILOVER TO ... TIMEOUT), then the HAProxies"),
  )
    .option("--to <host>", "the host that becomes primary")
    .option("--pair <a,b>", "the pair; its primaries move to the host that holds its replicas", parsePair)
    .option("--wait", "wait until the switchover has ended and print its steps (exit 1 unless it succeeded)")
    .option("--timeout <ms>", "how long --wait waits", parseMs(1), 120_000)
    .action(async (opts: ApiOpts & { to?: string; pair?: [string, string]; wait?: boolean; timeout: number }) => {
      if (!opts.to && !opts.pair) throw new UsageError("name the new primary (--to HOST) or the pair (--pair A,B)");
      const a = api(opts);
      const r = await change(a, "/switchover", { ...(opts.to ? { to: opts.to } : {}), ...(opts.pair ? { pair: opts.pair } : {}) });
      if (!r) return;
      const id = String(r["recoveryId"]);
      out(`switchover ${id} started: ${String(r["from"])} -> ${String(r["to"])}${actedBy(r)}`);
      if (opts.wait) await printEnd(a, id, "switchover", opts.timeout);
    });
}

/** `failoverd promote --host H --accept-data-loss`: the promotion guard's override, for the running daemon. */
export function registerPromote(program: Command): void {
  withApi(
    program
      .command("promote")
      .description("let the running daemon fail over to HOST although the promotion guard refused (HOST misses acknowledged writes)"),
  )
    .requiredOption("--host <host>", "the Redis host to promote in place of its failed twin")
    .option("--accept-data-loss", "accept that the writes HOST misses are lost (journaled with your name)")
    .action(async (opts: ApiOpts & { host: string; acceptDataLoss?: boolean }) => {
      if (!opts.acceptDataLoss) {
        throw new UsageError("promote overrides the promotion guard: say --accept-data-loss to accept losing what the host misses");
      }
      const r = await change(api(opts), "/promote", { host: opts.host, acceptDataLoss: true });
      if (!r) return;
      out(`accepted: the next failover of ${String(r["failed"])} may promote ${String(r["accepted"])} whatever it misses (see 'failoverd status')${actedBy(r)}`);
    });
}

/** Waits for a recovery's end and prints its steps; exit 1 unless it succeeded. */
async function printEnd(a: Api, id: string, what: string, timeoutMs: number): Promise<void> {
  const done = await waitForEnd(a, id, what, timeoutMs);
  for (const s of done.steps) {
    const ms = s.endedAt !== undefined ? `${s.endedAt - s.startedAt} ms` : "-";
    out(`  ${s.ok ? "ok  " : "FAIL"} ${s.step.padEnd(10)} ${ms}${s.error ? `  ${s.error}` : ""}`);
  }
  out(`${what} ${done.outcome ?? "unfinished"}${done.endedAt !== undefined ? ` in ${done.endedAt - done.startedAt} ms` : ""}${done.error ? `: ${done.error}` : ""}`);
  if (done.outcome !== "succeeded") setExitCode(EXIT_FAILED);
}

async function waitForEnd(a: Api, id: string, what: string, timeoutMs: number): Promise<RecoveryView> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const r = await a.call("GET", "/status");
    const s = r.body as unknown as StatusView;
    const found = [...(s.recoveries?.recent ?? []), ...(s.recoveries?.current ?? [])].find((x) => x.id === id);
    if (found?.outcome !== undefined) return found;
    await sleep(100);
  }
  throw new FailoverdError(`${what} ${id} had not ended after ${timeoutMs} ms; see 'failoverd history' and the daemon's log`);
}
