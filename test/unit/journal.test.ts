/**
 * The journal: FileJournal's round trip, mode and corruption handling; `summarize` and `unfinished` folding the
 * records into recoveries (completed steps with their results, rollbacks, ends, dry runs).
 */
import assert from "node:assert/strict";
import { appendFileSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import {
  FileJournal,
  JournalCorruptError,
  type JournalRecord,
  MemoryJournal,
  summarize,
  unfinished,
} from "../../src/recovery/journal.ts";

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), "failoverd-journal-"));
  dirs.push(d);
  return d;
}
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const start = (id: string, at = 1000, extra: Partial<Extract<JournalRecord, { type: "recovery-start" }>> = {}): JournalRecord => ({
  type: "recovery-start",
  id,
  at,
  playbook: "failed_redis",
  host: "redis1",
  diagnosis: "DeadPrimary",
  failingSince: at - 600,
  ...extra,
});
const stepStart = (id: string, step: string, at: number, attempt = 1): JournalRecord => ({ type: "step-start", id, at, step, attempt });
const stepOk = (id: string, step: string, at: number, result?: unknown): JournalRecord => ({ type: "step-end", id, at, step, ok: true, result });
const stepFail = (id: string, step: string, at: number, error: string): JournalRecord => ({ type: "step-end", id, at, step, ok: false, error });
const rollback = (id: string, step: string, at: number, ok = true): JournalRecord => ({ type: "rollback", id, at, step, ok, ...(ok ? {} : { error: "refused" }) });
const end = (id: string, at: number, outcome: "succeeded" | "rolled-back" | "failed", error?: string): JournalRecord => ({
  type: "recovery-end",
  id,
  at,
  outcome,
  ...(error ? { error } : {}),
});

/** A recovery that fenced, promoted, launched (on the second attempt) and is still running. */
const RUNNING: JournalRecord[] = [
  start("r1"),
  stepStart("r1", "unmonitor", 1001),
  stepOk("r1", "unmonitor", 1002, { host: "redis1" }),
  stepStart("r1", "fence", 1003),
  stepOk("r1", "fence", 1004, { fencedOn: ["haproxy1", "haproxy2"], skipped: [] }),
  stepStart("r1", "promote", 1005),
  stepOk("r1", "promote", 1006, { primary: "redis2", promoted: [9001, 9002], alreadyPrimary: [] }),
  stepStart("r1", "launch", 1007, 1),
  stepFail("r1", "launch", 1008, "InsufficientInstanceCapacity"),
  stepStart("r1", "launch", 1009, 2),
  stepOk("r1", "launch", 1010, { machineId: "i-new", address: "127.0.1.11", reused: false }),
  stepStart("r1", "replicate", 1011),
];

