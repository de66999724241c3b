/**
 * The coordination room on a real 3-member etcd (127.180.9.1-3): one leader; a fenced journal a follower or a deposed
 * leader cannot write; verdicts published on change only, gone with their instance's lease; takeover.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, test } from "node:test";
import { Registry } from "prom-client";
import { Coordination } from "../../src/coordination/index.ts";
import { createLogger } from "../../src/log.ts";
import type { JournalRecord } from "../../src/recovery/journal.ts";
import { LeaseLostError } from "../../src/recovery/lease.ts";
import { EtcdCluster } from "../../src/simulate/etcd-cluster.ts";
import { testTopology, type TestTopology } from "../helpers/sandbox.ts";

const log = createLogger({ level: "silent" });

async function until(what: string, fn: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const start = Date.now();
  while (Date.now() - start < ms) {
    if (await fn()) return;
    await sleep(50);
  }
  assert.fail(`timed out waiting until ${what}`);
}

describe("coordination through a real 3-member etcd", { timeout: 120_000 }, () => {
  let dir: string;
  let etcd: EtcdCluster;
  let tt: TestTopology;
  const started: Coordination[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "failoverd-etcd-180-"));
    etcd = new EtcdCluster(180, dir);
    await etcd.start();
    tt = testTopology({
      net: 180,
      extra: `coordination: { endpoints: [${etcd.endpoints.join(", ")}], leaseTtlSeconds: 2, instances: 3 }`,
    });
  });
  after(async () => {
    for (const c of started) await c.lease.release().catch(() => {});
    await etcd.stop();
    tt.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  async function instance(name: string): Promise<Coordination> {
    const c = Coordination.fromTopology(tt.topology, { instance: name, log });
    assert.ok(c);
    await c.lease.acquire();
    started.push(c);
    return c;
  }

  test("one leader; the journal is fenced; verdicts are published on change; a dead leader's successor takes over", async () => {
    const [m1, m2, m3] = [await instance("m1"), await instance("m2"), await instance("m3")];
    const all = [m1, m2, m3];
    await until("every instance knows the same leader", () => all.every((c) => c.status().leader === "m1"));
    assert.equal(all.filter((c) => c.lease.isHeld()).length, 1, "exactly one instance holds the lease");
    assert.ok(m1.lease.isHeld(), "the first candidate leads");

    // The journal: the leader writes, a follower is refused by etcd's transaction, not only by its own belief.
    const rec = (id: string, at: number) => ({ type: "recovery-start" as const, id, at, playbook: "failed_redis", host: "redis1", diagnosis: "DeadPrimary" });
    await m1.journal.append(rec("r1", 1));
    await assert.rejects(m2.journal.append(rec("r2", 2)), LeaseLostError);
    assert.deepEqual((await m3.journal.read()).map((r) => r.id), ["r1"]);

    // Verdicts: a change is written once; the same status again writes nothing.
    const writes = m2.session.writes;
    m2.session.publish("redis1:9001", { status: "down", kind: "refused", since: 10 });
    m2.session.publish("redis1:9001", { status: "down", kind: "refused", since: 11 });
    await until("m1 sees m2's verdict", () => m1.session.verdicts().get("m2")?.get("redis1:9001")?.status === "down");
    assert.equal(m2.session.writes - writes, 1, "one write for one change");
    await until("every instance is an observer", () => m1.status().observers.join() === "m1,m2,m3");
    // What operators see: /status's instances view and the metrics.
    const view = m1.peers.view();
    assert.equal(view.leader, "m1");
    assert.equal(view.acting, true);
    assert.equal(view.quorum, 2);
    assert.deepEqual(view.verdicts, { m2: { "redis1:9001": { status: "down", kind: "refused", since: 10 } } });
    const registry = new Registry();
    m1.registerMetrics(registry);
    const text = await registry.metrics();
    assert.match(text, /^failoverd_leader 1$/m);
    assert.match(text, /^failoverd_observers 3$/m);
    assert.match(text, /^failoverd_quorum 1$/m);
    // The counters follow the session's running totals.
    const counter = (t: string, name: string) => Number(new RegExp(`^${name} (\\d+)$`, "m").exec(t)?.[1]);
    const [w0, c0] = [m1.session.writes, m1.session.leaderChanges];
    const again = await registry.metrics();
    const [w1, c1] = [m1.session.writes, m1.session.leaderChanges];
    assert.ok(w0 > 0);
    const counted = counter(again, "failoverd_etcd_writes_total");
    assert.ok(counted >= w0 && counted <= w1, `failoverd_etcd_writes_total ${counted}, the session's ${w0}..${w1}`);
    const seen = counter(again, "failoverd_leader_changes_total");
    assert.ok(seen >= c0 && seen <= c1, `failoverd_leader_changes_total ${seen}, the session's ${c0}..${c1}`);
    const r2 = new Registry();
    m2.registerMetrics(r2);
    assert.match(await r2.metrics(), /^failoverd_leader 0$/m);
    await until("every instance is an observer", () => m1.status().observers.join() === "m1,m2,m3");

    // A deposed leader: its lease revoked behind its back (as etcd does when it expires). Its own deadline may not
    // have passed yet, but etcd refuses its journal record: the fencing token is the election key's revision.
    const leaseHex = BigInt((m1.session as unknown as { leaseId: string }).leaseId).toString(16);
    execFileSync("etcdctl", ["--endpoints", etcd.endpoints.join(","), "lease", "revoke", leaseHex], { env: { ...process.env, ETCDCTL_API: "3" } });
    await assert.rejects(m1.journal.append(rec("r3", 3)), LeaseLostError);
    await until("m2 leads after m1's lease is gone", () => m2.lease.isHeld() && m3.status().leader === "m2");
    // A later scrape adds what the totals grew by since the first.
    const before = m2.session.leaderChanges;
    const later = counter(await r2.metrics(), "failoverd_leader_changes_total");
    assert.ok(before > 0 && later >= before && later <= m2.session.leaderChanges, `failoverd_leader_changes_total ${later}, the session's ${before}..`);
    // It learns at its next keep-alive (a third of the TTL) or at its own deadline, whichever comes first.
    await until("the deposed leader knows it no longer leads", () => !m1.lease.isHeld());
    await m2.journal.append(rec("r4", 4));
    assert.deepEqual((await m3.journal.read()).map((r) => r.id), ["r1", "r4"]);

    // Several records at once (the runner writes a step's end with the next step's start): one fenced transaction,
    // read back in their order, even when their times go backwards (a clock stepped back); a follower writes none.
    const batch: JournalRecord[] = [
      { type: "step-start", id: "r4", at: 9, step: "unmonitor", attempt: 1 },
      { type: "step-end", id: "r4", at: 8, step: "unmonitor", ok: true },
      { type: "step-start", id: "r4", at: 7, step: "fence", attempt: 1 },
    ];
    const txns = m2.session.writes;
    await m2.journal.appendAll(batch);
    assert.equal(m2.session.writes - txns, 1, "one transaction");
    await assert.rejects(m3.journal.appendAll([{ type: "step-end", id: "r4", at: 10, step: "fence", ok: true }, rec("r5", 11)]), LeaseLostError);
    await assert.rejects(m2.journal.appendAll([batch[0]!, { type: "control", id: "c1", at: 12, action: "pause", by: "x" }]), /journaled alone/);
    assert.deepEqual(
      (await m1.journal.read()).map((r) => `${r.id} ${r.type}${"step" in r ? ` ${r.step}` : ""}`),
      ["r1 recovery-start", "r4 recovery-start", "r4 step-start unmonitor", "r4 step-end unmonitor", "r4 step-start fence"],
    );

    // An instance that stops: its verdicts disappear with its lease.
    await m2.lease.release();
    await until("m2's verdicts are gone", () => !m3.session.verdicts().has("m2"));
    await until("a leader again after m2 resigned", () => m3.lease.isHeld() || m1.lease.isHeld());
  });

  test("the watch lives as long as the session: no full read while etcd answers, and changes arrive through it", async () => {
    const [a, b] = [await instance("w1"), await instance("w2")];
    // Every full read of the prefix ends with a `controls` event; one follows whenever the watch's stream broke.
    let fullReads = 0;
    b.session.on("controls", () => fullReads++);
    // Four of the calls' deadline (a TTL of 2 s: 1 s): a deadline on the watch's stream cut it, and so read everything
    // again, every second.
    await sleep(4_000);
    assert.equal(fullReads, 0, "the watch was cut and the whole prefix read again");
    a.session.publish("redis1:9002", { status: "down", kind: "reset", since: 20 });
    await until("w2 sees w1's verdict through the watch", () => b.session.verdicts().get("w1")?.get("redis1:9002")?.status === "down");
    assert.equal(fullReads, 0, "the verdict came by the watch, not by a full read");

    // Crash evidence is written when it starts and when it ends, not again when its kind changes.
    const seen = () => b.session.verdicts().get("w1")?.get("redis2:9001");
    a.session.publish("redis2:9001", { status: "up", since: 30 });
    await until("w2 sees w1's up verdict", () => seen()?.status === "up");
    const w0 = a.session.writes;
    a.session.publishFailing("redis2:9001", "reset");
    await until("w2 sees the crash evidence", () => seen()?.failing === "reset");
    a.session.publishFailing("redis2:9001", "refused");
    // A marker written after it: had the change of kind been written, it would have gone with the marker or before.
    a.session.publish("redis2:9002", { status: "up", since: 31 });
    await until("w2 sees the marker", () => b.session.verdicts().get("w1")?.get("redis2:9002")?.status === "up");
    assert.equal(seen()?.failing, "reset", "the change of kind (reset -> refused) was written");
    a.session.publishFailing("redis2:9001", undefined);
    await until("w2 sees the crash evidence end", () => seen() !== undefined && seen()?.failing === undefined);
    assert.equal(a.session.writes - w0, 3, "one write when the evidence began, one for the marker, one when it ended");
  });
});

