/**
 * The local provider's launch is atomic enough: the daemon is killed with SIGKILL at each point inside the launch of
 * redis1's replacement (held there by FAILOVERD_CHAOS_LOCAL_PAUSE), then `failoverd sandbox down` must leave no
 * process of the sandbox running, recorded or not (checked in /proc, by PID). Killed between starting a Redis server
 * and recording it, the restarted daemon adopts that server instead of starting a second one that cannot bind.
 * Real sandbox on 127.124.x.y.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, describe, test } from "node:test";
import { BIN_PATH } from "../../src/package-root.ts";
import { LOCAL_CHAOS_POINTS } from "../../src/providers/local/chaos.ts";
import { isGone, signal } from "../../src/providers/local/processes.ts";
import { sandboxDown, sandboxUp } from "../../src/providers/local/up.ts";
import { FileJournal, summarize } from "../../src/recovery/journal.ts";
import { startDaemon, stopDaemon } from "../../src/simulate/daemon-process.ts";
import { assertAddressesFree, type TestTopology, testTopology } from "../helpers/sandbox.ts";

const BIN = BIN_PATH;
const NET = "127.124.";

/** Live processes of this sandbox: an address of 127.124 in their command line, or a directory of the test's. */
function sandboxProcesses(dir: string): { pid: number; cmdline: string }[] {
  const out: { pid: number; cmdline: string }[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    const pid = Number(name);
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ");
      const cwd = readlinkSync(`/proc/${pid}/cwd`);
      if (/redis-server|haproxy/.test(cmdline) && (cmdline.includes(NET) || cmdline.includes(dir) || cwd.startsWith(dir)) && !isGone(pid)) {
        out.push({ pid, cmdline });
      }
    } catch {}
  }
  return out;
}

async function until(what: string, f: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

const logHas = (file: string, text: string) => existsSync(file) && readFileSync(file, "utf8").includes(text);

/** Waits for `marker` in the daemon's log; fails at once when the daemon exits. Generous: this machine is shared. */
async function waitForLog(file: string, child: ChildProcess, marker: string): Promise<void> {
  await until(`'${marker}' in ${file}`, () => {
    if (child.exitCode !== null) throw new Error(`the daemon exited (code ${child.exitCode}); see ${file}`);
    return logHas(file, marker);
  }, 120_000);
}

describe("the daemon killed with SIGKILL inside the local provider's launch", { timeout: 900_000 }, () => {
  const daemons: ChildProcess[] = [];
  const worlds: TestTopology[] = [];
  after(async () => {
    for (const d of daemons) await stopDaemon(d);
    for (const tt of worlds) {
      await sandboxDown(tt.topology).catch(() => 0);
      // Whatever a failed run left, stopped by PID.
      for (const p of sandboxProcesses(tt.dir)) signal({ pid: p.pid, marker: "" }, "SIGKILL");
      tt.cleanup();
    }
  });

  for (const point of LOCAL_CHAOS_POINTS) {
    test(`killed at '${point}': sandbox down leaves no process running${point === "spawned" ? "; the restarted daemon adopts the server instead of doubling it" : ""}`, async () => {
      const tt = testTopology({ net: 124 });
      worlds.push(tt);
      const t = tt.topology;
      await assertAddressesFree(t);
      const sandbox = await sandboxUp(t);
      try {
        await killInsideLaunch();
      } finally {
        for (const d of daemons) await stopDaemon(d);
        await sandboxDown(t).catch(() => 0);
        for (const p of sandboxProcesses(tt.dir)) signal({ pid: p.pid, marker: "" }, "SIGKILL");
      }

      async function killInsideLaunch(): Promise<void> {
      const log1 = join(tt.dir, "daemon-1.log");
      const first = startDaemon(t, log1, { FAILOVERD_CHAOS_LOCAL_PAUSE: `${point}:300000` });
      daemons.push(first);
      await waitForLog(log1, first, "roles discovered");
      for (const p of sandbox.machineOf("redis1")?.processes ?? []) signal(p, "SIGKILL");
      await waitForLog(log1, first, `chaos: local provider pausing 300000 ms at ${point}`);
      const exited = new Promise((r) => first.once("exit", r));
      first.kill("SIGKILL");
      await exited;

      if (point === "spawned") {
        // The server started at that point runs, and no record names it.
        const replacement = sandbox.read().machines.find((m) => m.host === "redis1" && m.status === "running");
        assert.ok(replacement, "the replacement machine is recorded before any of its processes starts");
        const orphan = sandboxProcesses(tt.dir).find((p) => p.cmdline.includes(replacement.dir) || p.cmdline.includes(`${replacement.address}:`));
        assert.ok(orphan, "a server was started and not recorded");
        assert.ok(!replacement.processes.some((p) => p.pid === orphan.pid));

        const log2 = join(tt.dir, "daemon-2.log");
        const second = startDaemon(t, log2);
        daemons.push(second);
        await waitForLog(log2, second, "resuming the unfinished recovery");
        const journal = new FileJournal(join(t.config.stateDir, "journal.jsonl"));
        await until("the resumed recovery's end", async () => summarize(await journal.read())[0]?.outcome !== undefined, 120_000);
        const [recovery] = summarize(await journal.read());
        assert.equal(recovery?.outcome, "succeeded", recovery?.error);
        await stopDaemon(second);
        const machine = sandbox.read().machines.find((m) => m.id === replacement.id);
        assert.ok(machine);
        for (const port of [9001, 9002]) {
          const live: { pid: number; cmdline: string }[] = sandboxProcesses(tt.dir).filter((p) => p.cmdline.includes(`${machine.address}:${port}`));
          assert.equal(live.length, 1, `one redis-server on ${machine.address}:${port}: ${JSON.stringify(live)}`);
          const recorded: { pid: number } | undefined = machine.processes.find((p) => p.kind === "redis" && p.port === port);
          assert.equal(recorded?.pid, live[0]?.pid, `the recorded PID is the server that runs on ${machine.address}:${port}`);
        }
        assert.ok(machine.processes.some((p) => p.pid === orphan.pid), "the orphan was adopted");
      }

      const down = spawnSync(process.execPath, [BIN, "sandbox", "down", "--config", tt.path], { encoding: "utf8", timeout: 120_000 });
      assert.equal(down.status, 0, down.stderr);
      await until("every sandbox process gone", () => sandboxProcesses(tt.dir).length === 0, 20_000).catch(() => {});
      assert.deepEqual(sandboxProcesses(tt.dir), [], "no process of the sandbox is left running");
      }
    });
  }
});
