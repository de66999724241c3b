/**
 * Crash safety of the daemon itself: failoverd is killed with SIGKILL in the middle of a recovery (held at a known
 * step by FAILOVERD_CHAOS_PAUSE), restarted, and must resume the same recovery (not start a second one), launch
 * no second machine, and converge. Real sandbox on 127.31.x.y.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, test } from "node:test";
import { whyNotConverged } from "../../src/checks/converged.ts";
import { signal } from "../../src/providers/local/processes.ts";
import { sandboxDown, sandboxUp } from "../../src/providers/local/up.ts";
import { FileJournal, summarize } from "../../src/recovery/journal.ts";
import { failedHaproxy } from "../../src/recovery/playbooks/failed-haproxy.ts";
import { failedRedis } from "../../src/recovery/playbooks/failed-redis.ts";
import { startDaemon, stopDaemon, waitForDaemon } from "../../src/simulate/daemon-process.ts";
import { Inventory } from "../../src/topology/inventory.ts";
import { assertAddressesFree, type TestTopology, testTopology } from "../helpers/sandbox.ts";

// Every step of both playbooks: a step added later is covered without touching this file.
const CASES: [target: string, step: string][] = [
  ...failedRedis("redis1").steps.map((s): [string, string] => ["redis1", s.name]),
  ...failedHaproxy("haproxy1").steps.map((s): [string, string] => ["haproxy1", s.name]),
];

describe("the daemon killed with SIGKILL mid-recovery", { timeout: 300_000 }, () => {
  let tt: TestTopology;
  const children: ChildProcess[] = [];
  before(() => {
    tt = testTopology({ net: 31 });
  });
  after(async () => {
    for (const c of children) await stopDaemon(c);
    await sandboxDown(tt.topology);
    tt.cleanup();
  });

  for (const [target, step] of CASES) {
    test(`killed before ${step} of ${target}'s recovery: the restarted daemon resumes that recovery, launches once, converges`, async () => {
      const t = tt.topology;
      await assertAddressesFree(t);
      const sandbox = await sandboxUp(t);
      try {
        const log1 = join(tt.dir, `daemon-${target}-${step}-1.log`);
        const first = startDaemon(t, log1, { FAILOVERD_CHAOS_PAUSE: `${step}:60000` });
        children.push(first);
        await waitForDaemon(log1, first);
        for (const p of sandbox.machineOf(target)?.processes ?? []) signal(p, "SIGKILL");
        await waitForDaemon(log1, first, `chaos: pausing 60000 ms before ${step}`);
        first.kill("SIGKILL");
        await new Promise((r) => first.once("exit", r));

        const journal = new FileJournal(join(t.config.stateDir, "journal.jsonl"));
        const before = summarize(await journal.read());
        assert.equal(before.length, 1);
        assert.equal(before[0]?.outcome, undefined, "the recovery must still be open when the daemon dies");

        const log2 = join(tt.dir, `daemon-${target}-${step}-2.log`);
        const second = startDaemon(t, log2);
        children.push(second);
        await waitForDaemon(log2, second, "resuming the unfinished recovery");
        const deadline = Date.now() + 30_000;
        let recoveries = summarize(await journal.read());
        while (recoveries[0]?.outcome === undefined && Date.now() < deadline) {
          await sleep(50);
          recoveries = summarize(await journal.read());
        }
        assert.equal(recoveries.length, 1, "one recovery, resumed, not a second one");
        assert.equal(recoveries[0]?.outcome, "succeeded", recoveries[0]?.error);
        const launched = sandbox.read().machines.filter((m) => m.host === target);
        assert.equal(recoveries[0]?.steps.filter((s) => s.step === "launch" && s.ok).length, 1, "launched once");
        assert.equal(launched.length, 2, "the original machine and exactly one replacement");
        assert.equal(launched.filter((m) => m.status === "running").length, 1);
        const inv = Inventory.load(t, join(t.config.stateDir, "inventory.json"));
        let why = await whyNotConverged(t, inv);
        // HAProxy's own health checks may still need a round or two after the last step.
        for (let i = 0; i < 50 && why !== null; i++) {
          await sleep(100);
          why = await whyNotConverged(t, inv);
        }
        assert.equal(why, null);
        await stopDaemon(second);
      } finally {
        for (const c of children) await stopDaemon(c);
        await sandboxDown(t);
      }
    });
  }
});
