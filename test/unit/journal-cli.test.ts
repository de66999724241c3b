/**
 * The daemon refuses to act on a corrupt or truncated journal: the real CLI (`failoverd run`, as a child process) on
 * a topology whose state directory holds a bad `journal.jsonl` exits 1 at once with one line naming the journal, the
 * line and the way out, and starts nothing (no check round, no state written, no lease left behind). No sandbox runs:
 * the topology's addresses (127.75.x.y) serve nothing.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { type TestTopology, testTopology } from "../helpers/sandbox.ts";
import { PACKAGE_ROOT } from "../../src/package-root.ts";

const REPO = PACKAGE_ROOT;
/** The run must end well before this: it has nothing to wait for. */
const QUICK_MS = 10_000;

const RECORD_START = JSON.stringify({
  type: "recovery-start",
  id: "r1",
  at: 1_700_000_000_000,
  playbook: "failed_redis",
  host: "redis1",
  diagnosis: "DeadPrimary",
  failingSince: 1_699_999_999_400,
});
const RECORD_STEP = JSON.stringify({ type: "step-start", id: "r1", at: 1_700_000_000_001, step: "unmonitor", attempt: 1 });

const topologies: TestTopology[] = [];
after(() => {
  for (const t of topologies) t.cleanup();
});

interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly elapsedMs: number;
}

/** `failoverd run` on a fresh topology whose journal holds `journal`; returns the run and where things are. */
function runWithJournal(journal: string): { run: Run; stateDir: string; journalPath: string; runDir: string } {
  const tt = testTopology({ net: 75 });
  topologies.push(tt);
  const stateDir = tt.topology.config.stateDir;
  const provider = tt.topology.config.provider;
  assert.equal(provider.kind, "local");
  const runDir = provider.kind === "local" ? provider.runDir : "";
  mkdirSync(stateDir, { recursive: true });
  const journalPath = join(stateDir, "journal.jsonl");
  writeFileSync(journalPath, journal);
  const started = performance.now();
  const r = spawnSync(process.execPath, ["bin/failoverd.js", "run", "--config", tt.path], {
    cwd: REPO,
    encoding: "utf8",
    timeout: 20_000,
    env: { ...process.env, NO_COLOR: "1" },
  });
  const elapsedMs = performance.now() - started;
  assert.equal(r.error, undefined, `could not run the CLI: ${r.error?.message}`);
  assert.equal(r.signal, null, `the daemon was killed by ${r.signal}: it started instead of refusing the journal\nstdout: ${r.stdout}`);
  return { run: { status: r.status, stdout: r.stdout, stderr: r.stderr, elapsedMs }, stateDir, journalPath, runDir };
}

describe("failoverd run: a corrupt journal stops the daemon before it acts", () => {
  const cases: readonly { name: string; journal: string; line: number }[] = [
    { name: "a garbage first line", journal: "this is not a journal record\n", line: 1 },
    { name: "a valid line, then a truncated one (a crash mid-append)", journal: `${RECORD_START}\n${RECORD_STEP.slice(0, 25)}`, line: 2 },
    { name: "two valid lines, a blank one, then JSON that is not a record", journal: `${RECORD_START}\n${RECORD_STEP}\n\n{"type":"bogus","id":"r1","at":1}\n`, line: 4 },
  ];

  for (const c of cases) {
    test(`${c.name}: exit 1, one line naming the journal and line ${c.line} and the way out, nothing started`, () => {
      const { run, stateDir, journalPath, runDir } = runWithJournal(c.journal);
      const detail = `status ${run.status}\nstderr: ${JSON.stringify(run.stderr)}\nstdout: ${JSON.stringify(run.stdout.slice(0, 2000))}`;
      assert.equal(run.status, 1, detail);
      assert.doesNotMatch(run.stderr, /\n {4}at /, `no stack trace\n${detail}`);
      assert.doesNotMatch(run.stderr, /internal error/, detail);
      const lines = run.stderr.split("\n");
      assert.equal(lines.length, 2, `exactly one line on stderr\n${detail}`);
      assert.equal(lines[1], "", detail);
      const line = lines[0] ?? "";
      assert.ok(line.startsWith("failoverd: "), detail);
      assert.ok(line.includes(journalPath), `the line names the journal ${journalPath}\n${detail}`);
      assert.match(line, new RegExp(`\\bline ${c.line}\\b`), `the line names line ${c.line}\n${detail}`);
      assert.match(line, /move the journal aside/, `the line says how to get out\n${detail}`);
      // Nothing was started: it ended at once, logged no start, ran no check round, wrote no state, left no lease.
      assert.ok(run.elapsedMs < QUICK_MS, `the run took ${Math.round(run.elapsedMs)} ms`);
      assert.doesNotMatch(run.stdout, /failoverd started|roles discovered/, detail);
      assert.equal(readFileSync(journalPath, "utf8"), c.journal, "the journal is left exactly as it was");
      assert.deepEqual(readdirSync(stateDir), ["journal.jsonl"], "no lease, daemon state or inventory is left in the state directory");
      assert.equal(existsSync(runDir), false, "no sandbox machine was launched");
    });
  }

});
