/**
 * Commands for a running daemon: pause, resume, ack, switchover. They talk to its HTTP API and leave an intent; the
 * daemon stays the only actor. The address is --http, else http.listen of the config, else 127.0.0.1:9464; the
 * token is --token-file, else $FAILOVERD_TOKEN, else the config's http.token reference.
 */
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { type Command, InvalidArgumentError } from "commander";
import type { RecoveryView, StatusView } from "../daemon/status.ts";
import { errorMessage, FailoverdError, UsageError } from "../errors.ts";
import { parseListen } from "../ops/http.ts";
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
      try {
        res = await fetch(`${base}${path}`, {
          method,
          headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { "content-type": "application/json" } : {}) },
          ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
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
  withApi(program.command("pause").description("pause automatic recovery in the running daemon (it still checks, diagnoses and alerts)")).action(
    async (opts: ApiOpts) => {
      if (await change(api(opts), "/pause")) out("paused: failoverd diagnoses and alerts, and recovers nothing until 'failoverd resume'");
    },
  );
  withApi(program.command("resume").description("resume automatic recovery in the running daemon")).action(async (opts: ApiOpts) => {
    if (await change(api(opts), "/resume")) out("resumed: failoverd recovers again");
  });
  withApi(program.command("ack").description("acknowledge the current findings: they are not notified again until they change")).action(
    async (opts: ApiOpts) => {
      const r = await change(api(opts), "/ack");
      if (!r) return;
      const keys = Array.isArray(r["acknowledged"]) ? (r["acknowledged"] as string[]) : [];
      out(keys.length === 0 ? "nothing to acknowledge: no current findings" : `acknowledged: ${keys.join(", ")}`);
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
      out(`switchover ${id} started: ${String(r["from"])} -> ${String(r["to"])}`);
      if (!opts.wait) return;
      const done = await waitForEnd(a, id, opts.timeout);
      for (const s of done.steps) {
        const ms = s.endedAt !== undefined ? `${s.endedAt - s.startedAt} ms` : "-";
        out(`  ${s.ok ? "ok  " : "FAIL"} ${s.step.padEnd(10)} ${ms}${s.error ? `  ${s.error}` : ""}`);
      }
      out(`switchover ${done.outcome ?? "unfinished"}${done.endedAt !== undefined ? ` in ${done.endedAt - done.startedAt} ms` : ""}${done.error ? `: ${done.error}` : ""}`);
      if (done.outcome !== "succeeded") setExitCode(EXIT_FAILED);
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
      out(`accepted: the next failover of ${String(r["failed"])} may promote ${String(r["accepted"])} whatever it misses (see 'failoverd status')`);
    });
}

async function waitForEnd(a: Api, id: string, timeoutMs: number): Promise<RecoveryView> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const r = await a.call("GET", "/status");
    const s = r.body as unknown as StatusView;
    const found = [...(s.recoveries?.recent ?? []), ...(s.recoveries?.current ?? [])].find((x) => x.id === id);
    if (found?.outcome !== undefined) return found;
    await sleep(100);
  }
  throw new FailoverdError(`switchover ${id} had not ended after ${timeoutMs} ms; see 'failoverd status' and the daemon's log`);
}
