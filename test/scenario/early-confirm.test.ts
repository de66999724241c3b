/**
 * A recovery started early on crash evidence (refused, and the replica's link down) unmonitors the host before the
 * failure is confirmed: the failing servers are still checked on their schedule until they are down, so the promotion,
 * reached later (here held 1.5 s before it, as several instances' etcd transactions hold it a little), finds `fall`
 * failed checks already made and re-checks once, instead of counting again from the last check before the unmonitor.
 * Real redis-server and haproxy on 127.207.x.y; a daemon process.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import type { PromoteResult } from "../../src/recovery/steps/redis.ts";
import { killAll, scenario } from "../helpers/matrix.ts";
import { testTopology } from "../helpers/sandbox.ts";

const FALL = 3;
const tt = testTopology({ net: 207, ports: [9001], intervalMs: 1000, fall: FALL });
after(() => tt.cleanup());

describe("an early start's confirmation", { timeout: 120_000 }, () => {
  test("the failing servers of a host unmonitored early are still checked: the promotion waits for no check it could have had", async () => {
    await scenario(
      tt,
      async (c) => {
        await c.waitConverged(30_000);
        killAll(c.processesOf("redis1"), "SIGKILL");
        const [r] = await c.waitForRecoveries(1, 60_000);
        assert.equal(r?.outcome, "succeeded", r?.error);
        // Started early: fewer than `fall` failed checks when the recovery was decided (the fast re-check after a
        // refused connection comes a quarter interval, 250 ms, later: ample time for the witness).
        const decided = c.log().split("\n").find((l) => l.includes("DeadPrimary on redis1: running failed_redis"));
        assert.ok(decided, "the decision is logged");
        const k = Number(/redis1:9001: (\d+) failed checks in a row/.exec(decided)?.[1]);
        assert.ok(k < FALL, `the recovery was decided after ${k} failed checks: not an early start, nothing to test`);
        // At the promotion the count had reached `fall` during the pause: one more check.
        const promote = r!.completed.get("promote") as PromoteResult | undefined;
        const evidence = promote?.confirmed?.join(" ") ?? "";
        const m = Number(/\((\d+) failed checks in a row\)/.exec(evidence)?.[1]);
        assert.ok(m > FALL, `the promotion counted ${m} failed checks (${evidence}): the checks during the earlier steps were not counted`);
        // When it was confirmed (what bench/monitors.ts measures as detection): by the daemon's checks during the
        // pause, after the recovery began and before the promotion did.
        const promoteStart = r!.steps.find((s) => s.step === "promote")?.startedAt;
        const at = promote?.confirmedAt;
        assert.ok(at !== undefined && promoteStart !== undefined, "the confirmation's time is journaled");
        assert.ok(at > r!.startedAt, `confirmed ${r!.startedAt - at} ms before the recovery started: not an early start`);
        assert.ok(at < promoteStart, `confirmed ${at - promoteStart} ms after the promotion started: it waited`);
      },
      { env: { FAILOVERD_CHAOS_PAUSE: "promote:1500" } },
    );
  });
});