describe("FileJournal", () => {
  test("append then read returns the same records, in order", async () => {
    const path = join(tmp(), "state", "nested", "journal.jsonl");
    const j = new FileJournal(path);
    for (const r of RUNNING) await j.append(r);
    assert.deepEqual(await j.read(), RUNNING);
    assert.deepEqual(await new FileJournal(path).read(), RUNNING, "a second instance (a restarted daemon) reads the same");
  });

  test("several records appended at once: one write, read back in order and as if appended one by one", async () => {
    const path = join(tmp(), "journal.jsonl");
    const j = new FileJournal(path);
    await j.appendAll(RUNNING.slice(0, 2));
    const size = statSync(path).size;
    await j.appendAll([]);
    assert.equal(statSync(path).size, size, "nothing to append writes nothing");
    for (let i = 2; i < RUNNING.length; i += 2) await j.appendAll(RUNNING.slice(i, i + 2));
    assert.deepEqual(await new FileJournal(path).read(), RUNNING);
    assert.deepEqual(summarize(await j.read()), summarize(RUNNING), "a resume reads the same recovery");
  });

  test("a read is kept while the file is unchanged, and read anew when another writer (or a corruption) changes it", async () => {
    const path = join(tmp(), "journal.jsonl");
    const j = new FileJournal(path);
    await j.append(RUNNING[0]!);
    const first = await j.read();
    first.push(RUNNING[1]!); // a caller's copy: changing it changes nothing in the journal
    assert.deepEqual(await j.read(), [RUNNING[0]]);
    await new FileJournal(path).append(RUNNING[1]!);
    assert.deepEqual(await j.read(), RUNNING.slice(0, 2));
    appendFileSync(path, "{not json\n");
    await assert.rejects(j.read(), JournalCorruptError);
  });

  test("a journal that does not exist yet reads as empty", async () => {
    assert.deepEqual(await new FileJournal(join(tmp(), "none.jsonl")).read(), []);
  });

  test("a new journal is created with mode 0600", async () => {
    const path = join(tmp(), "journal.jsonl");
    await new FileJournal(path).append(start("r1"));
    assert.equal((statSync(path).mode & 0o777).toString(8), "600");
  });

  test("blank lines are skipped", async () => {
    const path = join(tmp(), "journal.jsonl");
    writeFileSync(path, `${JSON.stringify(RUNNING[0])}\n\n   \n${JSON.stringify(RUNNING[1])}\n`);
    assert.deepEqual(await new FileJournal(path).read(), RUNNING.slice(0, 2));
  });

  const corrupt = [
    { name: "garbage on line 3", lines: [JSON.stringify(RUNNING[0]), JSON.stringify(RUNNING[1]), "}{ not json"], line: 3 },
    { name: "a truncated last line (a crash mid-write)", lines: [JSON.stringify(RUNNING[0]), JSON.stringify(RUNNING[1]).slice(0, 25)], line: 2, noNewline: true },
    { name: "valid JSON that is not a record", lines: [JSON.stringify(RUNNING[0]), "42"], line: 2 },
    { name: "an unknown record type", lines: [JSON.stringify({ type: "mystery", id: "r1", at: 1 })], line: 1 },
    { name: "a record without an id", lines: [JSON.stringify(RUNNING[0]), JSON.stringify({ type: "step-start", at: 1, step: "x", attempt: 1 })], line: 2 },
    { name: "a record whose time is not a number", lines: [JSON.stringify({ ...RUNNING[0], at: "yesterday" })], line: 1 },
  ];
  for (const c of corrupt) {
    test(`${c.name}: read() throws JournalCorruptError naming line ${c.line}`, async () => {
      const path = join(tmp(), "journal.jsonl");
      writeFileSync(path, c.lines.join("\n") + (c.noNewline ? "" : "\n"));
      await assert.rejects(new FileJournal(path).read(), (e: unknown) => {
        assert.ok(e instanceof JournalCorruptError, `a JournalCorruptError, not ${String(e)}`);
        assert.match(e.message, new RegExp(`at line ${c.line}\\b`));
        assert.ok(e.message.includes(path), "the message names the file");
        return true;
      });
    });
  }

  test("a record appended after a corrupt line does not hide it", async () => {
    const path = join(tmp(), "journal.jsonl");
    const j = new FileJournal(path);
    await j.append(start("r1"));
    appendFileSync(path, "garbage\n");
    await j.append(stepStart("r1", "unmonitor", 1001));
    await assert.rejects(j.read(), (e: unknown) => e instanceof JournalCorruptError && /at line 2\b/.test(e.message));
  });
});

describe("MemoryJournal", () => {
  test("read returns a copy: appending afterwards does not change it", async () => {
    const j = new MemoryJournal();
    await j.append(start("r1"));
    const first = await j.read();
    await j.append(stepStart("r1", "unmonitor", 1001));
    assert.equal(first.length, 1);
    assert.equal((await j.read()).length, 2);
  });

  test("several records appended at once keep their order", async () => {
    const j = new MemoryJournal();
    await j.appendAll(RUNNING.slice(0, 3));
    await j.append(RUNNING[3]!);
    assert.deepEqual(await j.read(), RUNNING.slice(0, 4));
  });
});

