/**
 * The operator's controls and the history on a running daemon (real sandbox on 127.170.x.y, the CLI as an operator
 * runs it): a pause that ends by itself; a host in maintenance that is not recovered while it dies, across a restart
 * of the daemon, until the maintenance is ended; a resume that says what it starts and needs --yes; a forced failover
 * that prints its plan and does nothing without --yes; and the history of it all from the journal (CLI and /history).
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { after, before, describe, test } from "node:test";
import { RedisAdminClient } from "../../src/admin/redis.ts";
import type { StatusView } from "../../src/daemon/status.ts";
import { BIN_PATH } from "../../src/package-root.ts";
import { signal } from "../../src/providers/local/processes.ts";
import type { Sandbox } from "../../src/providers/local/sandbox.ts";
import { sandboxDown, sandboxUp } from "../../src/providers/local/up.ts";
import type { History } from "../../src/recovery/history.ts";
import { startDaemon, stopDaemon } from "../../src/simulate/daemon-process.ts";
import { assertAddressesFree, type TestTopology, testTopology } from "../helpers/sandbox.ts";
import { waitForLog, waitUntil } from "../helpers/wait.ts";

const execFileP = promisify(execFile);
const BIN = BIN_PATH;
const API = "http://127.170.9.1:9464";

describe("operator controls and history on a running daemon", { timeout: 1_200_000 }, () => {
  let dir: string;
  let tt: TestTopology;
  let sandbox: Sandbox;
  let daemon: ChildProcess;
  let logNo = 0;
  const status = async () => (await (await fetch(`${API}/status`)).json()) as StatusView;
  /** The CLI; resolves with its output and exit code (a non-zero exit is an answer, not an error). */
  const cli = async (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
    try {
      const r = await execFileP(process.execPath, [BIN, ...args, "--config", tt.path], { env: { ...process.env, FAILOVERD_TOKEN: "" } });
      return { code: 0, stdout: r.stdout, stderr: r.stderr };
    } catch (e) {
      const x = e as { code: number; stdout: string; stderr: string };
      return { code: x.code, stdout: x.stdout, stderr: x.stderr };
    }
  };
  const start = async () => {
    const log = join(tt.dir, `daemon-${++logNo}.log`);
    daemon = startDaemon(tt.topology, log);
    await waitForLog(log, daemon, "HTTP API on");
    return log;
  };
  const roleOf = async (address: string, port: number) => {
    const c = new RedisAdminClient({ address, port }, 2000);
    try {
      return (await c.role()).role;
    } finally {
      c.close();
    }
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "failoverd-controls-"));
    writeFileSync(join(dir, "token"), "controls-test-token\n", { mode: 0o600 });
    tt = testTopology({ net: 170, intervalMs: 400, timeoutMs: 400, extra: `http: { listen: "127.170.9.1:9464", token: { file: ${join(dir, "token")} } }\n` });
    await assertAddressesFree(tt.topology);
    sandbox = await sandboxUp(tt.topology);
    await start();
  });

  after(async () => {
    if (daemon) await stopDaemon(daemon);
    if (tt) await sandboxDown(tt.topology);
    tt?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test("a pause with a reason and an expiry: shown everywhere, and it ends by itself", async () => {
    const r = await cli("pause", "--reason", "db upgrade", "--for", "10m");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^paused until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(db upgrade\): failoverd diagnoses and alerts, and recovers nothing$/m);
    const s = await status();
    assert.equal(s.paused, true);
    assert.equal(s.pause?.reason, "db upgrade");
    assert.match(s.pause?.by ?? "", /(^| via )http 127\.\S+$/);
    assert.ok((s.pause?.until ?? 0) > Date.now());
    const metrics = await (await fetch(`${API}/metrics`)).text();
    assert.match(metrics, /^failoverd_paused 1$/m);
    assert.equal(Number(/^failoverd_pause_expiry_timestamp_seconds (\S+)$/m.exec(metrics)?.[1]) * 1000, s.pause?.until);
    const st = await cli("status");
    assert.match(st.stdout, /^PAUSED until \S+ by .* \(db upgrade\): no automatic recovery$/m);
    // A pause replaces the one in force; a short one (through the API: the CLI may take seconds to start here) expires.
    const short = await fetch(`${API}/pause`, {
      method: "POST",
      headers: { authorization: `Bearer ${readFileSync(join(dir, "token"), "utf8").trim()}` },
      body: JSON.stringify({ for: "2s", reason: "short", operator: "tester" }),
    });
    assert.equal(short.status, 200);
    await waitUntil("the pause has ended by itself", async () => !(await status()).paused, 60_000);
    assert.equal((await status()).pause, null);
    assert.match(await (await fetch(`${API}/metrics`)).text(), /^failoverd_paused 0$/m);
  });

  test("maintenance: a host that dies in it is not recovered, across a restart, until the maintenance ends; resume needs --yes", async () => {
    const m = await cli("maintenance", "redis2", "--for", "10m", "--reason", "disk swap");
    assert.equal(m.code, 0, m.stderr);
    assert.match(m.stdout, /^redis2: in maintenance until \S+Z \(disk swap\): failoverd will not act on it$/m);
    assert.match((await cli("maintenance")).stdout, /^redis2: in maintenance until \S+ \(disk swap\), set by /m);
    const s = await status();
    assert.deepEqual(
      s.maintenance.map((x) => [x.host, x.reason]),
      [["redis2", "disk swap"]],
    );
    assert.equal(s.hosts.find((h) => h.name === "redis2")?.maintenance?.reason, "disk swap");
    assert.match(await (await fetch(`${API}/metrics`)).text(), /^failoverd_maintenance_expiry_timestamp_seconds\{host="redis2"\} \d+(\.\d+)?$/m);
    assert.match((await cli("status")).stdout, /^MAINTENANCE redis2 until \S+ by .* \(disk swap\): no recovery of it$/m);

    for (const p of sandbox.machineOf("redis2")?.processes ?? []) signal(p, "SIGKILL");
    const finding = await waitUntil("DeadReplica on redis2 is held by the maintenance", async () =>
      (await status()).diagnoses.find((d) => d.key === "DeadReplica:redis2" && d.decision.kind === "alert" && /in maintenance/.test(d.decision.reason)),
    );
    assert.match(finding.decision.kind === "alert" ? finding.decision.reason : "", /^redis2 is in maintenance until \S+Z \(disk swap\); not acting on pair:redis1\+redis2$/);

    // A restart keeps the maintenance (state.ts), and the daemon still does not act.
    await stopDaemon(daemon);
    const log = await start();
    const after = await status();
    assert.deepEqual(
      after.maintenance.map((x) => x.host),
      ["redis2"],
    );
    await waitUntil("the restarted daemon holds DeadReplica too", async () =>
      (await status()).diagnoses.some((d) => d.key === "DeadReplica:redis2" && d.decision.kind === "alert" && /in maintenance/.test(d.decision.reason)),
    );
    assert.deepEqual((await status()).recoveries, { current: [], recent: [] }, "no recovery while in maintenance");

    // Paused, the maintenance ends: still nothing starts. Resume says what it would start, and waits for --yes.
    assert.equal((await cli("pause", "--for", "forever", "--reason", "hold on")).code, 0);
    const end = await cli("maintenance", "redis2", "--end");
    assert.match(end.stdout, /^redis2: maintenance ended; failoverd may act on it again$/m);
    assert.match((await cli("maintenance", "redis2", "--end")).stdout, /^redis2 was not in maintenance$/m);
    await waitUntil("DeadReplica is held by the pause", async () =>
      (await status()).diagnoses.some((d) => d.key === "DeadReplica:redis2" && d.decision.kind === "alert" && /paused/.test(d.decision.reason)),
    );
    const preview = await cli("resume");
    assert.equal(preview.code, 1);
    assert.match(preview.stdout, /^resuming would start at once:\n {2}failed_redis for redis2 \(DeadReplica\)$/m);
    assert.match(preview.stderr, /^failoverd: not resumed: run 'failoverd resume --yes'/);
    assert.equal((await status()).paused, true, "still paused");
    await sleep(1000);
    assert.deepEqual((await status()).recoveries, { current: [], recent: [] }, "nothing started without --yes");

    const go = await cli("resume", "--yes");
    assert.equal(go.code, 0, go.stderr);
    assert.match(go.stdout, /^resumed: failoverd recovers again, starting:\n {2}failed_redis for redis2 \(DeadReplica\)$/m);
    await waitForLog(log, daemon, "recovery succeeded");
    await waitUntil("redis2 is up again on its new machine", async () =>
      (await status()).hosts.find((h) => h.name === "redis2")?.targets.every((t) => t.status === "up"),
    );
  });

  test("forced failover: the plan without --yes (nothing done, exit 1), then the failover with --yes", async () => {
    const before = await status();
    assert.deepEqual(before.pairs[0]?.primaries, { "9001": "redis1", "9002": "redis1" });
    const dry = await cli("failover", "--host", "redis1", "--reason", "suspect NIC");
    assert.equal(dry.code, 1, dry.stderr);
    assert.match(dry.stdout, /^forced failover of redis1: failed_redis, as the daemon would run it now:$/m);
    assert.match(dry.stdout, /^ ?\d+\. Make the remaining Redis the primary {3}\[point of no return\]$/m);
    assert.match(dry.stdout, /would send REPLICAOF NO ONE to 127\.170\.1\.\d+:9001/);
    assert.match(dry.stdout, /^warning: redis1 answers and is primary on 9001, 9002: .*'failoverd switchover --to redis2'/m);
    assert.match(dry.stderr, /^failoverd: nothing was done: run 'failoverd failover --host redis1 --yes' to start it$/m);
    await sleep(500);
    assert.equal(await roleOf("127.170.1.1", 9001), "primary", "nothing changed");
    assert.equal((await status()).recoveries.recent.length, 1, "no recovery started");

    // Refusals are one line and exit 1.
    const app = await cli("failover", "--host", "app", "--yes");
    assert.equal(app.code, 1);
    assert.match(app.stderr, /^failoverd: the daemon at http:\/\/127\.170\.9\.1:9464 refused \/failover: app is an app host/);

    // The pair just recovered (cooldown), yet an operator's failover goes ahead.
    const go = await cli("failover", "--host", "redis1", "--reason", "suspect NIC", "--yes", "--wait", "--timeout", "120000");
    assert.equal(go.code, 0, `${go.stdout}\n${go.stderr}`);
    assert.match(go.stdout, /^failover \S+ started: failed_redis for redis1$/m);
    assert.match(go.stdout, /^failover succeeded in /m);
    const s = await status();
    assert.deepEqual(s.pairs[0]?.primaries, { "9001": "redis2", "9002": "redis2" });
  });

  test("history: each recovery with its diagnosis, trigger, steps and outcome, and every control, from CLI and /history", async () => {
    const text = await cli("history");
    assert.equal(text.code, 0, text.stderr);
    const out = text.stdout;
    assert.match(out, /^\S+ \S+Z {2}failed_redis for redis1: succeeded in [\d.]+ m?s {2}\[\S+\]\n {2}diagnosis: forced failover requested by .*\n {2}triggered by: .*http 127\.\S+ \(suspect NIC\)$/m);
    assert.match(out, /^\S+ \S+Z {2}failed_redis for redis2: succeeded in .*\n {2}diagnosis: DeadReplica \(failing since \S+ \S+Z\)\n {2}triggered by: failoverd \(DeadReplica\)$/m);
    for (const step of ["unmonitor", "fence", "promote", "terminate", "launch", "replicate", "register", "monitor"]) {
      assert.match(out, new RegExp(`^ {4}ok {3}${step} +[\\d.]+ m?s`, "m"), step);
    }
    assert.match(out, /^\S+ \S+Z {2}paused until \S+ \S+Z by .* \(db upgrade\)$/m);
    assert.match(out, /^\S+ \S+Z {2}paused until \S+ \S+Z by tester via http \S+ \(short\)$/m);
    assert.match(out, /^\S+ \S+Z {2}pause expired by failoverd \(short\)$/m);
    assert.match(out, /^\S+ \S+Z {2}redis2 in maintenance until \S+ \S+Z by .* \(disk swap\)$/m);
    assert.match(out, /^\S+ \S+Z {2}redis2's maintenance ended by /m);
    assert.match(out, /^\S+ \S+Z {2}paused until resumed by .* \(hold on\)$/m);
    assert.match(out, /^\S+ \S+Z {2}resumed by /m);
    assert.ok(out.indexOf("failed_redis for redis1") < out.indexOf("failed_redis for redis2"), "newest first");

    const json = JSON.parse((await cli("history", "--json", "--since", "1h")).stdout) as History;
    const api = (await (await fetch(`${API}/history?since=1h`)).json()) as History;
    assert.deepEqual(api, json, "GET /history says what the CLI reads from the journal");
    assert.deepEqual(
      json.recoveries.map((r) => [r.playbook, r.host, r.origin, r.outcome]),
      [
        ["failed_redis", "redis1", "operator", "succeeded"],
        ["failed_redis", "redis2", "diagnosis", "succeeded"],
      ],
    );
    assert.equal(json.recoveries[0]?.reason, "suspect NIC");
    assert.ok(json.recoveries[0]?.steps.every((s) => typeof s.durationMs === "number" && s.ok === true));
    assert.deepEqual(
      json.controls.map((c) => c.action).reverse(),
      ["pause", "pause", "pause-expired", "maintenance", "pause", "maintenance-end", "resume"],
    );
    const none = JSON.parse((await cli("history", "--json", "--since", "2099-01-01")).stdout) as History;
    assert.deepEqual(none, { recoveries: [], controls: [] });
    const bad = await cli("history", "--since", "yesterday");
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^failoverd: --since: 'yesterday' is neither a duration/);
    assert.ok(!readFileSync(join(tt.topology.config.stateDir, "journal.jsonl"), "utf8").includes("controls-test-token"), "no token in the journal");
  });
});
