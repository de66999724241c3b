/**
 * The mass-failure rule on real processes: in the seed-like topology (7 targets) both Redis hosts are killed. That is
 * 4 of 7 targets down, more than maxFailingFraction (0.5), but both HAProxies answer and mark every Redis server
 * down: a genuine PairDown, not "the monitor's own network is suspect". Real sandbox on 127.130.x.y.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, describe, test } from "node:test";
import { DIAGNOSES } from "../../src/checks/detector.ts";
import { signal } from "../../src/providers/local/processes.ts";
import { sandboxDown, sandboxUp } from "../../src/providers/local/up.ts";
import { FileJournal } from "../../src/recovery/journal.ts";
import { startDaemon, stopDaemon, waitForDaemon } from "../../src/simulate/daemon-process.ts";
import { assertAddressesFree, testTopology } from "../helpers/sandbox.ts";

describe("both Redis hosts of the seed topology down", { timeout: 120_000 }, () => {
  const tt = testTopology({ net: 130 });
  let daemon: ChildProcess | undefined;
  after(async () => {
    if (daemon) await stopDaemon(daemon);
    await sandboxDown(tt.topology);
    tt.cleanup();
  });

  test("4 of 7 targets down, confirmed by both HAProxies: PairDown with its own reason, no recovery", async () => {
    const t = tt.topology;
    await assertAddressesFree(t);
    const sandbox = await sandboxUp(t);
    const log = join(tt.dir, "daemon.log");
    daemon = startDaemon(t, log);
    await waitForDaemon(log, daemon);
    for (const host of ["redis1", "redis2"]) for (const p of sandbox.machineOf(host)?.processes ?? []) signal(p, "SIGKILL");

    const pairDown = `PairDown on redis1: ${DIAGNOSES.PairDown.description}`;
    const deadline = Date.now() + 60_000;
    let text = "";
    while (Date.now() < deadline) {
      text = readFileSync(log, "utf8");
      if (text.includes(pairDown)) break;
      await sleep(100);
    }
    assert.ok(text.includes(pairDown), `the daemon never said '${pairDown}'; see ${log}`);
    // Both HAProxies answer throughout: the finding is the pair's, and it stays so.
    await sleep(2000);
    const after = readFileSync(log, "utf8").slice(text.indexOf(pairDown));
    assert.doesNotMatch(after, /the monitor's own network is suspect/, "once the HAProxies confirm it, the monitor's network is not blamed");
    assert.deepEqual(await new FileJournal(join(t.config.stateDir, "journal.jsonl")).read(), [], "nothing to promote: no recovery");
  });
});
