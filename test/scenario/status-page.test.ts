/**
 * The status page as the person on call reads it, in headless Chromium, on a running daemon (real sandbox on
 * 127.171.x.y): one verdict per pair and per port with its "since", what each HAProxy routes where, the pause and a
 * maintenance, a reason several findings share said once, the history, and stale data shown as stale (grey, with its
 * age) the moment the daemon stops answering. Each state is checked in the DOM, and its screenshot is taken and
 * checked to be a PNG (the content is what the DOM says, not pixels).
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, test } from "node:test";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { signal } from "../../src/providers/local/processes.ts";
import type { Sandbox } from "../../src/providers/local/sandbox.ts";
import { sandboxDown, sandboxUp } from "../../src/providers/local/up.ts";
import { startDaemon, stopDaemon } from "../../src/simulate/daemon-process.ts";
import { assertAddressesFree, type TestTopology, testTopology } from "../helpers/sandbox.ts";
import { waitForLog } from "../helpers/wait.ts";

const TOKEN = "status-page-token-171";
const API = "http://127.171.9.1:9464";
const CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const TIME = /\d\d:\d\d:\d\d/;

async function post(path: string, body: unknown): Promise<Record<string, unknown>> {
  const r = await fetch(`${API}${path}`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}` }, body: JSON.stringify({ operator: "oncall", ...(body as object) }) });
  const json = (await r.json()) as Record<string, unknown>;
  assert.ok(r.status < 300, `${path}: ${JSON.stringify(json)}`);
  return json;
}

describe("the status page under stress, in Chromium", { timeout: 600_000 }, () => {
  let dir: string;
  let tt: TestTopology;
  let sandbox: Sandbox;
  let daemon: ChildProcess;
  let browser: BrowserContext;
  let page: Page;
  let profile: string;
  const log = () => join(tt.dir, "daemon.log");
  const text = async (sel: string) => (await page.textContent(sel)) ?? "";
  /** A screenshot of the whole page: produced, and a PNG of some size (its content is checked through the DOM). */
  const shot = async (name: string) => {
    const path = join(dir, `status-page-${name}.png`);
    await page.screenshot({ path, fullPage: true });
    assert.ok(statSync(path).size > 10_000, `${name}: the screenshot has content`);
    assert.deepEqual([...readFileSync(path).subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], `${name}: a PNG`);
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "failoverd-status-page-"));
    writeFileSync(join(dir, "token"), `${TOKEN}\n`, { mode: 0o600 });
    tt = testTopology({ net: 171, intervalMs: 400, timeoutMs: 400, extra: `http: { listen: "127.171.9.1:9464", token: { file: ${join(dir, "token")} } }\n` });
    await assertAddressesFree(tt.topology);
    sandbox = await sandboxUp(tt.topology);
    daemon = startDaemon(tt.topology, log());
    await waitForLog(log(), daemon, "HTTP API on");
    profile = mkdtempSync(join(tmpdir(), "failoverd-chromium-"));
    browser = await chromium.launchPersistentContext(profile, { executablePath: "/usr/bin/chromium", headless: true, args: CHROMIUM_ARGS, timezoneId: "UTC" });
    page = browser.pages()[0] ?? (await browser.newPage());
    await page.setViewportSize({ width: 1200, height: 900 });
    await page.goto(`${API}/`);
    await page.waitForSelector('body[data-loaded="true"]', { timeout: 60_000 });
  });

  after(async () => {
    await browser?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
    if (daemon) {
      // A daemon left stopped by a failed test must be able to hear SIGTERM.
      if (daemon.pid && daemon.exitCode === null && daemon.signalCode === null) process.kill(daemon.pid, "SIGCONT");
      await stopDaemon(daemon);
    }
    if (tt) await sandboxDown(tt.topology);
    tt?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test("healthy: writes OK per pair and port with since, each HAProxy routes to the primary, no findings, no history", async () => {
    await page.waitForSelector('[data-verdict="redis1+redis2"][data-writes="OK"]', { timeout: 20_000 });
    assert.match(await text('[data-verdict="redis1+redis2"] h3'), new RegExp(`^redis1 \\+ redis2writes OK since ${TIME.source}$`));
    for (const port of ["9001", "9002"]) {
      const row = await text(`[data-verdict="redis1+redis2"] [data-verdict-port="${port}"]`);
      assert.match(row, new RegExp(`primary redis1.*writes OK since ${TIME.source}`));
    }
    for (const proxy of ["haproxy1", "haproxy2"]) {
      for (const port of ["9001", "9002"]) {
        const sel = `[data-route="${proxy}:be_redis_${port}"]`;
        await page.waitForSelector(`${sel}[data-to="redis1"]`, { timeout: 10_000 });
        assert.equal(await page.getAttribute(`${sel} [data-route-server="redis1"]`, "data-state"), "up");
        assert.equal(await page.getAttribute(`${sel} [data-route-server="redis2"]`, "data-state"), "down", "a replica fails the role:master check");
      }
    }
    await page.waitForSelector('[data-route="app:be_app_7001"], [data-route^="app:"]', { timeout: 10_000 });
    assert.match(await text("#alerts"), /No findings: every target is healthy\./);
    assert.match(await text("#history"), /No recoveries yet\./);
    assert.equal(await page.getAttribute("body", "data-stale"), "false");
    await shot("healthy");
  });

  test("paused, redis1 and haproxy2 die: writes DOWN since, the pause's reason shown once for both findings, maintenance on the card", async () => {
    await post("/pause", { reason: "change window", for: "1h" });
    await post("/maintenance", { host: "redis2", for: "2h", reason: "disk swap" });
    await page.waitForSelector("[data-pause]", { timeout: 10_000 });
    assert.match(await text("[data-pause]"), new RegExp(`^paused until ${TIME.source} · change window · by oncall via http 127\\.`));
    await page.waitForSelector('[data-maintenance="redis2"]', { timeout: 10_000 });
    assert.match(await text('[data-maintenance="redis2"]'), /in maintenance until .* \(disk swap\), set by oncall via http/);
    assert.match(await text('[data-host="redis2"] h3'), /maintenance/);
    await post("/maintenance", { host: "redis2", end: true });
    await page.waitForSelector('[data-maintenance="redis2"]', { state: "detached", timeout: 10_000 });

    const killedAt = Date.now();
    for (const p of sandbox.machineOf("redis1")?.processes ?? []) signal(p, "SIGKILL");
    for (const p of sandbox.machineOf("haproxy2")?.processes ?? []) signal(p, "SIGKILL");
    await page.waitForSelector('[data-verdict="redis1+redis2"][data-writes="DOWN"]', { timeout: 20_000 });
    assert.match(await text('[data-verdict="redis1+redis2"] h3'), new RegExp(`writes DOWN since ${TIME.source}$`));
    const since = /writes DOWN since (\d\d):(\d\d):(\d\d)/.exec(await text('[data-verdict="redis1+redis2"] [data-verdict-port="9001"]'));
    assert.ok(since, "the port says since when");
    const d = new Date(killedAt);
    const shown = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate(), Number(since[1]), Number(since[2]), Number(since[3]));
    assert.ok(Math.abs(shown - killedAt) < 30_000, `DOWN since ${since[0]}, killed at ${new Date(killedAt).toISOString()}`);
    assert.match(await text('[data-verdict-port="9001"]'), /redis1:9001, its primary, does not answer/);

    await page.waitForSelector('[data-finding="DeadPrimary:redis1"]', { timeout: 20_000 });
    await page.waitForSelector('[data-finding="HaproxyDown:haproxy2"]', { timeout: 20_000 });
    const paused = page.getByText("failoverd is paused; not acting", { exact: true });
    assert.equal(await paused.count(), 1, "the reason both findings share is said once");
    assert.equal(await page.locator('[data-alert="failoverd is paused; not acting"] [data-finding]').count(), 2);
    await page.waitForSelector('[data-route="haproxy2"] .b-down, [data-route^="haproxy2:"] .b-down', { timeout: 20_000 });
    await page.waitForSelector('[data-route="haproxy1:be_redis_9001"][data-to=""]', { timeout: 20_000 });
    assert.match(await text('[data-route="haproxy1:be_redis_9001"]'), /none/);
    await shot("down-paused");
  });

  test("resumed: the recoveries run, writes OK again since the promotion, routing follows, the history tells it all", async () => {
    await post("/resume", { confirm: true });
    try {
      await page.waitForFunction(() => document.querySelectorAll('[data-history][data-outcome="succeeded"]').length === 2, undefined, { timeout: 120_000 });
    } catch (e) {
      // Say what the journal says instead of a bare timeout: each recovery's outcome, error and steps, and the log's end.
      const history = (await (await fetch(`${API}/history`)).json()) as { recoveries: { playbook: string; host: string; outcome?: string; error?: string; steps: { step: string; ok?: boolean; error?: string }[] }[] };
      const told = history.recoveries.map((r) => `${r.playbook} ${r.host}: ${r.outcome ?? "running"}${r.error ? ` (${r.error})` : ""} [${r.steps.map((x) => `${x.step}${x.ok === false ? ` failed: ${x.error}` : ""}`).join(", ")}]`);
      assert.fail(`${(e as Error).message}; the history: ${told.join("; ")}; the log ends: ${readFileSync(log(), "utf8").split("\n").slice(-15).join("\n")}`);
    }
    await page.waitForSelector('[data-verdict="redis1+redis2"][data-writes="OK"]', { timeout: 30_000 });
    const ok = /writes OK since (\d\d:\d\d:\d\d)/.exec(await text('[data-verdict-port="9001"]'));
    assert.ok(ok);
    assert.match(await text('[data-verdict-port="9001"]'), /primary redis2/);
    for (const proxy of ["haproxy1", "haproxy2"]) await page.waitForSelector(`[data-route="${proxy}:be_redis_9001"][data-to="redis2"]`, { timeout: 30_000 });
    const history = await text("#history");
    assert.match(history, /failed_redis for redis1/);
    assert.match(history, /failed_haproxy for haproxy2/);
    assert.match(history, /failoverd \(DeadPrimary\)/);
    assert.match(history, /failoverd \(HaproxyDown\)/);
    assert.match(history, /promote \d+(\.\d+)? m?s/);
    assert.match(history, /resumed.*oncall via http/);
    assert.match(history, /paused.*oncall via http.*\(change window\)/);
    assert.match(history, /maintenance of redis2.*\(disk swap\)/);
    await shot("recovered");
  });

  test("the daemon stops answering: everything turns grey at once, with its age, and comes back when it answers", async () => {
    assert.equal(await page.getAttribute("body", "data-stale"), "false");
    const pid = daemon.pid!;
    process.kill(pid, "SIGSTOP");
    try {
      await page.waitForSelector('body[data-stale="true"]', { timeout: 15_000 });
      const banner = await text("#stale");
      assert.match(banner, /: everything below is stale, as of \d\d:\d\d:\d\d \((\d+(\.\d+)? s|\d+ min) old\)\.$/);
      assert.equal(await page.evaluate(() => getComputedStyle(document.querySelector("main")!).filter), "grayscale(1)");
      const age1 = await text("#age");
      await sleep(2500);
      const age2 = await text("#age");
      assert.notEqual(age1, age2, "the age counts on");
      assert.match(age2, /data from \d\d:\d\d:\d\d \(\d+(\.\d+)? s old\)/);
      await shot("stale");
    } finally {
      process.kill(pid, "SIGCONT");
    }
    await page.waitForSelector('body[data-stale="false"]', { timeout: 30_000 });
    assert.equal(await page.evaluate(() => getComputedStyle(document.querySelector("main")!).filter), "none");

    await stopDaemon(daemon);
    await page.waitForSelector('body[data-stale="true"]', { timeout: 15_000 });
    assert.match(await text("#stale"), /^The daemon is not answering \(.+\): everything below is stale/);
  });
});
