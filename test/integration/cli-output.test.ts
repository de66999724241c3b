/**
 * The CLI's output through real pipes and a real terminal: a reader that closes stdout early (`status | head -1`,
 * `| true`) gets no stack trace and exit 0; a daemon whose stdout reader went away goes on; NO_COLOR turns the
 * colours of the terminal log format off. The topology is on 127.121.x.y and nothing listens there, so `status` finds
 * everything down (exit 1 when it can print all of it).
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, test } from "node:test";
import { assertAddressesFree, type TestTopology, testTopology } from "../helpers/sandbox.ts";
import { BIN_PATH } from "../../src/package-root.ts";

const BIN = BIN_PATH;
let tt: TestTopology;
const started: ChildProcess[] = [];

before(async () => {
  tt = testTopology({ net: 121 });
  await assertAddressesFree(tt.topology);
});

after(async () => {
  for (const c of started) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  // A daemon started through a shell is stopped by the PID in its lock file.
  const pid = daemonPid();
  if (pid !== null && isAlive(pid)) process.kill(pid, "SIGKILL");
  tt.cleanup();
});

const q = (s: string) => `'${s.replace(/'/g, "'\\''")}'`;

/** A bash pipeline with pipefail: its status is failoverd's unless failoverd exited 0. */
function pipeline(command: string, env: NodeJS.ProcessEnv = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync("bash", ["-c", `set -o pipefail; ${command}`], { encoding: "utf8", timeout: 60_000, env: { ...process.env, ...env } });
  assert.equal(r.error, undefined);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const failoverd = (args: string) => `${q(process.execPath)} ${q(BIN)} ${args} --config ${q(tt.path)}`;

test("status with its reader gone before it writes (| true): no stack trace, nothing on stderr, exit 0", () => {
  for (let i = 0; i < 2; i++) {
    const r = pipeline(`${failoverd("status")} | true`);
    assert.equal(r.stderr, "", "nothing on stderr");
    assert.equal(r.status, 0, "the reader closed stdout: exit 0");
  }
});

test("status | head -1: one line, no stack trace; exit 0 when head closed the pipe first, else status's own verdict", () => {
  for (let i = 0; i < 3; i++) {
    const r = pipeline(`${failoverd("status")} | head -1`);
    assert.equal(r.stderr, "", "nothing on stderr (no EPIPE stack trace)");
    assert.match(r.stdout, /^HOST +SERVER +ROLE/);
    assert.equal(r.stdout.split("\n").length, 2, "one line");
    assert.ok(r.status === 0 || r.status === 1, `exit ${r.status}`);
  }
  // With a reader that takes everything, the verdict is status's own: everything is down, exit 1.
  const full = pipeline(`${failoverd("status")} | cat`);
  assert.equal(full.status, 1);
  assert.match(full.stdout, /diagnosis: /);
});

function daemonPid(): number | null {
  const lock = join(tt.topology.config.stateDir, "daemon.lock");
  if (!existsSync(lock)) return null;
  const pid = Number(readFileSync(lock, "utf8").trim());
  return Number.isInteger(pid) && pid > 0 ? pid : null;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until<T>(what: string, f: () => T | null | undefined | false, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

test("run | true: the daemon goes on without its stdout, says so once on stderr, and stops cleanly on SIGTERM", async () => {
  const shell = spawn("bash", ["-c", `set -o pipefail; ${failoverd("run")} | true`], { stdio: ["ignore", "ignore", "pipe"] });
  started.push(shell);
  let stderr = "";
  shell.stderr.setEncoding("utf8").on("data", (s: string) => {
    stderr += s;
  });
  const exit = new Promise<number | null>((resolve) => shell.once("exit", (code) => resolve(code)));
  const pid = await until("the daemon's lock", () => {
    const p = daemonPid();
    return p !== null && isAlive(p) ? p : null;
  });
  await until("the warning on stderr", () => stderr.includes("stdout was closed by its reader"));
  await sleep(1000); // its check loops turn on without stdout
  assert.ok(isAlive(pid), `the daemon is still running\n${stderr}`);
  process.kill(pid, "SIGTERM");
  assert.equal(await exit, 0, stderr);
  assert.doesNotMatch(stderr, /\n {4}at |EPIPE/, stderr);
  assert.equal(stderr.match(/stdout was closed/g)?.length, 1, stderr);
});

/** The daemon on a pseudo-terminal (util-linux `script`), until its first round is logged; what the terminal showed. */
async function onTerminal(env: NodeJS.ProcessEnv): Promise<string> {
  const child = spawn("script", ["-qfec", `${failoverd("run")}`, "/dev/null"], { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, ...env } });
  started.push(child);
  let text = "";
  child.stdout.setEncoding("utf8").on("data", (s: string) => {
    text += s;
  });
  const exit = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  try {
    await until("the first round on the terminal", () => text.includes("roles discovered"));
  } finally {
    const pid = daemonPid();
    if (pid !== null && isAlive(pid)) process.kill(pid, "SIGTERM");
    await exit;
  }
  return text;
}

test("NO_COLOR: the terminal log format has no colour codes (and has them without NO_COLOR)", async () => {
  const base = { FAILOVERD_LOG_FORMAT: "", NO_COLOR: "", FORCE_COLOR: "" };
  const coloured = await onTerminal(base);
  const ESC = String.fromCharCode(0x1b);
  assert.ok(/\[3\dm/.test(coloured) && coloured.includes(`${ESC}[3`), "colours on a terminal by default (the pseudo-terminal works)");
  const plain = await onTerminal({ ...base, NO_COLOR: "1" });
  assert.match(plain, /INFO +failoverd started/);
  assert.ok(!plain.includes(ESC), "no escape sequence at all with NO_COLOR");
});
