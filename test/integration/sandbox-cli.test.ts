/**
 * Integration: the real command line (`node bin/failoverd.js`) driving a sandbox on 127.22.x.y: sandbox up, status
 * (healthy, a crashed server, a hung server), a second up refused, and sandbox down leaving no process behind.
 * The tests run in order and share one sandbox; `after()` runs `sandbox down` again in case one failed midway.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { Diagnosis } from "../../src/checks/detector.ts";
import type { Observation } from "../../src/checks/observation.ts";
import { sandboxStatus } from "../../src/providers/local/up.ts";
import { assertAddressesFree, testTopology } from "../helpers/sandbox.ts";
import { descendants, isGone } from "../../src/providers/local/processes.ts";
import { PACKAGE_ROOT } from "../../src/package-root.ts";

/** The repository root (/work/main): the CLI runs from there. */
const REPO = PACKAGE_ROOT;
const TIMEOUT_MS = 500;
/** What a CLI run may add to the work itself: Node start-up (well under 1 s here) and some slack. */
const STARTUP_MS = 2000;

const tt = testTopology({ net: 22, timeoutMs: TIMEOUT_MS, intervalMs: 500 });
const t = tt.topology;
const HOSTS = ["redis1", "redis2", "haproxy1", "haproxy2", "app"];

interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

/** Runs `failoverd <args> --config <tt.path>`; kills it (and fails the test) if it outlives `timeoutMs`. */
function cli(args: readonly string[], timeoutMs = 30_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const child = spawn(process.execPath, ["bin/failoverd.js", ...args, "--config", tt.path], {
      cwd: REPO,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const ms = performance.now() - start;
      if (timedOut) {
        reject(new Error(`failoverd ${args.join(" ")} did not finish within ${timeoutMs} ms; stdout: ${stdout} stderr: ${stderr}`));
        return;
      }
      resolve({ code, signal, stdout, stderr, ms });
    });
  });
}

const describeRun = (r: CliResult) => `exit ${r.code}; stdout: ${r.stdout.trim()}; stderr: ${r.stderr.trim()}`;

interface StatusJson {
  readonly topology: string;
  readonly healthy: boolean;
  readonly observations: Observation[];
  readonly diagnoses: Diagnosis[];
}

interface SandboxStatusJson {
  readonly runDir: string;
  readonly machines: {
    host: string;
    id: string;
    role: string;
    address: string;
    processes: { pid: number; kind: string; port?: number; state: string }[];
  }[];
}

function parseJson<T>(r: CliResult): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    return assert.fail(`not one JSON document: ${describeRun(r)}`);
  }
}

function observation(s: StatusJson, target: string): Observation {
  const o = s.observations.find((x) => x.target === target);
  assert.ok(o, `no observation of ${target} in ${s.observations.map((x) => x.target).join(", ")}`);
  return o;
}

/** The PID the sandbox recorded for a host's Redis server on `port`. */
function redisPid(host: string, port: number): number {
  const p = sandboxStatus(t)
    .machines.find((m) => m.host === host)
    ?.processes.find((x) => x.kind === "redis" && x.port === port);
  assert.ok(p, `the sandbox has no redis process for ${host}:${port}`);
  return p.pid;
}



async function waitUntil(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await sleep(25);
  }
}

/** PIDs stopped by a test and not yet continued: continued in after() whatever happens. */
const stopped = new Set<number>();
/** Every PID `sandbox status --json` listed while the sandbox ran, plus HAProxy's workers. */
const listedPids: number[] = [];
const workerPids: number[] = [];
/** How long a healthy `status --json` took: the baseline of the timing assertions. */
let healthyStatusMs = Number.NaN;

/**
 * The longest a `status` run may take when one server makes the check wait `waitMs` (0 for a refused connection, the
 * check timeout for a hung server): that wait plus a couple of seconds of CLI start-up, or, on a slower machine, the
 * healthy run's time plus that wait plus a second.
 */
