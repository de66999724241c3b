/**
 * The daemon as its owners run it: under systemd's notify protocol (a fake NOTIFY_SOCKET), with its HTTP API,
 * webhooks and status page. Real sandbox on 127.50.x.y; webhooks go to a server this test runs on loopback; the
 * status page is read by headless Chromium.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { after, before, describe, test } from "node:test";
import { chromium } from "playwright-core";
import { signal } from "../../src/providers/local/processes.ts";
import type { Sandbox } from "../../src/providers/local/sandbox.ts";
import { sandboxDown, sandboxUp } from "../../src/providers/local/up.ts";
import { startDaemon, stopDaemon, waitForDaemon } from "../../src/simulate/daemon-process.ts";
import { assertAddressesFree, type TestTopology, testTopology } from "../helpers/sandbox.ts";
import { BIN_PATH } from "../../src/package-root.ts";

const execFileP = promisify(execFile);
const BIN = BIN_PATH;
const TOKEN = "ops-test-token-50-do-not-log";
const API = "http://127.50.9.1:9464";
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Receives datagrams on a unix socket like systemd does, and closes the barrier fds systemd-notify waits on. */
const NOTIFY_RECEIVER = `
import socket, sys, os, array
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("ready", flush=True)
with open(sys.argv[2], "a") as f:
    while True:
        msg, anc, flags, addr = s.recvmsg(4096, socket.CMSG_SPACE(64))
        for level, typ, data in anc:
            if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
                for fd in fds:
                    os.close(fd)
        f.write(msg.decode() + "\\n---\\n")
        f.flush()
`;

interface Hooked {
  readonly path: string;
  readonly body: Record<string, unknown>;
}

async function waitUntil<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const v = await fn();
    if (v) return v;
    await sleep(50);
  }
  throw new Error(`timed out waiting until ${what}`);
}

