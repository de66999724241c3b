/**
 * The shared holds across an etcd outage of one instance, on a real 3-member etcd (127.184.9.1-3): m1 talks to the
 * first member only, m2 to the other two. The first member stopped (by PID), m1 no longer reaches etcd while the
 * cluster keeps its quorum; m2 pauses, puts a host in maintenance and acknowledges a finding meanwhile, and etcd
 * compacts that history away (so m1's watch cannot resume where it stopped). Once the member is back, m1 holds all
 * of it (its whole read of the store), told as the changes it missed. The holds are wired as the daemon wires them.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Coordination } from "../../src/coordination/index.ts";
import { Controls, followShared } from "../../src/daemon/controls.ts";
import { type DaemonEvents, EventBus } from "../../src/daemon/events.ts";
import { Findings } from "../../src/daemon/findings.ts";
import { DaemonState } from "../../src/daemon/state.ts";
import { createLogger } from "../../src/log.ts";
import type { Decision } from "../../src/recovery/decider.ts";
import { historyOf } from "../../src/recovery/history.ts";
import { EtcdCluster } from "../../src/simulate/etcd-cluster.ts";
import { type TestTopology, testTopology } from "../helpers/sandbox.ts";
import { waitUntil } from "../helpers/wait.ts";

const log = createLogger({ level: "silent" });
const HOUR = 3_600_000;
/** The pause an instance holds (read through a call: an assertion that it was null does not narrow it for good). */
const pauseOf = (m: { state: DaemonState }) => m.state.pause;

describe("shared holds changed while an instance cannot reach etcd", { timeout: 180_000 }, () => {
  let dir: string;
  let etcd: EtcdCluster;
  const topologies: TestTopology[] = [];
  const started: Coordination[] = [];
  const closed: Controls[] = [];
  const instances: { c: Coordination; state: DaemonState; controls: Controls; findings: Findings; paused: DaemonEvents["paused"][] }[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "failoverd-etcd-184-"));
    etcd = new EtcdCluster(184, dir);
    await etcd.start();
  });
  after(async () => {
    for (const c of closed) c.close();
    for (const c of started) await c.lease.release().catch(() => {});
    await etcd.stop();
    for (const t of topologies) t.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  /** An instance talking to `endpoints` only, with the daemon's holds wired to the store as the daemon wires them. */
  async function instance(name: string, endpoints: readonly string[]) {
    const tt = testTopology({ net: 184, extra: `coordination: { endpoints: [${endpoints.join(", ")}], leaseTtlSeconds: 2, instances: 3 }` });
    topologies.push(tt);
    const c = Coordination.fromTopology(tt.topology, { instance: name, log });
    assert.ok(c);
    await c.lease.acquire();
    started.push(c);
    const state = DaemonState.load(join(tt.dir, "daemon.json"), false);
    const events = new EventBus();
    const paused: DaemonEvents["paused"][] = [];
    events.on("paused", (e) => paused.push(e));
    const controls = new Controls({ state, journal: c.journal, events, log, now: Date.now, changed: () => {}, shared: c.peers.controls });
    closed.push(controls);
    const findings = new Findings(events);
    let adopted = false;
    followShared(c.peers.controls, { controls, findings, now: Date.now, ready: () => adopted });
    const held = await c.peers.controls.read();
    controls.adopt(held);
    for (const [key, ack] of held.acks) findings.acknowledgeShared(key, ack, Date.now());
    adopted = true;
    const m = { c, state, controls, findings, paused };
    instances.push(m);
    return m;
  }

  test("a pause, a maintenance and an acknowledgement made through another instance meanwhile hold once etcd answers again", async () => {
    const [e1, e2, e3] = etcd.endpoints;
    const m1 = await instance("m1", [e1!]);
    const m2 = await instance("m2", [e2!, e3!]);
    await waitUntil("m1 reads etcd", async () => m1.c.session.connected() && m1.c.status().observers.length === 2, 20_000);

    await etcd.killMember("e1");
    await waitUntil("m1 knows etcd does not answer", async () => !m1.c.session.connected(), 20_000);
    // The two members left elect a raft leader among themselves if the first one led.
    await etcd.waitHealthy();
    await m2.controls.pause("alice via http 127.184.8.2", { reason: "db upgrade", forMs: HOUR });
    await m2.controls.startMaintenance("redis1", "bob", { reason: "kernel", forMs: HOUR });
    await m2.c.peers.controls.acknowledge(["DeadPrimary:redis2"], "carol", Date.now());
    assert.equal(pauseOf(m1), null, "m1 cannot know yet");
    // etcd forgets the history of what changed meanwhile (as a cluster with auto-compaction does): m1's watch cannot
    // resume where it stopped, etcd cancels it, and only a read of the whole store tells m1 what changed.
    const revision = (await m2.c.session.client.get("/failoverd-health").exec()).header.revision;
    execFileSync("etcdctl", ["--endpoints", [e2, e3].join(","), "compact", revision], { env: { ...process.env, ETCDCTL_API: "3" } });

    etcd.startMember("e1");
    await waitUntil("m1 reads etcd again", async () => m1.c.session.connected(), 60_000);
    await waitUntil("m1 holds the pause and the maintenance", async () => m1.state.pause !== null && m1.state.maintenance.has("redis1"), 30_000);
    assert.equal(pauseOf(m1)?.by, "alice via http 127.184.8.2");
    assert.deepEqual(m1.paused.map((e) => [e.paused, e.by]), [[true, "alice via http 127.184.8.2"]], "told once, as a change");
    const alert: Decision = { kind: "alert", host: "redis2", diagnosis: { name: "DeadPrimary", host: "redis2", targets: ["redis2:9001"], evidence: [] }, reason: "paused" };
    m1.findings.update([alert], Date.now());
    assert.equal(m1.findings.list()[0]?.acknowledged, true, "the acknowledgement made meanwhile holds here too");
  });

  test("a resume through another instance: every instance says who resumed, and the shared journal keeps it", async () => {
    const [m1, m2] = instances;
    assert.ok(m1 && m2 && pauseOf(m2) !== null, "paused by the test before");
    await m2.controls.resume("frank via http 127.184.8.2");
    await waitUntil("m1 resumed", async () => pauseOf(m1) === null, 30_000);
    assert.deepEqual(m1.paused.at(-1), { paused: false, at: m1.paused.at(-1)?.at, by: "frank via http 127.184.8.2" }, "not 'another instance'");
    const controls = historyOf(await m1.c.journal.read()).controls;
    assert.deepEqual(
      controls.map((c) => `${c.action} by ${c.by}`),
      ["resume by frank via http 127.184.8.2", "maintenance by bob", "pause by alice via http 127.184.8.2"],
      "the history any instance reads (newest first)",
    );
  });
});
