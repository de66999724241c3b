/**
 * A drill scheduled a minute ahead runs: the daemon (in this process) on a real sandbox on 127.52.x.y, the drills on
 * a fake clock. The timer the drill armed is checked and fired; the drill runs a real switchover, and its result
 * arrives as a notification (a webhook server on loopback) and as a metric. Paused, the next one is skipped and
 * says so.
 */
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, test } from "node:test";
import { RedisAdminClient } from "../../src/admin/redis.ts";
import { Daemon } from "../../src/daemon/daemon.ts";
import { silentLogger } from "../../src/log.ts";
import type { DrillClock } from "../../src/ops/drills.ts";
import { Ops } from "../../src/ops/index.ts";
import { createProviders } from "../../src/providers/index.ts";
import { sandboxDown, sandboxUp } from "../../src/providers/local/up.ts";
import { assertAddressesFree, type TestTopology, testTopology } from "../helpers/sandbox.ts";

interface Timer {
  readonly fn: () => void;
  readonly ms: number;
  cancelled: boolean;
}

async function waitUntil<T>(what: string, fn: () => T | undefined, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const v = fn();
    if (v !== undefined) return v;
    await sleep(50);
  }
  throw new Error(`timed out waiting until ${what}`);
}

describe("drills", { timeout: 120_000 }, () => {
  // Tuesday 7 January 2031, 10:00:30 local time: the drill is due at 10:01:00, thirty seconds ahead.
  const start = new Date(2031, 0, 7, 10, 0, 30).getTime();
  let fakeNow = start;
  const timers: Timer[] = [];
  const clock: DrillClock = {
    now: () => fakeNow,
    setTimer(fn, ms) {
      const t: Timer = { fn, ms, cancelled: false };
      timers.push(t);
      return () => {
        t.cancelled = true;
      };
    },
  };
  const hooks: Record<string, unknown>[] = [];
  let server: Server;
  let tt: TestTopology;
  let daemon: Daemon;
  let ops: Ops;

  before(async () => {
    server = createServer((req, res) => {
      let text = "";
      req.on("data", (c: Buffer) => {
        text += c.toString();
      });
      req.on("end", () => {
        hooks.push(JSON.parse(text) as Record<string, unknown>);
        res.writeHead(200).end("ok");
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as AddressInfo).port;
    tt = testTopology({
      net: 52,
      extra: `drills:
  - { schedule: "1 10 * * 2", pair: [redis1, redis2], action: switchover }
notifications:
  webhooks: [{ name: drills, url: "http://127.0.0.1:${port}/hook", events: [drill] }]
`,
    });
    await assertAddressesFree(tt.topology);
    await sandboxUp(tt.topology);
    daemon = new Daemon({ topology: tt.topology, providers: await createProviders(tt.topology), log: silentLogger() });
    ops = Ops.attach(daemon, { log: silentLogger(), drillClock: clock });
    await daemon.start();
    await ops.start();
  });

  after(async () => {
    await ops?.stopping();
    await daemon?.stop();
    await ops?.stop();
    if (tt) await sandboxDown(tt.topology);
    tt?.cleanup();
    await new Promise<void>((r) => server.close(() => r()));
  });

  test("a drill due a minute ahead runs a switchover, and tells it as a notification and a metric", async () => {
    const due = new Date(2031, 0, 7, 10, 1, 0).getTime();
    assert.deepEqual(
      ops.drills.list().map((d) => [d.schedule, d.pair.join("+"), d.next]),
      [["1 10 * * 2", "redis1+redis2", due]],
    );
    assert.equal(timers.length, 1);
    assert.equal(timers[0]?.ms, due - start, "armed for 10:01:00, 30 s ahead");

    fakeNow = due;
    timers[0]?.fn();
    const hook = await waitUntil("the drill's notification arrives", () => hooks.find((h) => h["event"] === "drill"));
    const data = hook["data"] as { outcome: string; to: string; pair: string; recoveryId: string };
    assert.equal(data.outcome, "succeeded");
    assert.equal(data.to, "redis2");
    assert.equal(data.pair, "redis1+redis2");
    assert.match(String(hook["title"]), /^drill of redis1\+redis2: switchover succeeded in .* \(redis2 is primary now\)$/);

    for (const port of [9001, 9002]) {
      const c = new RedisAdminClient({ address: "127.52.1.2", port }, 1000);
      try {
        assert.equal((await c.role()).role, "primary", `redis2:${port} is primary after the drill`);
      } finally {
        c.close();
      }
    }
    const metrics = await ops.metrics.text();
    assert.match(metrics, /^failoverd_drills_total\{pair="redis1\+redis2",outcome="succeeded"\} 1$/m);
    assert.match(metrics, new RegExp(`^failoverd_drill_last_timestamp_seconds\\{pair="redis1\\+redis2",outcome="succeeded"\\} ${due / 1000}$`, "m"));
    assert.match(metrics, /^failoverd_recoveries_total\{playbook="switchover",outcome="succeeded",origin="drill"\} 1$/m);
    const status = await daemon.status();
    assert.equal(status.recoveries.recent[0]?.playbook, "switchover");
    assert.equal(status.recoveries.recent[0]?.id, data.recoveryId);

    // The next run is armed for next Tuesday, from the due time.
    const next = new Date(2031, 0, 14, 10, 1, 0).getTime();
    await waitUntil("the next drill is armed", () => (timers.length === 2 ? true : undefined));
    assert.equal(ops.drills.list()[0]?.next, next);
    assert.equal(timers[1]?.ms, next - due);
  });

  test("paused, the drill is skipped and says why", async () => {
    await daemon.setPause("test", { forMs: null });
    fakeNow = new Date(2031, 0, 14, 10, 1, 0).getTime();
    timers[1]?.fn();
    const hook = await waitUntil("the skipped drill's notification arrives", () =>
      hooks.find((h) => h["event"] === "drill" && (h["data"] as { outcome: string }).outcome === "skipped"),
    );
    assert.equal(hook["title"], "drill of redis1+redis2 skipped: failoverd is paused");
    assert.equal(hook["severity"], "warning");
    assert.match(await ops.metrics.text(), /^failoverd_drills_total\{pair="redis1\+redis2",outcome="skipped"\} 1$/m);
    await daemon.resume("test", true);
  });
});
