/**
 * The journal as a precondition, on real processes: the state directory is a tiny tmpfs (mounted here; this needs
 * root, as the test machine and CI have) that is filled up.
 *
 * - Full: a primary killed gives no action and one clear error naming the journal and ENOSPC (not "recovery crashed
 *   (a bug)" at every check), failoverd_journal_writable 0, /healthz 503 "journal-unwritable", the status page's
 *   state; once space is freed the failover follows.
 * - One page left: the recovery's first records fit, its first step cannot save the daemon's state and it rolls back
 *   having changed nothing. That arms no cooldown (600 s here): once space is freed the failover follows.
 * - Several records at once (a step's end with the next step's start) that the disk takes only in part: none of them
 *   is left, the journal reads as before; once space is freed they are written whole.
 *
 * Real sandbox on 127.131.x.y.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { closeSync, ftruncateSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, statSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, test } from "node:test";
import type { StatusView } from "../../src/daemon/status.ts";
import { signal, whyNotFree } from "../../src/providers/local/processes.ts";
import { sandboxDown, sandboxUp } from "../../src/providers/local/up.ts";
import { FileJournal, type JournalRecord, JournalWriteError, type RecoverySummary, summarize } from "../../src/recovery/journal.ts";
import { startDaemon, stopDaemon, waitForDaemon } from "../../src/simulate/daemon-process.ts";
import { assertAddressesFree, type TestTopology, testTopology } from "../helpers/sandbox.ts";

const HTTP = { address: "127.131.9.1", port: 9464 };
const base = `http://${HTTP.address}:${HTTP.port}`;

async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const v = await Promise.resolve()
      .then(fn)
      .catch(() => undefined);
    if (v !== undefined) return v;
    await sleep(100);
  }
  throw new Error(`timed out waiting until ${what}`);
}

/** Fills the file system holding `dir` with `filler` until it refuses even one byte. */
function fill(filler: string): void {
  const fd = openSync(filler, "w");
  try {
    for (const size of [65536, 4096, 1]) {
      const chunk = Buffer.alloc(size);
      for (;;) {
        try {
          if (writeSync(fd, chunk) < size) break;
        } catch {
          break;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
}

describe("the state directory on a full disk", { timeout: 300_000 }, () => {
  let tt: TestTopology;
  let state: string;
  let mounted = false;
  let daemon: ChildProcess | undefined;
  before(async () => {
    tt = testTopology({ net: 131, cooldownMs: 600_000 });
    await assertAddressesFree(tt.topology);
    assert.equal(await whyNotFree(HTTP.address, HTTP.port), null);
    state = tt.topology.config.stateDir;
    mkdirSync(state, { recursive: true });
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", state]);
    mounted = true;
  });
  after(async () => {
    if (daemon) await stopDaemon(daemon);
    await sandboxDown(tt.topology);
    if (mounted) execFileSync("umount", [state]);
    tt.cleanup();
  });

  const journal = () => new FileJournal(join(state, "journal.jsonl"));
  const recoveries = async (): Promise<RecoverySummary[]> => summarize(await journal().read());

  async function begin(name: string): Promise<{ log: string; kill: () => void }> {
    for (const f of readdirSync(state)) rmSync(join(state, f), { force: true });
    const sandbox = await sandboxUp(tt.topology);
    const log = join(tt.dir, `${name}.log`);
    daemon = startDaemon(tt.topology, log, {}, ["--http", `${HTTP.address}:${HTTP.port}`]);
    await waitForDaemon(log, daemon);
    const kill = () => {
      for (const p of sandbox.machineOf("redis1")?.processes ?? []) signal(p, "SIGKILL");
    };
    return { log, kill };
  }

  async function end(): Promise<void> {
    if (daemon) await stopDaemon(daemon);
    daemon = undefined;
    await sandboxDown(tt.topology);
  }

  test("several records at once, taken in part by the disk: none is left, the journal reads as before", async () => {
    for (const f of readdirSync(state)) rmSync(join(state, f), { force: true });
    const j = journal();
    const first: JournalRecord[] = [
      { type: "recovery-start", id: "r1", at: 1, playbook: "failed_redis", host: "redis1", diagnosis: "DeadPrimary" },
      { type: "step-start", id: "r1", at: 2, step: "unmonitor", attempt: 1 },
    ];
    await j.appendAll(first);
    const size = statSync(join(state, "journal.jsonl")).size;
    // More than the rest of the journal's last page (which the disk still holds), less than what is free after it.
    const batch: JournalRecord[] = [
      { type: "step-end", id: "r1", at: 3, step: "unmonitor", ok: true, result: { note: "x".repeat(6000) } },
      { type: "step-start", id: "r1", at: 4, step: "fence", attempt: 1 },
    ];
    const filler = join(state, "filler");
    fill(filler);
    try {
      await assert.rejects(j.appendAll(batch), (e: unknown) => e instanceof JournalWriteError && e.code === "ENOSPC");
      assert.equal(statSync(join(state, "journal.jsonl")).size, size, "the part the disk took is cut off again");
      assert.deepEqual(await journal().read(), first);
    } finally {
      unlinkSync(filler);
    }
    await j.appendAll(batch);
    assert.deepEqual(await journal().read(), [...first, ...batch]);
  });

  test("full: no action, one clear error, a metric, /healthz and status; the failover follows once space is freed", async () => {
    const { log, kill } = await begin("full");
    try {
      const filler = join(state, "filler");
      fill(filler);
      kill();
      const error = `cannot write the journal ${join(state, "journal.jsonl")}: ENOSPC: no space left on device`;
      await until("the journal error is logged", () => (readFileSync(log, "utf8").includes(error) ? true : undefined));
      // Many checks of the dead primary later (every 200 ms, down after 3): still one error, no recovery.
      const status = await until("the status shows the journal's state", async () => {
        const s = (await (await fetch(`${base}/status`)).json()) as StatusView;
        return s.journal && s.diagnoses.some((d) => d.decision.kind === "alert" && d.decision.reason.startsWith(`not acting: ${error}`)) ? s : undefined;
      });
      assert.equal(status.journal?.code, "ENOSPC");
      assert.equal(status.journal?.path, join(state, "journal.jsonl"));
      await sleep(3000);
      const text = readFileSync(log, "utf8");
      const errors = text.split("\n").filter((l) => l.includes('"level":"error"'));
      assert.deepEqual(
        errors.map((l) => (JSON.parse(l) as { msg: string }).msg),
        [`${error}: failoverd observes but starts no recovery until it can write its journal`],
        "one error while it lasts (once a minute), and no other",
      );
      assert.doesNotMatch(text, /a bug/);
      assert.doesNotMatch(text, /recovery started/);
      assert.match(await (await fetch(`${base}/metrics`)).text(), /^failoverd_journal_writable 0$/m);
      const health = await fetch(`${base}/healthz`);
      assert.equal(health.status, 503);
      assert.equal(((await health.json()) as { status: string }).status, "journal-unwritable");
      assert.match(await (await fetch(`${base}/`)).text(), /id="journal"/);
      assert.deepEqual(await recoveries(), [], "nothing journaled, not even in part");

      unlinkSync(filler);
      const done = await until("the failover succeeded", async () => {
        const r = await recoveries();
        return r[0]?.outcome === "succeeded" ? r : undefined;
      });
      assert.equal(done.length, 1);
      assert.match(readFileSync(log, "utf8"), /can be written again after \d+ s: failoverd acts again/);
      assert.match(await (await fetch(`${base}/metrics`)).text(), /^failoverd_journal_writable 1$/m);
      await until("/healthz is ok again", async () => ((await fetch(`${base}/healthz`)).status === 200 ? true : undefined));
    } finally {
      await end();
    }
  });

  test("one page left: a recovery that rolled back having changed nothing arms no cooldown", async () => {
    const { log, kill } = await begin("one-page");
    try {
      const filler = join(state, "filler");
      fill(filler);
      // Free exactly one page: the journal's first records fit, the daemon's state file does not.
      const fd = openSync(filler, "r+");
      ftruncateSync(fd, statSync(filler).size - 4096);
      closeSync(fd);
      kill();
      const first = await until("a recovery rolled back", async () => (await recoveries()).find((r) => r.outcome === "rolled-back"));
      assert.match(first.error ?? "", /^unmonitor: .*ENOSPC/);
      assert.deepEqual(
        first.steps.map((s) => s.step),
        ["unmonitor"],
        "it got no further than unmonitor",
      );
      unlinkSync(filler);
      const done = await until("the failover succeeded, well within the 600 s cooldown", async () => (await recoveries()).find((r) => r.outcome === "succeeded"));
      assert.ok(done.startedAt > first.startedAt);
      assert.match(readFileSync(log, "utf8"), /the recovery of pair:redis1\+redis2 changed nothing: no cooldown/);
      assert.doesNotMatch(readFileSync(log, "utf8"), /a bug/);
    } finally {
      await end();
    }
  });
});
