/**
 * The operator's controls without servers: maintenance in the decider, the forced-failover check, the persisted pause
 * and maintenance with their expiry, the history read from a journal, and the durations operators type.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, describe, test } from "node:test";
import type { Diagnosis, TargetHealth } from "../../src/checks/detector.ts";
import type { Observation } from "../../src/checks/observation.ts";
import { Controls } from "../../src/daemon/controls.ts";
import { type DaemonEvents, EventBus } from "../../src/daemon/events.ts";
import { checkFailover, type FailoverInput, planSwitchover } from "../../src/daemon/intents.ts";
import { DaemonState } from "../../src/daemon/state.ts";
import { parseDuration, parseSince } from "../../src/duration.ts";
import { silentLogger } from "../../src/log.ts";
import { decide } from "../../src/recovery/decider.ts";
import { describeDataLoss, historyOf, triggeredBy } from "../../src/recovery/history.ts";
import { type JournalRecord, MemoryJournal } from "../../src/recovery/journal.ts";
import { testTopology } from "../helpers/recording-providers.ts";

const NOW = Date.UTC(2026, 11, 2, 3, 0, 0);
const HOUR = 3_600_000;
const t = testTopology();

const dead = (name: Diagnosis["name"], host: string): Diagnosis => ({ name, host, targets: [host], evidence: [`${host} is down (test)`] });

describe("maintenance in the decider", () => {
  const decideWith = (d: Diagnosis, maintenance: Map<string, { until: number; reason?: string }>) =>
    decide({ topology: t, diagnoses: [d], targetsTotal: 6, targetsDown: 1, targetsConfirmed: 1, state: { paused: false, active: new Set(), lastEnded: new Map(), maintenance }, now: NOW });
  const cases: [string, Diagnosis, string | null, number, RegExp | null][] = [
    ["the host itself", dead("DeadPrimary", "redis1"), "redis1", NOW + HOUR, /^redis1 is in maintenance until 2026-12-02T04:00:00Z \(kernel\); not acting on pair:redis1\+redis2$/],
    ["its twin: the recovery would promote it", dead("DeadReplica", "redis2"), "redis1", NOW + HOUR, /^redis1 is in maintenance/],
    ["an HAProxy of the tier", dead("HaproxyDown", "haproxy2"), "haproxy1", NOW + HOUR, /^haproxy1 is in maintenance .*haproxy-tier$/],
    ["another group is not held", dead("HaproxyDown", "haproxy1"), "redis1", NOW + HOUR, null],
    ["an expired window holds nothing", dead("DeadPrimary", "redis1"), "redis1", NOW, null],
    ["no maintenance", dead("DeadPrimary", "redis1"), null, 0, null],
  ];
  for (const [name, d, host, until, alert] of cases) {
    test(name, () => {
      const m = new Map(host ? [[host, { until, reason: "kernel" }]] : []);
      const [decision] = decideWith(d, m);
      if (alert === null) assert.equal(decision?.kind, "recover");
      else {
        assert.equal(decision?.kind, "alert");
        assert.match(decision?.kind === "alert" ? decision.reason : "", alert);
      }
    });
  }

  test("a switchover of a pair in maintenance is refused", () => {
    const up = () => "up" as const;
    const roles = new Map<string, "primary" | "replica">([
      ["redis1:9001", "primary"],
      ["redis1:9002", "primary"],
      ["redis2:9001", "replica"],
      ["redis2:9002", "replica"],
    ]);
    const base = { topology: t, request: { to: "redis2" }, lastRoles: roles, statusOf: up, unmonitored: new Set<string>(), active: new Set<string>(), now: NOW };
    assert.deepEqual(planSwitchover(base), { to: "redis2", from: "redis1", group: "pair:redis1+redis2" });
    const held = planSwitchover({ ...base, maintenance: new Map([["redis2", { until: NOW + 1000 }]]) });
    assert.match("refused" in held ? held.refused : "", /^redis2 is in maintenance until/);
  });
});

describe("checkFailover", () => {
  const obs = (target: string, ok: boolean, role?: "primary" | "replica", offset?: number): Observation => {
    const [host = "", port] = target.split(":");
    return port
      ? { type: "redis", target, host, port: Number(port), address: "127.0.0.1", at: NOW, ok, latencyMs: 1, ...(role ? { role } : {}), ...(offset !== undefined ? { offset } : {}) }
      : { type: "haproxy", target, host, role: "haproxy", address: "127.0.0.1", at: NOW, ok, latencyMs: 1, closedFrontends: [], servers: [] };
  };
  const health = (entries: [string, boolean, ("primary" | "replica")?, number?][]) =>
    new Map<string, TargetHealth>(
      entries.map(([target, ok, role, offset]) => [target, { target, status: ok ? "up" : "down", failures: ok ? 0 : 3, successes: ok ? 3 : 0, since: 0, last: obs(target, ok, role, offset) }]),
    );
  const healthy = () =>
    health([
      ["redis1:9001", true, "primary", 1000],
      ["redis1:9002", true, "primary", 500],
      ["redis2:9001", true, "replica", 900],
      ["redis2:9002", true, "replica", 500],
      ["haproxy1", true],
      ["haproxy2", true],
    ]);
  const roles = new Map<string, "primary" | "replica">([
    ["redis1:9001", "primary"],
    ["redis1:9002", "primary"],
    ["redis2:9001", "replica"],
    ["redis2:9002", "replica"],
  ]);
  const input = (o: Partial<FailoverInput> = {}): FailoverInput => ({
    topology: t,
    host: "redis1",
    health: healthy(),
    lastRoles: roles,
    unmonitored: new Set(),
    active: new Set(),
    maintenance: new Map(),
    now: NOW,
    ...o,
  });

  test("a healthy primary: failed_redis, with the loss it risks and the lossless alternative", () => {
    const r = checkFailover(input());
    assert.ok(!("refused" in r));
    assert.deepEqual([r.playbook, r.host, r.group], ["failed_redis", "redis1", "pair:redis1+redis2"]);
    assert.match(r.warnings[0] ?? "", /redis1 answers and is primary on 9001, 9002: .*\(redis2 was 100 bytes behind at the last check\); 'failoverd switchover --to redis2'/);
  });

  test("an HAProxy: failed_haproxy", () => {
    const r = checkFailover(input({ host: "haproxy2" }));
    assert.ok(!("refused" in r));
    assert.equal(r.playbook, "failed_haproxy");
  });

  const refusals: [string, Partial<FailoverInput>, RegExp][] = [
    ["an unknown host", { host: "nope" }, /^unknown host 'nope'/],
    ["an app host", { host: "app" }, /app host/],
    ["a recovery of the pair under way", { active: new Set(["pair:redis1+redis2"]) }, /under way/],
    ["the twin in maintenance", { maintenance: new Map([["redis2", { until: NOW + 1 }]]) }, /^redis2 is in maintenance .*end the maintenance first/],
    ["the twin down: nothing to promote", { health: health([["redis1:9001", true, "primary"], ["redis1:9002", true, "primary"], ["redis2:9001", false], ["redis2:9002", true]]) }, /^redis2:9001 is down: the failover of redis1 needs its twin up/],
    ["no other HAProxy up", { host: "haproxy1", health: health([["haproxy1", true], ["haproxy2", false]]) }, /no other HAProxy is up/],
    ["the host already under recovery", { unmonitored: new Set(["redis1"]) }, /under recovery/],
  ];
  for (const [name, o, why] of refusals) {
    test(`refused: ${name}`, () => {
      const r = checkFailover(input(o));
      assert.match("refused" in r ? r.refused : `not refused: ${JSON.stringify(r)}`, why);
    });
  }

  test("refused when recovery is disabled in the config", () => {
    const r = checkFailover(input({ topology: testTopology({ enabled: false }) }));
    assert.match("refused" in r ? r.refused : "", /recovery\.enabled: false/);
  });
});

describe("pause and maintenance: persisted, journaled, ended by themselves", () => {
  const dir = mkdtempSync(join(tmpdir(), "failoverd-controls-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("a state file from before issue 14 (paused: true) loads as a pause until resumed", () => {
    const file = join(dir, "old.json");
    const s = DaemonState.load(file, false);
    s.setMonitored("redis1", true); // writes the file
    const raw = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
    assert.equal(raw["paused"], false);
    const old = join(dir, "old2.json");
    writeFileSync(old, JSON.stringify({ unmonitored: [], paused: true, lastEnded: {} }));
    const loaded = DaemonState.load(old, false);
    assert.equal(loaded.isPaused(NOW), true);
    assert.equal(loaded.pause?.until, undefined);
  });

  test("the pause and maintenance survive a reload of the file; expiry ends them and says what ended", () => {
    const file = join(dir, "daemon.json");
    const s = DaemonState.load(file, false);
    s.setPause({ since: NOW, by: "alice", reason: "db upgrade", until: NOW + HOUR });
    s.setMaintenance("redis1", { since: NOW, by: "bob", reason: "kernel", until: NOW + 2 * HOUR });
    const again = DaemonState.load(file, false);
    assert.deepEqual(again.pause, { since: NOW, by: "alice", reason: "db upgrade", until: NOW + HOUR });
    assert.deepEqual([...again.maintenanceAt(NOW)], [["redis1", { since: NOW, by: "bob", reason: "kernel", until: NOW + 2 * HOUR }]]);
    assert.equal(again.nextExpiry(), NOW + HOUR);
    assert.equal(again.isPaused(NOW + HOUR - 1), true);
    assert.equal(again.isPaused(NOW + HOUR), false, "past its expiry a pause no longer holds, even before expire() runs");
    const ended = again.expire(NOW + HOUR);
    assert.equal(ended.pause?.by, "alice");
    assert.deepEqual(ended.maintenance, []);
    assert.equal(again.nextExpiry(), NOW + 2 * HOUR);
    assert.deepEqual(again.expire(NOW + 2 * HOUR).maintenance.map(([h]) => h), ["redis1"]);
    const last = DaemonState.load(file, false);
    assert.equal(last.pause, null);
    assert.equal(last.maintenance.size, 0);
  });

  test("Controls journal who and why, tell the bus, and end an expired pause by their timer", async () => {
    const state = DaemonState.load(join(dir, "timer.json"), false);
    const journal = new MemoryJournal();
    const bus = new EventBus();
    const paused: DaemonEvents["paused"][] = [];
    const maint: DaemonEvents["maintenance"][] = [];
    bus.on("paused", (e) => paused.push(e));
    bus.on("maintenance", (e) => maint.push(e));
    let changed = 0;
    const c = new Controls({ state, journal, events: bus, log: silentLogger(), now: Date.now, changed: () => changed++ });
    try {
      const hold = await c.pause("alice via http 127.0.0.1", { reason: "db upgrade", forMs: 150 });
      assert.equal(state.isPaused(Date.now()), true);
      assert.equal(hold.reason, "db upgrade");
      await c.startMaintenance("redis2", "bob", { reason: "disk", forMs: HOUR });
      const deadline = Date.now() + 10_000;
      while (state.pause !== null && Date.now() < deadline) await sleep(20);
      assert.equal(state.pause, null, "the pause ended by itself");
      assert.deepEqual(
        paused.map((e) => [e.paused, e.by, e.reason ?? null]),
        [
          [true, "alice via http 127.0.0.1", "db upgrade"],
          [false, "failoverd", null],
        ],
      );
      assert.ok(changed >= 1, "the daemon was asked to evaluate again");
      assert.ok(await c.endMaintenance("redis2", "carol"));
      assert.equal(await c.endMaintenance("redis2", "carol"), null);
      assert.deepEqual(
        maint.map((e) => [e.host, e.active, e.by]),
        [
          ["redis2", true, "bob"],
          ["redis2", false, "carol"],
        ],
      );
      const controls = journal.records.filter((r) => r.type === "control");
      assert.deepEqual(
        controls.map((r) => (r.type === "control" ? [r.action, r.by, r.host ?? null, r.reason ?? null] : [])),
        [
          ["pause", "alice via http 127.0.0.1", null, "db upgrade"],
          ["maintenance", "bob", "redis2", "disk"],
          ["pause-expired", "failoverd", null, "db upgrade"],
          ["maintenance-end", "carol", "redis2", null],
        ],
      );
    } finally {
      c.close();
    }
  });
});

describe("history from the journal", () => {
  const records: JournalRecord[] = [
    { type: "control", id: "c1", at: NOW - 10_000, action: "pause", by: "alice", reason: "upgrade", until: NOW + HOUR },
    { type: "recovery-start", id: "r1", at: NOW, playbook: "failed_redis", host: "redis1", diagnosis: "DeadPrimary", failingSince: NOW - 300 },
    { type: "step-start", id: "r1", at: NOW, step: "fence", attempt: 1 },
    { type: "step-end", id: "r1", at: NOW + 12, step: "fence", ok: true },
    { type: "step-start", id: "r1", at: NOW + 12, step: "promote", attempt: 1 },
    { type: "step-end", id: "r1", at: NOW + 40, step: "promote", ok: true, result: { primary: "redis2", dataLoss: { bytes: 0, seconds: 0 } } },
    { type: "recovery-end", id: "r1", at: NOW + 50, outcome: "succeeded" },
    { type: "recovery-start", id: "r2", at: NOW + HOUR, playbook: "failed_redis", host: "redis2", diagnosis: "forced failover requested by bob", origin: "operator", by: "bob via http 127.0.0.1", reason: "bad disk" },
    { type: "step-start", id: "r2", at: NOW + HOUR, step: "fence", attempt: 1 },
    { type: "step-end", id: "r2", at: NOW + HOUR + 5, step: "fence", ok: false, error: "boom" },
    { type: "rollback", id: "r2", at: NOW + HOUR + 6, step: "fence", ok: true },
    { type: "recovery-end", id: "r2", at: NOW + HOUR + 7, outcome: "rolled-back", error: "fence: boom" },
  ];

  test("each recovery, newest first: diagnosis, who, steps with durations, outcome, data loss", () => {
    const h = historyOf(records);
    assert.deepEqual(
      h.recoveries.map((r) => [r.id, r.outcome, r.durationMs, triggeredBy(r), r.reason ?? null]),
      [
        ["r2", "rolled-back", 7, "bob via http 127.0.0.1", "bad disk"],
        ["r1", "succeeded", 50, "failoverd (DeadPrimary)", null],
      ],
    );
    const r1 = h.recoveries[1]!;
    assert.deepEqual(
      r1.steps.map((s) => [s.step, s.durationMs, s.ok]),
      [
        ["fence", 12, true],
        ["promote", 28, true],
      ],
    );
    assert.deepEqual(r1.dataLoss, { bytes: 0, seconds: 0 });
    assert.equal(describeDataLoss(r1.dataLoss), "bytes 0, seconds 0");
    const promoted = [
      { port: 9001, candidate: "redis2:9001", estimate: { bytes: 0 }, text: "redis2:9001: nothing lost (in sync)" },
      { port: 9002, candidate: "redis2:9002", estimate: null, text: "redis2:9002: loss not estimated (no reading)" },
    ];
    assert.equal(describeDataLoss(promoted), "redis2:9001: nothing lost (in sync); redis2:9002: loss not estimated (no reading)");
    assert.equal(h.recoveries[0]?.dataLoss, undefined, "no estimate journaled, none shown");
    assert.deepEqual(h.controls, [{ at: NOW - 10_000, action: "pause", by: "alice", reason: "upgrade", until: NOW + HOUR }]);
  });

  test("--since keeps what started or ended after it", () => {
    const h = historyOf(records, NOW + 1000);
    assert.deepEqual(
      h.recoveries.map((r) => r.id),
      ["r2"],
    );
    assert.deepEqual(h.controls, []);
  });
});

describe("durations", () => {
  test("a number and a unit; bare numbers, negatives and words are refused", () => {
    assert.equal(parseDuration("2h"), 2 * HOUR);
    assert.equal(parseDuration("30m"), 1_800_000);
    assert.equal(parseDuration("1.5h"), 1.5 * HOUR);
    assert.equal(parseDuration("7d"), 7 * 24 * HOUR);
    for (const bad of ["2", "-2h", "0s", "soon", ""]) assert.match(JSON.stringify(parseDuration(bad)), /is not a duration/, bad);
  });

  test("since: a duration back from now, or a date", () => {
    assert.equal(parseSince("2h", NOW), NOW - 2 * HOUR);
    assert.equal(parseSince("2026-12-02T01:00:00Z", NOW), NOW - 2 * HOUR);
    assert.match(JSON.stringify(parseSince("yesterday", NOW)), /neither a duration/);
  });
});
