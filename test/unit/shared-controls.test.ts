/**
 * Several instances, without servers: the holds shared through a store (two Controls on one in-memory store that
 * behaves as the etcd one does: whole values per key, a compare-and-delete, every write told to every reader), the
 * acknowledgements shared between Findings, the cooldowns a new leader reads back from the journal, and the HTTP API
 * handing a follower's switchover to the leader's API (real HTTP servers on 127.231.0.1, daemons stubbed).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, describe, test } from "node:test";
import type { Diagnosis } from "../../src/checks/detector.ts";
import { Controls, followShared } from "../../src/daemon/controls.ts";
import { type DaemonEvents, EventBus } from "../../src/daemon/events.ts";
import { Findings } from "../../src/daemon/findings.ts";
import type { SharedChange, SharedControls, SharedHolds } from "../../src/daemon/peers.ts";
import { DaemonState, type Hold, type Maintenance } from "../../src/daemon/state.ts";
import { silentLogger } from "../../src/log.ts";
import { type ApiDaemon, HttpApi } from "../../src/ops/http.ts";
import { cooldownKeysOf, type Decision } from "../../src/recovery/decider.ts";
import { MemoryJournal } from "../../src/recovery/journal.ts";
import { testTopology } from "../helpers/recording-providers.ts";

const HOUR = 3_600_000;
const t = testTopology();

/** The store's rules in memory: one JSON value per key, compare-and-delete on the value, changes told asynchronously. */
class MemoryStore {
  readonly values = new Map<string, string>();
  private readonly readers: ((key: string, value: string | null) => void)[] = [];
  private readonly resyncs: (() => void)[] = [];
  /** Every reader reads the whole store again (as after etcd did not answer). */
  resync(): void {
    for (const r of this.resyncs) r();
  }
  write(key: string, value: string | null): void {
    if (value === null) this.values.delete(key);
    else this.values.set(key, value);
    for (const r of this.readers) queueMicrotask(() => r(key, value));
  }
  reader(): SharedControls {
    const listeners: ((c: SharedChange) => void)[] = [];
    const parse = (key: string, value: string | null): SharedChange | null => {
      const v = value === null ? null : (JSON.parse(value) as { ended?: { by: string } } | null);
      // An ended hold keeps who ended it, as in etcd.
      const by = v?.ended?.by;
      const hold = v?.ended ? null : (v as never);
      if (key === "pause") return { kind: "pause", hold, by };
      if (key.startsWith("maintenance/")) return { kind: "maintenance", host: key.slice(12), hold, by };
      if (key.startsWith("acks/")) return { kind: "ack", key: key.slice(5), ack: v as never };
      return null;
    };
    this.readers.push((k, v) => {
      const c = parse(k, v);
      if (c) for (const l of listeners) l(c);
    });
    const resyncListeners: ((h: SharedHolds) => void)[] = [];
    const read = (): SharedHolds => {
      let pause: Hold | null = null;
      let pauseEndedBy: string | null = null;
      const maintenance = new Map<string, Maintenance>();
      const maintenanceEndedBy = new Map<string, string>();
      const acks = new Map<string, { by: string; at: number }>();
      for (const [k, v] of this.values) {
        const c = parse(k, v);
        if (c?.kind === "pause") [pause, pauseEndedBy] = [c.hold, c.by ?? null];
        else if (c?.kind === "maintenance" && c.hold) maintenance.set(c.host, c.hold);
        else if (c?.kind === "maintenance" && c.by !== undefined) maintenanceEndedBy.set(c.host, c.by);
        else if (c?.kind === "ack" && c.ack) acks.set(c.key, c.ack);
      }
      return { pause, maintenance, acks, endedBy: { pause: pauseEndedBy, maintenance: maintenanceEndedBy } };
    };
    this.resyncs.push(() => {
      const h = read();
      for (const l of resyncListeners) l(h);
    });
    return {
      setPause: async (hold: Hold | null, by: string) => this.write("pause", JSON.stringify(hold ?? { ended: { by, at: Date.now() } })),
      setMaintenance: async (host: string, m: Maintenance | null, by: string) => this.write(`maintenance/${host}`, JSON.stringify(m ?? { ended: { by, at: Date.now() } })),
      endExpired: async (what: { host?: string | undefined }, hold: Hold) => {
        const key = what.host !== undefined ? `maintenance/${what.host}` : "pause";
        if (this.values.get(key) !== JSON.stringify(hold)) return false;
        this.write(key, null);
        return true;
      },
      acknowledge: async (keys: readonly string[], by: string, at: number) => {
        for (const k of keys) this.write(`acks/${k}`, JSON.stringify({ by, at }));
      },
      forgetAck: async (key: string) => this.write(`acks/${key}`, null),
      read: async (): Promise<SharedHolds> => read(),
      onChange: (cb) => listeners.push(cb),
      onResync: (cb) => resyncListeners.push(cb),
    };
  }
}

