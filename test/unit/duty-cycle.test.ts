/** DutyCycle: the daemon's evaluations, coalesced and held to a share of the time. Fake clock and scheduler. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { DutyCycle } from "../../src/daemon/duty-cycle.ts";

/** A fake world: `clock` in ms, scheduled runs kept in order until `tick` runs those that are due. */
function world(costMs: number) {
  let clock = 0;
  const queue: { at: number; fn: () => void }[] = [];
  const runs: number[] = [];
  const errors: unknown[] = [];
  let stopped = false;
  let fail = false;
  const cycle = new DutyCycle(
    () => {
      runs.push(clock);
      clock += costMs;
      if (fail) throw new Error("boom");
    },
    {
      waitFactor: 9,
      now: () => clock,
      schedule: (fn, ms) => queue.push({ at: clock + ms, fn }),
      stopped: () => stopped,
      onError: (e) => errors.push(e),
    },
  );
  return {
    cycle,
    runs,
    errors,
    queue,
    /** Advances the clock to `to`, running what falls due on the way. */
    advance(to: number) {
      for (;;) {
        queue.sort((a, b) => a.at - b.at);
        const next = queue[0];
        if (!next || next.at > to) break;
        queue.shift();
        clock = Math.max(clock, next.at);
        next.fn();
      }
      clock = Math.max(clock, to);
    },
    stop: () => (stopped = true),
    failNext: (v: boolean) => (fail = v),
  };
}

/** A scheduler that records each wait asked for and keeps the runs for the test to call. */
function recorder() {
  const delays: number[] = [];
  const pending: (() => void)[] = [];
  const schedule = (fn: () => void, ms: number): void => {
    delays.push(ms);
    pending.push(fn);
  };
  return { delays, pending, schedule };
}

describe("DutyCycle", () => {
  test("requests before the run share it: a burst of 1,000 is one run", () => {
    const w = world(0);
    for (let i = 0; i < 1000; i++) w.cycle.request();
    assert.equal(w.queue.length, 1);
    assert.equal(w.queue[0]!.at, 0, "a cheap run waits for nothing");
    w.advance(0);
    assert.deepEqual(w.runs, [0]);
    w.cycle.request();
    w.advance(0);
    assert.equal(w.runs.length, 2, "after the run, a new request runs again");
  });

  test("costly runs take at most a tenth of the time, however often they are asked for", () => {
    const w = world(10);
    // A request every millisecond for 10 s (every check of thousands of down targets).
    for (let t = 0; t < 10_000; t++) {
      w.advance(t);
      w.cycle.request();
    }
    w.advance(10_000);
    const busy = w.runs.length * 10;
    assert.ok(busy <= 1_000 + 10, `busy ${busy} ms of 10,000`);
    assert.ok(w.runs.length >= 95, `only ${w.runs.length} runs: starved`);
    for (let i = 1; i < w.runs.length; i++) assert.ok(w.runs[i]! - w.runs[i - 1]! >= 100, `runs ${w.runs[i - 1]} and ${w.runs[i]} too close`);
  });

  test("a request is never lost: one made while a run waits is served by that run", () => {
    const w = world(10);
    w.cycle.request();
    w.advance(0); // runs at 0, ends at 10: the next may start at 100
    w.cycle.request();
    assert.equal(w.queue[0]!.at, 100);
    w.advance(50);
    w.cycle.request();
    assert.equal(w.queue.length, 1);
    w.advance(100);
    assert.deepEqual(w.runs, [0, 100]);
  });

  test("a run that throws is reported and later requests run again; once stopped nothing runs", () => {
    const w = world(0);
    w.failNext(true);
    w.cycle.request();
    w.advance(0);
    assert.equal(w.errors.length, 1);
    w.failNext(false);
    w.cycle.request();
    w.advance(1);
    assert.equal(w.runs.length, 2);
    w.cycle.request();
    w.stop();
    w.advance(2);
    assert.equal(w.runs.length, 2);
  });

  test("a run's cost is the main thread's CPU time, not the wall clock (nor the process's other threads): a run held up 50 ms without working puts nothing off", () => {
    const { delays, pending, schedule } = recorder();
    const cycle = new DutyCycle(() => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50), {
      waitFactor: 9,
      schedule,
      onError: (e) => assert.fail(String(e)),
    });
    cycle.request();
    pending.shift()!();
    cycle.request();
    assert.equal(delays.length, 2);
    // By the wall clock the next run would wait 9 x 50 ms; by CPU time (a blocked thread uses none) next to nothing.
    assert.ok(delays[1]! < 100, `the next run waits ${delays[1]} ms`);
  });

  test("one costly run among cheap ones (code compiled on first use) does not put the next off by nine times its cost", () => {
    let clock = 0;
    const costs = [1, 1, 1, 1, 200, 1];
    const { delays, pending, schedule } = recorder();
    const cycle = new DutyCycle(
      () => {
        clock += costs.shift() ?? 1;
      },
      {
      waitFactor: 9,
      now: () => clock,
      schedule,
        onError: (e) => assert.fail(String(e)),
      },
    );
    for (let i = 0; i < 6; i++) {
      cycle.request();
      pending.shift()!();
    }
    cycle.request();
    // After the 200 ms run: 9 x a smoothed cost (about 21 ms), not 9 x 200 ms.
    assert.ok(delays[5]! < 9 * 30, `the run after the costly one waits ${delays[5]} ms`);
    assert.ok(delays[5]! > 9 * 1, "the costly run still counts");
  });

  test("a least wait (an instance that only observes) spaces cheap runs out; without it they run back to back", () => {
    let clock = 0;
    let observing = true;
    const { delays, pending, schedule } = recorder();
    const cycle = new DutyCycle(() => {}, {
      waitFactor: 9,
      now: () => clock,
      minWaitMs: () => (observing ? 50 : 0),
      schedule,
      onError: (e) => assert.fail(String(e)),
    });
    cycle.request();
    pending.shift()!();
    clock += 10;
    cycle.request();
    assert.equal(delays[1], 40, "the next run comes 50 ms after the last one, not at once");
    pending.shift()!();
    // Leading now: the wait asked after this run is none again.
    observing = false;
    clock += 60;
    cycle.request();
    pending.shift()!();
    cycle.request();
    assert.equal(delays[3], 0, "an acting instance runs at once");
  });
});