function statusBudgetMs(waitMs: number): number {
  const relative = Number.isFinite(healthyStatusMs) ? healthyStatusMs + waitMs + 1000 : 0;
  return Math.round(Math.max(waitMs + STARTUP_MS, relative));
}

describe("the failoverd CLI against a real sandbox (net 22)", { timeout: 180_000 }, () => {
  before(async () => {
    await assertAddressesFree(t);
  });

  after(async () => {
    for (const pid of stopped) {
      try {
        process.kill(pid, "SIGCONT");
      } catch {}
    }
    stopped.clear();
    try {
      await cli(["sandbox", "down"], 60_000);
    } finally {
      tt.cleanup();
    }
  });

  test("sandbox up exits 0 and prints every host", async () => {
    const r = await cli(["sandbox", "up"], 60_000);
    assert.equal(r.code, 0, describeRun(r));
    for (const h of HOSTS) assert.match(r.stdout, new RegExp(`^\\s+\\w+\\s+${h} 127\\.22\\.`, "m"), `no line for ${h}: ${r.stdout}`);
    assert.match(r.stdout, /sandbox 't22' is up/);
    assert.equal(r.stderr, "");
  });

  test("sandbox status --json lists 5 running machines with running processes", async () => {
    const r = await cli(["sandbox", "status", "--json"]);
    assert.equal(r.code, 0, describeRun(r));
    const s = parseJson<SandboxStatusJson>(r);
    assert.deepEqual(s.machines.map((m) => m.host).sort(), [...HOSTS].sort());
    for (const m of s.machines) {
      assert.ok(m.processes.length > 0, `${m.host} has no process`);
      for (const p of m.processes) {
        assert.equal(p.state, "running", `${m.host} ${p.kind}${p.port ? `:${p.port}` : ""} pid ${p.pid} is ${p.state}`);
        assert.ok(Number.isInteger(p.pid) && p.pid > 1);
        listedPids.push(p.pid);
        if (p.kind === "haproxy") workerPids.push(...descendants(p.pid));
      }
      const redisPorts = m.processes.filter((p) => p.kind === "redis").map((p) => p.port);
      if (m.role === "redis") assert.deepEqual(redisPorts.sort(), [9001, 9002]);
      else assert.deepEqual(m.processes.map((p) => p.kind), ["haproxy"]);
    }
    assert.equal(listedPids.length, 7);
    assert.ok(workerPids.length >= 3, `HAProxy workers: ${workerPids.join(", ")}`);
  });

  test("status exits 0; status --json reports every observation ok, redis1 primary, redis2 replica", async () => {
    const text = await cli(["status"]);
    assert.equal(text.code, 0, describeRun(text));
    assert.match(text.stdout, /diagnosis: NoProblem/);

    const r = await cli(["status", "--json"]);
    assert.equal(r.code, 0, describeRun(r));
    healthyStatusMs = r.ms;
    const s = parseJson<StatusJson>(r);
    assert.equal(s.topology, "t22");
    assert.equal(s.healthy, true);
    assert.deepEqual(s.diagnoses, []);
    assert.deepEqual(
      s.observations.map((o) => o.target).sort(),
      ["app", "haproxy1", "haproxy2", "redis1:9001", "redis1:9002", "redis2:9001", "redis2:9002"],
    );
    for (const o of s.observations) assert.equal(o.ok, true, `${o.target}: ${JSON.stringify(o.failure)}`);
    for (const port of [9001, 9002]) {
      const p = observation(s, `redis1:${port}`);
      const q = observation(s, `redis2:${port}`);
      assert.ok(p.type === "redis" && q.type === "redis");
      assert.equal(p.role, "primary");
      assert.equal(q.role, "replica");
      assert.equal(q.primaryAddress, "127.22.1.1");
      assert.equal(q.linkUp, true);
    }
  });

  test("after SIGKILL of redis1's 9001 server, status exits 1 and shows it down with a diagnosis on redis1", async () => {
    const pid = redisPid("redis1", 9001);
    process.kill(pid, "SIGKILL");
    await waitUntil(`redis1:9001 (pid ${pid}) is gone`, () => isGone(pid));

    const text = await cli(["status"]);
    assert.equal(text.code, 1, describeRun(text));
    assert.match(text.stdout, /diagnosis: \w+ on redis1/);

    const r = await cli(["status", "--json"]);
    assert.equal(r.code, 1, describeRun(r));
    const s = parseJson<StatusJson>(r);
    assert.equal(s.healthy, false);
    const o = observation(s, "redis1:9001");
    assert.equal(o.ok, false);
    assert.equal(o.failure?.kind, "refused", JSON.stringify(o.failure));
    assert.ok(
      s.diagnoses.some((d) => d.host === "redis1" && d.targets.includes("redis1:9001")),
      `no diagnosis on redis1: ${JSON.stringify(s.diagnoses)}`,
    );
    // Nothing else was touched.
    for (const other of ["redis1:9002", "redis2:9001", "redis2:9002"]) assert.equal(observation(s, other).ok, true, other);
    // A refused connection answers in microseconds: the command must not linger after its output.
    assert.ok(
      r.ms <= statusBudgetMs(0),
      `status took ${Math.round(r.ms)} ms with one refused server (budget ${statusBudgetMs(0)} ms; healthy: ${Math.round(healthyStatusMs)} ms)`,
    );
  });

  test("after SIGSTOP of redis2's 9002 server, status exits 1 with a timeout, and finishes quickly", async () => {
    const pid = redisPid("redis2", 9002);
    stopped.add(pid);
    process.kill(pid, "SIGSTOP");
    let r: CliResult;
    try {
      r = await cli(["status", "--json"], 30_000);
    } finally {
      process.kill(pid, "SIGCONT");
      stopped.delete(pid);
    }
    assert.equal(r.code, 1, describeRun(r));
    const s = parseJson<StatusJson>(r);
    assert.equal(s.healthy, false);
    const o = observation(s, "redis2:9002");
    assert.equal(o.ok, false);
    assert.equal(o.failure?.kind, "timeout", JSON.stringify(o.failure));
    assert.ok(o.latencyMs <= TIMEOUT_MS + 300, `the check of the hung server took ${o.latencyMs} ms`);
    assert.ok(
      r.ms <= statusBudgetMs(TIMEOUT_MS),
      `status took ${Math.round(r.ms)} ms with one hung server (budget ${statusBudgetMs(TIMEOUT_MS)} ms; healthy: ${Math.round(healthyStatusMs)} ms)`,
    );
  });

  test("sandbox up a second time while it runs exits non-zero with a one-line message", async () => {
    const r = await cli(["sandbox", "up"], 60_000);
    assert.notEqual(r.code, 0, describeRun(r));
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 1, `not one line: ${r.stderr}`);
    assert.match(lines[0] ?? "", /^failoverd: .*already running/);
    assert.doesNotMatch(r.stderr, /internal error|\n\s+at /);
    // It left the running sandbox alone.
    const st = parseJson<SandboxStatusJson>(await cli(["sandbox", "status", "--json"]));
    assert.equal(st.machines.length, 5);
  });

  test("sandbox down exits 0, every listed PID is gone, and sandbox status then says none is running", async () => {
    assert.equal(listedPids.length, 7, "the sandbox status test did not record the PIDs");
    const r = await cli(["sandbox", "down"], 60_000);
    assert.equal(r.code, 0, describeRun(r));
    assert.match(r.stdout, /sandbox stopped/);
    const alive = listedPids.filter((pid) => !isGone(pid));
    assert.deepEqual(alive, [], `still running after sandbox down: ${alive.join(", ")}`);
    await waitUntil(`HAProxy workers ${workerPids.join(", ")} exit`, () => workerPids.every(isGone), 5_000);

    const st = await cli(["sandbox", "status"]);
    assert.equal(st.code, 1, describeRun(st));
    assert.match(st.stdout, /no sandbox is running/);
    await assertAddressesFree(t);
  });
});