describe("failoverd under operation: systemd, HTTP API, webhooks, status page", { timeout: 240_000 }, () => {
  let dir: string;
  let tt: TestTopology;
  let sandbox: Sandbox;
  let daemon: ChildProcess;
  let receiver: ChildProcess;
  let hookServer: Server;
  const hooks: Hooked[] = [];
  let failFirstJson = true;
  const logFile = () => join(tt.dir, "daemon.log");
  const notified = () => readFileSync(join(dir, "notify.out"), "utf8");
  const cli = (...args: string[]) => execFileP(process.execPath, [BIN, ...args, "--config", tt.path]);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "failoverd-ops-"));
    hookServer = createServer((req, res) => {
      let text = "";
      req.on("data", (c: Buffer) => {
        text += c.toString();
      });
      req.on("end", () => {
        // The first delivery to /json fails: it must be retried.
        if (req.url === "/json" && failFirstJson) {
          failFirstJson = false;
          res.writeHead(503).end();
          return;
        }
        hooks.push({ path: req.url ?? "", body: JSON.parse(text) as Record<string, unknown> });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => hookServer.listen(0, "127.0.0.1", r));
    const port = (hookServer.address() as AddressInfo).port;
    writeFileSync(join(dir, "token"), `${TOKEN}\n`, { mode: 0o600 });
    tt = testTopology({
      net: 50,
      // Chromium starting on two cores must not make healthy servers miss their deadline (and a check's deadline is at
      // most its interval).
      intervalMs: 400,
      timeoutMs: 400,
      extra: `http: { listen: "127.50.9.1:9464", token: { file: ${join(dir, "token")} } }
notifications:
  webhooks:
    - { name: json, url: "http://127.0.0.1:${port}/json" }
    - { name: slack, url: "http://127.0.0.1:${port}/slack", format: slack, events: [diagnosis, recovery-end] }
`,
    });
    await assertAddressesFree(tt.topology);
    receiver = spawn("python3", ["-c", NOTIFY_RECEIVER, join(dir, "notify.sock"), join(dir, "notify.out")], { stdio: ["ignore", "pipe", "inherit"] });
    await new Promise<void>((r) => receiver.stdout?.once("data", () => r()));
    sandbox = await sandboxUp(tt.topology);
    daemon = startDaemon(tt.topology, logFile(), { NOTIFY_SOCKET: join(dir, "notify.sock"), WATCHDOG_USEC: "1000000" });
    await waitForDaemon(logFile(), daemon, "HTTP API on");
  });

  after(async () => {
    if (daemon) await stopDaemon(daemon);
    if (tt) await sandboxDown(tt.topology);
    receiver?.kill("SIGTERM");
    await new Promise<void>((r) => hookServer.close(() => r()));
    tt?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test("tells systemd it is ready and pets the watchdog while the loops turn", async () => {
    await waitUntil("two watchdog pings", () => (notified().match(/^WATCHDOG=1$/gm) ?? []).length >= 2, 5000);
    const text = notified();
    assert.match(text, /^READY=1$/m);
    assert.match(text, /^STATUS=watching t50; HTTP on 127\.50\.9\.1:9464$/m);
    assert.ok(text.indexOf("READY=1") < text.indexOf("WATCHDOG=1"), "ready before the first watchdog ping");
  });

  test("serves /metrics, /status, /healthz and the status page", async () => {
    const m = await fetch(`${API}/metrics`);
    assert.equal(m.status, 200);
    assert.match(m.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    const metrics = await m.text();
    const checks = /^failoverd_checks_total\{target="redis1:9001",type="redis"\} (\d+)$/m.exec(metrics);
    assert.ok(checks && Number(checks[1]) > 0, "checks are counted per target");
    assert.match(metrics, /^failoverd_target_status\{target="redis1:9001",status="up"\} 1$/m);
    assert.match(metrics, /^failoverd_target_status\{target="haproxy1",status="up"\} 1$/m);
    assert.match(metrics, /^failoverd_redis_primary\{target="redis1:9001"\} 1$/m);
    assert.match(metrics, /^failoverd_redis_primary\{target="redis2:9001"\} 0$/m);
    assert.match(metrics, /^failoverd_check_duration_seconds_bucket\{le="0\.05",type="redis"\} \d+$/m);
    assert.match(metrics, /^failoverd_paused 0$/m);
    assert.match(metrics, /^failoverd_process_cpu_seconds_total /m);
    const cycle = Number(/^failoverd_last_cycle_timestamp_seconds (\S+)$/m.exec(metrics)?.[1]);
    assert.ok(Date.now() / 1000 - cycle < 5, `the last complete cycle is recent (${cycle})`);

    const s = await fetch(`${API}/status`);
    assert.equal(s.status, 200);
    const status = (await s.json()) as {
      topology: string;
      paused: boolean;
      hosts: { name: string; address: string; targets: { id: string; status: string; role?: string }[] }[];
      pairs: { primaries: Record<string, string> }[];
      recoveries: { current: unknown[]; recent: unknown[] };
      drills: unknown[];
    };
    assert.equal(status.topology, "t50");
    assert.equal(status.paused, false);
    const redis1 = status.hosts.find((h) => h.name === "redis1");
    assert.equal(redis1?.address, "127.50.1.1");
    assert.deepEqual(
      redis1?.targets.map((t) => [t.id, t.status, t.role]),
      [
        ["redis1:9001", "up", "primary"],
        ["redis1:9002", "up", "primary"],
      ],
    );
    assert.deepEqual(status.pairs[0]?.primaries, { "9001": "redis1", "9002": "redis1" });
    assert.deepEqual(status.recoveries, { current: [], recent: [] });
    assert.deepEqual(status.drills, []);

    const h = await fetch(`${API}/healthz`);
    assert.equal(h.status, 200);
    assert.equal(((await h.json()) as { status: string }).status, "ok");

    const page = await fetch(`${API}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
    assert.match(page.headers.get("content-security-policy") ?? "", /default-src 'none'; script-src 'sha256-/);
    assert.match(await page.text(), /<title>failoverd<\/title>/);

    assert.equal((await fetch(`${API}/nope`)).status, 404);
    assert.equal((await fetch(`${API}/pause`)).status, 405);
  });

  test("changing requests need the bearer token (401), and the token is never logged", async () => {
    const none = await fetch(`${API}/pause`, { method: "POST" });
    assert.equal(none.status, 401);
    assert.match(none.headers.get("www-authenticate") ?? "", /^Bearer/);
    const wrong = await fetch(`${API}/pause`, { method: "POST", headers: { authorization: "Bearer not-the-token" } });
    assert.equal(wrong.status, 401);
    const sw = await fetch(`${API}/switchover`, { method: "POST", body: JSON.stringify({ to: "redis2" }) });
    assert.equal(sw.status, 401);
    const status = (await (await fetch(`${API}/status`)).json()) as { paused: boolean; recoveries: { current: unknown[] } };
    assert.equal(status.paused, false);
    assert.deepEqual(status.recoveries.current, []);
    assert.ok(!readFileSync(logFile(), "utf8").includes(TOKEN), "the token is not in the log");
  });

  test("paused, a SIGKILLed server shows as down on the page; ack; resume recovers it; webhooks tell each step", async (t) => {
    assert.match((await cli("pause", "--reason", "ops test")).stdout, /^paused until \d{4}-\d\d-\d\dT[\d:]+Z \(ops test\):/);
    assert.equal(((await (await fetch(`${API}/status`)).json()) as { paused: boolean }).paused, true);

    for (const p of sandbox.machineOf("redis2")?.processes ?? []) signal(p, "SIGKILL");

    const profile = mkdtempSync(join(tmpdir(), "failoverd-chromium-"));
    const browser = await chromium.launchPersistentContext(profile, { executablePath: "/usr/bin/chromium", headless: true, args: CHROMIUM_ARGS });
    try {
      const page = browser.pages()[0] ?? (await browser.newPage());
      await page.setViewportSize({ width: 1100, height: 900 });
      await page.goto(`${API}/`);
      await page.waitForSelector('[data-target="redis2:9001"][data-status="down"]', { timeout: 20_000 });
      await page.waitForSelector('[data-finding="DeadReplica:redis2"]', { timeout: 10_000 });
      const card = await page.textContent('[data-host="redis2"]');
      assert.match(card ?? "", /down/);
      assert.match((await page.textContent('[data-host="redis1"]')) ?? "", /primary/);
      assert.match((await page.textContent('[data-alert]:has([data-finding="DeadReplica:redis2"])')) ?? "", /paused; not acting/);
      assert.match((await page.textContent("header")) ?? "", /paused/);
      await page.screenshot({ path: join(tmpdir(), "failoverd-status-page-down.png"), fullPage: true });

      // The webhooks heard of it: the JSON one after a retry (its first delivery got a 503), the Slack one as text.
      const json = await waitUntil("the diagnosis reaches the JSON webhook", () =>
        hooks.find((x) => x.path === "/json" && x.body["event"] === "diagnosis" && (x.body["data"] as { key?: string }).key === "DeadReplica:redis2"),
      );
      assert.equal(json.body["topology"], "t50");
      assert.equal(json.body["severity"], "critical");
      // (An UnreachableReplica may come first, while the primary has not yet noticed its replica is gone.)
      const slack = await waitUntil("the diagnosis reaches the Slack webhook", () =>
        hooks.find((x) => x.path === "/slack" && /DeadReplica/.test(String(x.body["text"]))),
      );
      assert.match(String(slack.body["text"]), /\*\[t50\]\* DeadReplica on redis2: failoverd is paused; not acting/);
      assert.deepEqual(Object.keys(slack.body), ["text"]);

      assert.match((await cli("ack")).stdout, /^acknowledged: DeadReplica:redis2$/m);
      const acked = (await (await fetch(`${API}/status`)).json()) as { diagnoses: { key: string; acknowledged: boolean }[] };
      assert.deepEqual(
        acked.diagnoses.map((d) => [d.key, d.acknowledged]),
        [["DeadReplica:redis2", true]],
      );

      assert.match((await cli("resume", "--yes")).stdout, /^resumed: failoverd recovers again, starting:\n {2}failed_redis for redis2 \(DeadReplica\)$/m);
      const end = await waitUntil(
        "the recovery's end reaches the JSON webhook",
        () => hooks.find((x) => x.path === "/json" && x.body["event"] === "recovery-end"),
        60_000,
      );
      assert.equal((end.body["data"] as { outcome: string }).outcome, "succeeded");
      assert.ok(hooks.some((x) => x.path === "/json" && x.body["event"] === "recovery-start"));
      // Each webhook has its own queue: the Slack one may come a moment after the JSON one.
      await waitUntil("the recovery's end reaches the Slack webhook", () =>
        hooks.some((x) => x.path === "/slack" && /failed_redis for redis2 succeeded/.test(String(x.body["text"]))),
      );
      assert.ok(!hooks.some((x) => x.path === "/slack" && /started/.test(String(x.body["text"]))), "the Slack webhook gets only its events");

      // The page shows the recovery with its step timeline, and redis2 up again on its new machine.
      await page.waitForSelector('[data-recovery] [data-step="launch"]', { timeout: 10_000 });
      await page.waitForSelector('[data-target="redis2:9001"][data-status="up"]', { timeout: 20_000 });
      const steps = await page.$$eval("[data-recovery] [data-step]", (els) => els.map((e) => e.getAttribute("data-step")));
      assert.deepEqual(steps, ["unmonitor", "fence", "hold", "promote", "terminate", "launch", "replicate", "register", "converge", "monitor"]);
      await page.screenshot({ path: join(tmpdir(), "failoverd-status-page-recovered.png"), fullPage: true });
    } finally {
      await browser.close();
      rmSync(profile, { recursive: true, force: true });
    }

    const metrics = await (await fetch(`${API}/metrics`)).text();
    const findings = metrics.split("\n").filter((l) => l.startsWith("failoverd_diagnoses_total{"));
    t.diagnostic(findings.join("; "));
    assert.match(metrics, /^failoverd_recoveries_total\{playbook="failed_redis",outcome="succeeded",origin="diagnosis"\} 1$/m);
    assert.match(metrics, /^failoverd_step_duration_seconds_count\{playbook="failed_redis",step="launch",ok="true"\} 1$/m);
    // (Under load, other findings may come and go: the alert while paused is counted at least once.)
    assert.match(metrics, /^failoverd_diagnoses_total\{diagnosis="DeadReplica",host="redis2",decision="alert"\} [1-9]\d*$/m);
    assert.match(metrics, /^failoverd_diagnoses_total\{diagnosis="DeadReplica",host="redis2",decision="recover"\} 1$/m);
    assert.match(metrics, /^failoverd_notifications_total\{webhook="json",result="retried"\} 1$/m);
    assert.match(metrics, /^failoverd_check_failures_total\{target="redis2:9001",kind="refused"\} \d+$/m);
  });

  test("SIGTERM: STOPPING=1 and a clean exit", async () => {
    const exited = new Promise<number | null>((r) => daemon.once("exit", (code) => r(code)));
    daemon.kill("SIGTERM");
    assert.equal(await exited, 0);
    assert.match(notified(), /^STOPPING=1$/m);
  });
});