describe("summarize", () => {
  test("a running recovery: its completed steps with their results, and a timeline with one entry per attempt", () => {
    const [s, ...rest] = summarize(RUNNING);
    assert.equal(rest.length, 0);
    assert.ok(s);
    assert.deepEqual(
      { id: s.id, playbook: s.playbook, host: s.host, diagnosis: s.diagnosis, startedAt: s.startedAt, failingSince: s.failingSince, dryRun: s.dryRun },
      { id: "r1", playbook: "failed_redis", host: "redis1", diagnosis: "DeadPrimary", startedAt: 1000, failingSince: 400, dryRun: false },
    );
    assert.equal(s.outcome, undefined);
    assert.equal(s.endedAt, undefined);
    assert.deepEqual(
      [...s.completed.entries()],
      [
        ["unmonitor", { host: "redis1" }],
        ["fence", { fencedOn: ["haproxy1", "haproxy2"], skipped: [] }],
        ["promote", { primary: "redis2", promoted: [9001, 9002], alreadyPrimary: [] }],
        ["launch", { machineId: "i-new", address: "127.0.1.11", reused: false }],
      ],
    );
    assert.deepEqual(s.steps, [
      { step: "unmonitor", startedAt: 1001, endedAt: 1002, ok: true, attempts: 1 },
      { step: "fence", startedAt: 1003, endedAt: 1004, ok: true, attempts: 1 },
      { step: "promote", startedAt: 1005, endedAt: 1006, ok: true, attempts: 1 },
      { step: "launch", startedAt: 1007, endedAt: 1008, ok: false, error: "InsufficientInstanceCapacity", attempts: 1 },
      { step: "launch", startedAt: 1009, endedAt: 1010, ok: true, attempts: 2 },
      { step: "replicate", startedAt: 1011, attempts: 1 },
    ]);
  });

  test("a step started again after a crash (no step-end) is one entry, not two", () => {
    const [s] = summarize([start("r1"), stepStart("r1", "launch", 1001), stepStart("r1", "launch", 2001), stepOk("r1", "launch", 2002, { machineId: "i-1" })]);
    assert.deepEqual(s?.steps, [{ step: "launch", startedAt: 1001, endedAt: 2002, ok: true, attempts: 1 }]);
    assert.deepEqual([...(s?.completed.keys() ?? [])], ["launch"]);
  });

  test("a failed step is not completed", () => {
    const [s] = summarize([start("r1"), stepStart("r1", "fence", 1001), stepFail("r1", "fence", 1002, "refused")]);
    assert.deepEqual([...(s?.completed.keys() ?? [])], []);
  });

  test("a rollback removes the step from the completed ones; a failed rollback does not", () => {
    const [s] = summarize([
      start("r1"),
      stepStart("r1", "unmonitor", 1001),
      stepOk("r1", "unmonitor", 1002, { host: "redis1" }),
      stepStart("r1", "fence", 1003),
      stepOk("r1", "fence", 1004, { fencedOn: [] }),
      stepStart("r1", "promote", 1005),
      stepFail("r1", "promote", 1006, "cannot promote"),
      rollback("r1", "fence", 1007, false),
      rollback("r1", "unmonitor", 1008, true),
      end("r1", 1009, "rolled-back", "promote: cannot promote"),
    ]);
    assert.deepEqual([...(s?.completed.keys() ?? [])], ["fence"]);
    assert.equal(s?.outcome, "rolled-back");
    assert.equal(s?.endedAt, 1009);
    assert.equal(s?.error, "promote: cannot promote");
  });

  test("several recoveries, oldest first; records of an unknown recovery are ignored", () => {
    const out = summarize([
      start("r1", 1000),
      stepStart("ghost", "fence", 1001),
      end("r1", 1002, "succeeded"),
      start("r2", 2000, { host: "haproxy1", playbook: "failed_haproxy", diagnosis: "HaproxyDown" }),
      stepStart("r2", "unmonitor", 2001),
    ]);
    assert.deepEqual(
      out.map((s) => [s.id, s.host, s.outcome ?? null, s.steps.length]),
      [
        ["r1", "redis1", "succeeded", 0],
        ["r2", "haproxy1", null, 1],
      ],
    );
  });

  test("a recovery that ended without an error has no error field", () => {
    const [s] = summarize([start("r1"), end("r1", 1001, "succeeded")]);
    assert.equal(s?.outcome, "succeeded");
    assert.equal("error" in (s ?? {}), false);
  });
});

describe("unfinished", () => {
  const table: { name: string; records: JournalRecord[]; ids: string[] }[] = [
    { name: "no records", records: [], ids: [] },
    { name: "a recovery still running", records: RUNNING, ids: ["r1"] },
    { name: "a recovery started, no step yet", records: [start("r1")], ids: ["r1"] },
    ...(["succeeded", "rolled-back", "failed"] as const).map((outcome) => ({
      name: `a recovery that ended ${outcome}`,
      records: [...RUNNING, end("r1", 2000, outcome)],
      ids: [],
    })),
    { name: "a dry run that never ended", records: [start("d1", 1000, { dryRun: true }), stepStart("d1", "unmonitor", 1001)], ids: [] },
    {
      name: "one ended, one running, one dry run",
      records: [start("r1", 1000), end("r1", 1500, "succeeded"), start("r2", 2000), start("d1", 2001, { dryRun: true })],
      ids: ["r2"],
    },
  ];
  for (const row of table) {
    test(row.name, () => {
      assert.deepEqual(
        unfinished(row.records).map((s) => s.id),
        row.ids,
      );
    });
  }

  test("the unfinished summary carries what a resume needs: the completed steps and their results", () => {
    const [s] = unfinished(RUNNING);
    assert.ok(s);
    assert.equal(s.playbook, "failed_redis");
    assert.deepEqual((s.completed.get("launch") as { address: string }).address, "127.0.1.11");
  });
});
