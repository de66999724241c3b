/**
 * The journal as a recovery's precondition, without servers: a FileJournal that cannot write says so with the path
 * and the errno (and leaves no half record); the runner starts nothing before its first record is written, waits
 * for the journal between steps; the daemon's WatchedJournal
 * logs a failure once a minute; the RecoveryGate holds and retries recoveries.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { describe, test } from "node:test";
import { WatchedJournal } from "../../src/daemon/journal-health.ts";
import { RecoveryGate } from "../../src/daemon/recovery-gate.ts";
import { createLogger, silentLogger } from "../../src/log.ts";
import { FileJournal, summarize, type JournalRecord, JournalWriteError, MemoryJournal } from "../../src/recovery/journal.ts";
import type { Decision } from "../../src/recovery/decider.ts";
import { failedRedis } from "../../src/recovery/playbooks/failed-redis.ts";
import { Runner } from "../../src/recovery/runner.ts";
import { Inventory } from "../../src/topology/inventory.ts";
import { isWrite, RecordingMonitor, RecordingProviders, testTopology } from "../helpers/recording-providers.ts";

const ENOSPC = () => new JournalWriteError("/state/journal.jsonl", "ENOSPC", "ENOSPC: no space left on device");

/** A journal that refuses the records `refuse` picks (a full disk), with whatever is written with them, and keeps the others. */
class FullJournal extends MemoryJournal {
  constructor(public refuse: (r: JournalRecord) => boolean) {
    super();
  }
  override async appendAll(rs: readonly JournalRecord[]): Promise<void> {
    if (rs.some((r) => this.refuse(r))) throw ENOSPC();
    await super.appendAll(rs);
  }
}

function setup(journal: MemoryJournal, shutdown?: AbortSignal) {
  const topology = testTopology();
  const world = new RecordingProviders(topology);
  world.kill("redis1");
  const runner = new Runner({
    topology,
    inventory: new Inventory(topology),
    providers: world,
    journal,
    monitor: new RecordingMonitor(world),
    log: silentLogger(),
    ...(shutdown ? { shutdown } : {}),
  });
  const events: string[] = [];
  for (const e of ["recovery-start", "step-start", "recovery-end"]) runner.on(e, () => events.push(e));
  return { world, runner, events };
}

