/**
 * The daemon's lock on its state directory, with real `failoverd run` processes: a lock file naming a live, unrelated
 * PID (a stale lock after an unclean reboot whose PID was reused) never blocks a start, and a second daemon on the
 * same state directory is still refused. Nothing listens on the topology (127.120.x.y): the daemons only watch.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { startDaemon, stopDaemon, waitForDaemon } from "../../src/simulate/daemon-process.ts";
import { assertAddressesFree, type TestTopology, testTopology } from "../helpers/sandbox.ts";

let tt: TestTopology;
const children: ChildProcess[] = [];

before(async () => {
  tt = testTopology({ net: 120 });
  await assertAddressesFree(tt.topology);
});

after(async () => {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null && c.pid !== undefined) {
      if (c.spawnargs[0] === "sleep") c.kill("SIGKILL");
      else await stopDaemon(c);
    }
  }
  tt.cleanup();
});

function exited(c: ChildProcess): Promise<number | null> {
  if (c.exitCode !== null) return Promise.resolve(c.exitCode);
  return new Promise((resolve) => c.once("exit", (code) => resolve(code)));
}

test("a lock file naming a live unrelated process does not block the start; a second daemon on the same state directory is refused", async () => {
  const stateDir = tt.topology.config.stateDir;
  mkdirSync(stateDir, { recursive: true });
  // An unrelated live process whose PID the lock file names, as after a reboot that reused the last daemon's PID.
  const sleeper = spawn("sleep", ["600"], { stdio: "ignore" });
  children.push(sleeper);
  assert.ok(sleeper.pid);
  writeFileSync(join(stateDir, "daemon.lock"), `${sleeper.pid}\n`);

  const log1 = join(tt.dir, "daemon1.log");
  const first = startDaemon(tt.topology, log1);
  children.push(first);
  await waitForDaemon(log1, first);
  assert.equal(readFileSync(join(stateDir, "daemon.lock"), "utf8").trim(), String(first.pid), "the lock file names the daemon now");
  assert.equal(sleeper.exitCode, null, "the unrelated process was left alone");

  const log2 = join(tt.dir, "daemon2.log");
  const second = startDaemon(tt.topology, log2);
  children.push(second);
  const code = await exited(second);
  const text = readFileSync(log2, "utf8");
  assert.equal(code, 1, text);
  assert.match(text, new RegExp(`another failoverd \\(pid ${first.pid}\\) holds the lock`), text);
  assert.doesNotMatch(text, /\n {4}at /, "one line, no stack trace");
  assert.equal(first.exitCode, null, "the first daemon goes on");

  // The first daemon killed outright: the kernel releases its lock, and the next start takes it.
  const firstExit = exited(first);
  first.kill("SIGKILL");
  await firstExit;
  const log3 = join(tt.dir, "daemon3.log");
  const third = startDaemon(tt.topology, log3);
  children.push(third);
  await waitForDaemon(log3, third);
  await stopDaemon(third);
  assert.equal(third.exitCode, 0, readFileSync(log3, "utf8"));
});