async function until(what: string, fn: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

describe("pause and maintenance shared by the instances", () => {
  const dir = mkdtempSync(join(tmpdir(), "failoverd-shared-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  function instance(name: string, store: MemoryStore) {
    const state = DaemonState.load(join(dir, `${name}-${Date.now()}.json`), false);
    const journal = new MemoryJournal();
    const events = new EventBus();
    const paused: DaemonEvents["paused"][] = [];
    events.on("paused", (e) => paused.push(e));
    const maintenance: DaemonEvents["maintenance"][] = [];
    events.on("maintenance", (e) => maintenance.push(e));
    let changed = 0;
    const shared = store.reader();
    const controls = new Controls({ state, journal, events, log: silentLogger(), now: Date.now, changed: () => changed++, shared });
    const findings = new Findings(events);
    const adopted = { ready: true };
    followShared(shared, { controls, findings, now: Date.now, ready: () => adopted.ready });
    return { state, journal, paused, maintenance, controls, shared, findings, adopted, changed: () => changed };
  }

  test("a pause through one instance pauses the other; a resume through the other resumes the first", async () => {
    const store = new MemoryStore();
    const a = instance("a", store);
    const b = instance("b", store);
    try {
      await b.controls.pause("alice via http 127.0.0.2", { reason: "db upgrade", forMs: HOUR });
      await until("a paused", () => a.state.isPaused(Date.now()));
      assert.equal(a.state.pause?.by, "alice via http 127.0.0.2");
      assert.equal(a.state.pause?.reason, "db upgrade");
      assert.deepEqual(a.paused.map((e) => [e.paused, e.by]), [[true, "alice via http 127.0.0.2"]], "the other instance tells its bus too");
      assert.equal(b.paused.length, 1, "the writer tells its bus once (its own write read back changes nothing)");
      assert.equal(a.journal.records.length, 0, "only the instance that was asked journals it");
      await a.controls.resume("bob via http 127.0.0.1");
      await until("b resumed", () => b.state.pause === null);
      assert.ok(b.changed() >= 1, "the resumed instance evaluates again");
      assert.deepEqual(
        [...a.journal.records, ...b.journal.records].map((r) => (r.type === "control" ? `${r.action} by ${r.by}` : r.type)).sort(),
        ["pause by alice via http 127.0.0.2", "resume by bob via http 127.0.0.1"],
        "each journaled with who asked, by the instance asked",
      );
      assert.deepEqual(b.paused.map((e) => [e.paused, e.by]), [[true, "alice via http 127.0.0.2"], [false, "bob via http 127.0.0.1"]], "the other instance says who resumed");
    } finally {
      a.controls.close();
      b.controls.close();
    }
  });

  test("a maintenance ended through another instance: the others say who ended it", async () => {
    const store = new MemoryStore();
    const a = instance("a", store);
    const b = instance("b", store);
    try {
      await a.controls.startMaintenance("redis1", "carol", { reason: "kernel", forMs: HOUR });
      await until("b holds it", () => b.state.maintenance.has("redis1"));
      await b.controls.endMaintenance("redis1", "dave via http 127.0.0.3");
      await until("a ended it", () => !a.state.maintenance.has("redis1"));
      assert.deepEqual(a.maintenance.map((e) => [e.active, e.by]), [[true, "carol"], [false, "dave via http 127.0.0.3"]]);
      assert.deepEqual(b.journal.records.map((r) => (r.type === "control" ? `${r.action} by ${r.by}` : r.type)), ["maintenance-end by dave via http 127.0.0.3"]);
      assert.equal((await a.shared.read()).maintenance.size, 0, "an ended hold reads as none");
    } finally {
      a.controls.close();
      b.controls.close();
    }
  });

  test("maintenance is shared too; an expiry ends everywhere and is journaled once", async () => {
    const store = new MemoryStore();
    const a = instance("a", store);
    const b = instance("b", store);
    try {
      await a.controls.startMaintenance("redis1", "carol", { reason: "kernel", forMs: 200 });
      await a.controls.pause("dave", { forMs: 250 });
      await until("b holds both", () => b.state.maintenance.has("redis1") && b.state.pause !== null);
      await until("both ended", () => [a, b].every((x) => x.state.pause === null && x.state.maintenance.size === 0));
      await until("the store is clear", () => store.values.size === 0);
      const expired = [...a.journal.records, ...b.journal.records].flatMap((r) => (r.type === "control" && r.action.endsWith("-expired") ? [r.action] : []));
      assert.deepEqual(expired.sort(), ["maintenance-expired", "pause-expired"], "each expiry journaled by one instance only");
    } finally {
      a.controls.close();
      b.controls.close();
    }
  });

  test("a later pause is never ended by the expiry of an earlier one", async () => {
    const store = new MemoryStore();
    const a = instance("a", store);
    try {
      const old: Hold = { since: Date.now() - 2 * HOUR, by: "erin", until: Date.now() - HOUR };
      const newer: Hold = { since: Date.now(), by: "frank", until: Date.now() + HOUR };
      store.write("pause", JSON.stringify(newer));
      assert.equal(await a.shared.endExpired({}, old), false);
      assert.equal(store.values.get("pause"), JSON.stringify(newer));
    } finally {
      a.controls.close();
    }
  });

  test("a whole read of the store applies what the watch missed: a pause, a maintenance, their ends; an expired hold is none", async () => {
    const store = new MemoryStore();
    const a = instance("a", store);
    try {
      // Written behind the watch's back (a change etcd compacted away before the watch could resume).
      const pause: Hold = { since: Date.now(), by: "alice via http 127.0.0.2", reason: "db upgrade", until: Date.now() + HOUR };
      store.values.set("pause", JSON.stringify(pause));
      store.values.set("maintenance/redis1", JSON.stringify({ since: Date.now(), by: "bob", until: Date.now() + HOUR }));
      a.adopted.ready = false;
      store.resync();
      assert.equal(a.state.pause, null, "before start adopted the store, a whole read is start's own");
      a.adopted.ready = true;
      store.resync();
      assert.deepEqual(a.state.pause, pause);
      assert.equal(a.state.maintenance.get("redis1")?.by, "bob");
      store.resync();
      assert.deepEqual(a.paused.map((e) => [e.paused, e.by]), [[true, "alice via http 127.0.0.2"]], "told once, as the change it was");
      store.values.set("pause", JSON.stringify({ ended: { by: "frank", at: Date.now() } }));
      store.values.delete("maintenance/redis1");
      store.resync();
      assert.equal(a.state.pause, null);
      assert.equal(a.state.maintenance.size, 0);
      assert.deepEqual(a.paused.map((e) => [e.paused, e.by]), [[true, "alice via http 127.0.0.2"], [false, "frank"]], "a missed resume says who resumed");
      store.values.set("pause", JSON.stringify({ since: Date.now() - 2 * HOUR, by: "erin", until: Date.now() - HOUR }));
      store.resync();
      assert.equal(a.state.pause, null, "an expired pause left in the store pauses nothing");
      assert.deepEqual(a.paused.map((e) => e.paused), [true, false]);
    } finally {
      a.controls.close();
    }
  });

  test("a whole read of the store acknowledges what was acknowledged meanwhile, and only once", async () => {
    const store = new MemoryStore();
    const a = instance("a", store);
    const alert = (reason: string): Decision => ({ kind: "alert", host: "redis1", diagnosis: { name: "DeadPrimary", host: "redis1", targets: ["redis1:9001"], evidence: [] }, reason });
    const acked = () => a.findings.list().map((f) => f.acknowledged);
    try {
      a.findings.update([alert("paused")], 1);
      store.values.set("acks/DeadPrimary:redis1", JSON.stringify({ by: "carol", at: 2 }));
      store.resync();
      assert.deepEqual(acked(), [true]);
      a.findings.update([alert("cooling down")], 3);
      assert.deepEqual(acked(), [false], "changed: news again");
      store.resync();
      assert.deepEqual(acked(), [false], "the acknowledgement read before is not taken again for what the finding is now");
      store.values.set("acks/DeadPrimary:redis1", JSON.stringify({ by: "carol", at: 4 }));
      store.resync();
      assert.deepEqual(acked(), [true], "acknowledged again meanwhile");
    } finally {
      a.controls.close();
    }
  });

  test("at start the store's holds replace the state file's", async () => {
    const store = new MemoryStore();
    const a = instance("a", store);
    try {
      a.state.setPause({ since: 1, by: "stale file" });
      a.state.setMaintenance("redis2", { since: 1, by: "stale file", until: Date.now() + HOUR });
      store.write("maintenance/redis1", JSON.stringify({ since: 2, by: "gina", until: Date.now() + HOUR }));
      a.controls.adopt(await a.shared.read());
      assert.equal(a.state.pause, null);
      assert.deepEqual([...a.state.maintenance.keys()], ["redis1"]);
    } finally {
      a.controls.close();
    }
  });
});

describe("acknowledgements shared by the instances", () => {
  const d = (host: string): Diagnosis => ({ name: "DeadPrimary", host, targets: [`${host}:9001`], evidence: ["down (test)"] });
  const alert = (host: string, reason = "paused"): Decision => ({ kind: "alert", host, diagnosis: d(host), reason });

  test("a finding acknowledged elsewhere is acknowledged here, and one that appears later is born acknowledged", () => {
    const bus = new EventBus();
    const acks: string[][] = [];
    bus.on("ack", (e) => acks.push([...e.keys]));
    const f = new Findings(bus);
    f.update([alert("redis1")], 1);
    f.acknowledgeShared("DeadPrimary:redis1", { by: "alice", at: 1 }, 2);
    f.acknowledgeShared("DeadPrimary:redis2", { by: "alice", at: 1 }, 2);
    assert.deepEqual(acks, [["DeadPrimary:redis1"]]);
    f.update([alert("redis1"), alert("redis2")], 3);
    assert.deepEqual(
      f.list().map((x) => [x.key, x.acknowledged]),
      [
        ["DeadPrimary:redis1", true],
        ["DeadPrimary:redis2", true],
      ],
    );
  });

  test("a finding that changes is news again; one that is gone lets its acknowledgement be forgotten", () => {
    const gone: string[] = [];
    const f = new Findings(new EventBus(), (k) => gone.push(k));
    f.acknowledgeShared("DeadPrimary:redis1", { by: "alice", at: 1 }, 1);
    f.acknowledgeShared("DeadPrimary:redis2", { by: "alice", at: 1 }, 1);
    f.update([alert("redis1"), alert("redis2")], 2);
    f.update([alert("redis1", "cooling down until later")], 3);
    assert.deepEqual(f.list().map((x) => [x.key, x.acknowledged]), [["DeadPrimary:redis1", false]], "changed: not acknowledged");
    assert.deepEqual(gone, ["DeadPrimary:redis2"]);
  });
});

describe("cooldowns from the journal", () => {
  const r = (o: Partial<Parameters<typeof cooldownKeysOf>[1]>) => cooldownKeysOf(t, { playbook: "failed_redis", host: "redis1", outcome: "succeeded", completed: new Map(), steps: [], ...o });
  const promoted = new Map([["promote", { promoted: ["redis2:9001"] }]]);
  test("a failover that promoted arms its pair's", () => {
    assert.deepEqual(r({ completed: promoted }), ["failover:pair:redis1+redis2"]);
  });
  test("a failed one arms its host's too; one that promoted nothing arms only that", () => {
    assert.deepEqual(r({ outcome: "failed", completed: promoted }), ["failed:redis1", "failover:pair:redis1+redis2"]);
    assert.deepEqual(r({ outcome: "failed" }), ["failed:redis1"]);
    assert.deepEqual(r({}), []);
  });
  test("an HAProxy rebuilt arms that HAProxy's; one not terminated arms nothing", () => {
    assert.deepEqual(r({ playbook: "failed_haproxy", host: "haproxy1", steps: [{ step: "terminate" }] }), ["haproxy:haproxy1"]);
    assert.deepEqual(r({ playbook: "failed_haproxy", host: "haproxy1", steps: [{ step: "fence" }] }), []);
  });
  test("a switchover, a roll-back, or an unfinished recovery arms nothing (a resumption is never held)", () => {
    assert.deepEqual(r({ playbook: "switchover", completed: promoted }), []);
    assert.deepEqual(r({ outcome: "rolled-back", completed: promoted }), []);
    assert.deepEqual(r({ outcome: undefined, completed: promoted }), []);
  });
});

describe("a follower's HTTP API hands the leader what only the leader does", () => {
  const calls: string[] = [];
  /** A daemon as the API sees it: `name`, acting or pointing at the acting instance's API. */
  const daemon = (name: string, leader: () => { instance: string; url: string } | null) =>
    ({
      instance: name,
      paused: false,
      actingApi: async () => leader(),
      setPause: async (by: string) => {
        calls.push(`${name} pause ${by.split(" ")[0]}`);
        return { since: 1, by };
      },
      requestSwitchover: async (_r: unknown, _o: unknown, by: string) => {
        calls.push(`${name} switchover ${by.split(" ")[0]}`);
        return leader() === null ? { recoveryId: "r1", from: "redis1", to: "redis2" } : { refused: `m1 is the acting instance; ${name} observes` };
      },
    }) as unknown as ApiDaemon;
  const apis: HttpApi[] = [];
  const serve = async (d: ApiDaemon, token: string) => {
    const api = new HttpApi({ daemon: d, listen: { address: "127.231.0.1", port: 0 }, token, metrics: { text: async () => "", contentType: "text/plain" }, log: silentLogger() });
    apis.push(api);
    const a = await api.start();
    return `http://${a.address}:${a.port}`;
  };
  const post = async (url: string, path: string, token: string, body: unknown) => {
    const r = await fetch(`${url}${path}`, { method: "POST", headers: { authorization: `Bearer ${token}` }, body: JSON.stringify(body) });
    return { status: r.status, body: (await r.json()) as Record<string, unknown> };
  };
  let leaderUrl = "";
  let followerUrl = "";
  let stale = "";
  after(async () => {
    for (const a of apis) await a.close();
  });

  test("a switchover sent to a follower is carried out by the leader; the answer names both", async () => {
    leaderUrl = await serve(daemon("m1", () => null), "t0ken");
    followerUrl = await serve(daemon("m2", () => ({ instance: "m1", url: leaderUrl })), "t0ken");
    calls.length = 0;
    const r = await post(followerUrl, "/switchover", "t0ken", { to: "redis2", operator: "alice" });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.deepEqual(r.body, { recoveryId: "r1", from: "redis1", to: "redis2", instance: "m1", via: "m2" });
    assert.deepEqual(calls, ["m1 switchover alice"], "the leader did it, with the operator's name; the follower did not");
  });

  test("the caller's token is checked by the follower: a wrong one reaches nobody", async () => {
    calls.length = 0;
    assert.equal((await post(followerUrl, "/switchover", "nope", { to: "redis2" })).status, 401);
    assert.deepEqual(calls, []);
  });

  test("a pause is carried out where it is sent (shared through the store), never handed on", async () => {
    calls.length = 0;
    const r = await post(followerUrl, "/pause", "t0ken", { reason: "x", operator: "bob" });
    assert.equal(r.status, 200);
    assert.equal(r.body["instance"], "m2");
    assert.deepEqual(calls, ["m2 pause bob"]);
  });

  test("a forwarded request is never forwarded again: an instance that no longer leads refuses it", async () => {
    // m3 believes m2 leads, m2 (no longer leading) believes m1 does... m2 answers what it was handed itself.
    stale = await serve(daemon("m3", () => ({ instance: "m2", url: followerUrl })), "t0ken");
    calls.length = 0;
    const r = await post(stale, "/switchover", "t0ken", { to: "redis2" });
    assert.equal(r.status, 409);
    assert.equal(r.body["instance"], "m2");
    assert.deepEqual(calls, ["m2 switchover http"]);
  });

  test("a leader with another token, or none answering: 502 with the reason, nothing done", async () => {
    const other = await serve(daemon("m1", () => null), "other");
    const follower = await serve(daemon("m2", () => ({ instance: "m1", url: other })), "t0ken");
    calls.length = 0;
    const r = await post(follower, "/switchover", "t0ken", { to: "redis2" });
    assert.equal(r.status, 502);
    assert.match(String(r.body["error"]), /refused this instance's token .*same http\.token/);
    const gone = await serve(daemon("m2", () => ({ instance: "m1", url: "http://127.231.0.9:19464" })), "t0ken");
    const g = await post(gone, "/switchover", "t0ken", { to: "redis2" });
    assert.equal(g.status, 502);
    assert.match(String(g.body["error"]), /the acting instance m1 did not answer at http:\/\/127\.231\.0\.9:19464 \(.*\); nothing was done here/);
    assert.deepEqual(calls, []);
  });
});