describe("FileJournal on a device that is full", () => {
  test("one JournalWriteError naming the path and the errno", async () => {
    const j = new FileJournal("/dev/full");
    const e = await j.append({ type: "step-start", id: "r", at: 1, step: "fence", attempt: 1 }).then(
      () => null,
      (x: unknown) => x,
    );
    assert.ok(e instanceof JournalWriteError, String(e));
    assert.equal(e.message, "cannot write the journal /dev/full: ENOSPC: no space left on device");
    assert.equal(e.code, "ENOSPC");
    assert.equal(e.path, "/dev/full");
  });

  test("several records at once: one JournalWriteError for the write (test/scenario/journal-disk.test.ts: none of it is left)", async () => {
    const j = new FileJournal("/dev/full");
    const records: JournalRecord[] = [
      { type: "step-end", id: "r", at: 1, step: "hold", ok: true },
      { type: "step-start", id: "r", at: 2, step: "promote", attempt: 1 },
    ];
    await assert.rejects(j.appendAll(records), (e: unknown) => e instanceof JournalWriteError && e.code === "ENOSPC");
  });

  test("a journal whose directory cannot be made: the path and the errno", async () => {
    const dir = mkdtempSync(join(tmpdir(), "failoverd-journal-"));
    try {
      writeFileSync(join(dir, "state"), "a file where the state directory should be\n");
      const j = new FileJournal(join(dir, "state", "journal.jsonl"));
      const e = await j.append({ type: "step-start", id: "r", at: 1, step: "fence", attempt: 1 }).then(
        () => null,
        (x: unknown) => x,
      );
      assert.ok(e instanceof JournalWriteError, String(e));
      assert.equal(e.message, `cannot write the journal ${dir}/state/journal.jsonl: ${e.code}: ${e.code === "EEXIST" ? "file already exists" : "not a directory"}`);
      assert.ok(e.code === "EEXIST" || e.code === "ENOTDIR", e.code);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("FileJournal.probe", () => {
  test("resolves where a record could be written, and leaves nothing behind; refuses with the path and errno where not", async () => {
    const dir = mkdtempSync(join(tmpdir(), "failoverd-journal-"));
    try {
      await new FileJournal(join(dir, "journal.jsonl")).probe();
      assert.deepEqual(readdirSync(dir), []);
      writeFileSync(join(dir, "state"), "a file where the state directory should be\n");
      const e = await new FileJournal(join(dir, "state", "journal.jsonl")).probe().then(
        () => null,
        (x: unknown) => x,
      );
      assert.ok(e instanceof JournalWriteError, String(e));
      assert.match(e.message, new RegExp(`^cannot write the journal ${dir}/state/journal\\.jsonl: E[A-Z]+: `));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the runner and a journal that cannot be written", () => {
  test("the first record refused: not started, nothing done, nothing announced, nothing changed", async () => {
    const s = setup(new FullJournal(() => true));
    assert.equal(await s.runner.run(failedRedis("redis1"), { diagnosis: "DeadPrimary" }), "not-started");
    assert.deepEqual(s.world.calls.filter(isWrite), []);
    assert.deepEqual(s.events, []);
  });

  // The promotion's is the first start written on its own: fence's and hold's go ahead with the recovery's start.
  test("a step's start refused for a while: the runner waits, starts the step only once it is journaled, and finishes", async () => {
    let refusals = 3;
    const journal = new FullJournal((r) => r.type === "step-start" && r.step === "promote" && refusals-- > 0);
    const s = setup(journal);
    assert.equal(await s.runner.run(failedRedis("redis1"), { diagnosis: "DeadPrimary" }), "succeeded");
    assert.equal(refusals, -1, "the refused record was tried again until written");
    const starts = journal.records.filter((r) => r.type === "step-start").map((r) => (r.type === "step-start" ? r.step : ""));
    assert.deepEqual(starts, failedRedis("redis1").steps.map((x) => x.name));
  });

  test("a shutdown while waiting for the journal: interrupted, the step never ran", async () => {
    const stop = new AbortController();
    const journal = new FullJournal((r) => r.type === "step-start" && r.step === "promote");
    const s = setup(journal, stop.signal);
    const run = s.runner.run(failedRedis("redis1"), { diagnosis: "DeadPrimary" });
    setTimeout(() => stop.abort(), 700);
    assert.equal(await run, "interrupted");
    assert.ok(!s.world.calls.some((c) => c.startsWith("redis.promote")), "no promotion without its journaled start");
    assert.deepEqual(
      journal.records.map((r) => ("step" in r ? `${r.type} ${r.step}` : r.type)),
      ["recovery-start", "step-start unmonitor", "step-start fence", "step-start hold"],
      "the earlier steps' ends go with the promotion's start, which was refused: the journal holds the recovery open, resumable (they run again)",
    );
    assert.deepEqual(
      summarize(journal.records)[0]?.steps.map((x) => x.step),
      ["unmonitor"],
      "the starts written ahead are not shown as started: they have no end",
    );
  });
});

describe("WatchedJournal", () => {
  test("a failure is logged once, then once a minute while it lasts; its end once", async () => {
    const lines: { level: number; msg: string }[] = [];
    const sink = new Writable({ write: (chunk: Buffer, _e, done) => { lines.push(JSON.parse(chunk.toString()) as { level: number; msg: string }); done(); } });
    const log = createLogger({ level: "info", destination: sink });
    let now = 0;
    const inner = new FullJournal(() => true);
    const j = new WatchedJournal(inner, log, () => now);
    const rec: JournalRecord = { type: "step-start", id: "r", at: 1, step: "fence", attempt: 1 };
    for (let i = 0; i < 50; i++) {
      now += 100;
      await assert.rejects(j.append(rec), JournalWriteError);
    }
    assert.equal(j.fault?.code, "ENOSPC");
    assert.equal(j.fault?.since, 100);
    now = 60_100;
    await assert.rejects(j.append(rec), JournalWriteError);
    inner.refuse = () => false;
    await j.append(rec);
    await j.append(rec);
    assert.equal(j.fault, null);
    assert.deepEqual(
      lines.map((l) => l.msg),
      [
        "cannot write the journal /state/journal.jsonl: ENOSPC: no space left on device: failoverd observes but starts no recovery until it can write its journal",
        "cannot write the journal /state/journal.jsonl: ENOSPC: no space left on device (for 60 s): failoverd observes but starts no recovery until it can write its journal",
        "the journal /state/journal.jsonl can be written again after 60 s: failoverd acts again",
      ],
    );
  });
});

describe("WatchedJournal probing", () => {
  test("the fault ends when the journal can be written again, even with nothing to append", async () => {
    let full = true;
    const inner = new FullJournal(() => full);
    Object.assign(inner, { probe: async () => (full ? Promise.reject(ENOSPC()) : undefined) });
    const j = new WatchedJournal(inner, silentLogger(), Date.now, 20);
    try {
      await assert.rejects(j.append({ type: "step-start", id: "r", at: 1, step: "fence", attempt: 1 }), JournalWriteError);
      await sleep(100);
      assert.notEqual(j.fault, null, "still full: the probes fail");
      full = false;
      const deadline = Date.now() + 10_000;
      while (j.fault !== null && Date.now() < deadline) await sleep(20);
      assert.equal(j.fault, null);
      assert.equal(inner.records.length, 0, "nothing was appended to find it out");
    } finally {
      j.close();
    }
  });
});

describe("RecoveryGate", () => {
  const diagnosis = { name: "DeadPrimary" as const, host: "redis1", targets: ["redis1:9001"], evidence: [] };
  const recover: Decision = { kind: "recover", playbook: "failed_redis", host: "redis1", group: "pair:redis1+redis2", diagnosis };
  const fault = { path: "/state/journal.jsonl", code: "ENOSPC", error: "cannot write the journal /state/journal.jsonl: ENOSPC: no space left on device", since: 0 };
  const gate = () => new RecoveryGate({ journalRetryMs: () => 200, retryBaseMs: () => 1000, retryMaxMs: () => 4000 });

  test("nothing holds: the decision passes and is tried", () => {
    const g = gate().gate(recover, null, 0);
    assert.equal(g.shown, recover);
    assert.equal(g.attempt, recover);
  });

  test("the journal cannot be written: shown as an alert with the reason; tried once per retry period", () => {
    const g = gate();
    const tries = [0, 50, 199, 200, 350, 400].map((t) => g.gate(recover, fault, t));
    assert.deepEqual(
      tries.map((x) => x.attempt !== null),
      [true, false, false, true, false, true],
    );
    for (const x of tries) {
      assert.equal(x.shown.kind, "alert");
      if (x.shown.kind === "alert") assert.equal(x.shown.reason, `not acting: ${fault.error}; failoverd acts as soon as it can write its journal`);
    }
  });

  test("a recovery that changed nothing: no cooldown, a growing retry delay, forgotten once the fault is gone", () => {
    const g = gate();
    assert.deepEqual([g.ended(recover.group, 0, true, "unmonitor: ENOSPC"), g.ended(recover.group, 0, true, "x"), g.ended(recover.group, 0, true, "x"), g.ended(recover.group, 0, true, "x")], [1000, 2000, 4000, 4000]);
    const held = g.gate(recover, null, 3000);
    assert.equal(held.attempt, null);
    assert.equal(held.shown.kind === "alert" && held.shown.reason, "the last recovery of pair:redis1+redis2 changed nothing (x); trying again in 1 s");
    assert.equal(g.gate(recover, null, 4000).attempt, recover);
    g.sweep([], new Set());
    assert.equal(g.gate(recover, null, 0).shown, recover, "the fault went away: the hold is forgotten");
    g.ended(recover.group, 0, true, "x");
    assert.equal(g.ended(recover.group, 0, false, undefined), null, "a recovery that changed something ends the hold");
    assert.equal(g.gate(recover, null, 0).shown, recover);
  });
});
