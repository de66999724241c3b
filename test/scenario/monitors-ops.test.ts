/**
 * Operating three failoverd instances coordinated through a real 3-member etcd, on one real sandbox (Redis, HAProxy),
 * on 127.230.x.y, through their HTTP APIs: `failoverd status` names the leader; a switchover sent to a follower is
 * carried out by the leader; a pause sent to a follower pauses the leader (a primary killed meanwhile is not failed
 * over) and outlives the leader; an ack through a follower reaches the leader; a resume through another instance lets
 * the failover follow; a cooldown armed by one leader holds the next one.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { BIN_PATH } from "../../src/package-root.ts";
import { signal, whyNotFree } from "../../src/providers/local/processes.ts";
import type { InstancesView } from "../../src/daemon/peers.ts";
import type { StatusView } from "../../src/daemon/status.ts";
import { type Monitors, monitorsTopology, startMonitors } from "../helpers/monitors.ts";
import type { TestTopology } from "../helpers/sandbox.ts";
import { waitUntil } from "../helpers/wait.ts";

const NET = 230;
const NAMES = ["m1", "m2", "m3"] as const;
const HTTP: Record<string, string> = Object.fromEntries(NAMES.map((n, i) => [n, `127.${NET}.8.${i + 1}:9464`]));
const TOKEN = randomBytes(12).toString("hex");
const ENV = { FAILOVERD_OPS_TOKEN: TOKEN };
/** Long enough that a second failover of the pair within the test is held by it. */
const COOLDOWN_MS = 3_600_000;

const until = <T>(what: string, fn: () => Promise<T | null | undefined | false>, ms = 120_000): Promise<T> =>
  waitUntil(what, fn, ms, { retryErrors: true, everyMs: 200 });

async function call(name: string, method: "GET" | "POST", path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://${HTTP[name]}${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
    ...(body !== undefined ? { body: JSON.stringify({ operator: "tester", ...(body as object) }) } : {}),
    signal: AbortSignal.timeout(30_000),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const statusOf = async (name: string) => (await call(name, "GET", "/status")).body as unknown as StatusView & { instances: InstancesView };
const finding = (s: StatusView, key: string) => s.diagnoses.find((d) => d.key === key);
const reasonOf = (s: StatusView, key: string) => {
  const d = finding(s, key)?.decision;
  return d?.kind === "alert" ? d.reason : null;
};

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN_PATH, ...args], { timeout: 60_000, env: { ...process.env, ...ENV } }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe("operating three instances on etcd through their HTTP APIs", { timeout: 1_500_000 }, () => {
  let tt: TestTopology;
  let m: Monitors;
  const alive = () => NAMES.filter((n) => {
    const d = m.daemons.get(n);
    return d !== undefined && d.child.exitCode === null && d.child.signalCode === null;
  });
  const start = async (name: string) => {
    m.start(name, ENV, undefined, ["--http", HTTP[name]!]);
    await m.waitLog(name, "HTTP API on");
  };
  /** The live instance acting now, as it says itself. */
  const acting = () =>
    until("an acting instance", async () => {
      for (const n of alive()) if ((await statusOf(n).catch(() => null))?.instances.acting) return n;
      return null;
    });
  const kill = async (name: string) => {
    const child = m.daemons.get(name)!.child;
    child.kill("SIGKILL");
    if (child.exitCode === null && child.signalCode === null) await new Promise((r) => child.once("exit", r));
  };
  const killHost = (host: string) => {
    for (const p of m.sandbox.machineOf(host)?.processes ?? []) signal(p, "SIGKILL");
  };

  before(async () => {
    for (const a of [...Object.values(HTTP), `127.${NET}.8.9:9464`]) {
      const [address, port] = a.split(":");
      const busy = await whyNotFree(address!, Number(port));
      if (busy) throw new Error(`test address ${a} is busy: ${busy}`);
    }
    tt = monitorsTopology(NET, { cooldownMs: COOLDOWN_MS, extra: "http: { token: { env: FAILOVERD_OPS_TOKEN } }" });
    m = await startMonitors(tt);
    // One after the other (m1 leads): three Node processes starting at once on a loaded machine take minutes.
    for (const name of NAMES) await start(name);
    await until("m1 leads", async () => (await statusOf("m1")).instances.acting && (await m.leader()) === "m1");
  });
  after(async () => {
    await m?.stop();
    if (!process.env["KEEP"]) tt?.cleanup();
  });

  test("failoverd status, asked of a follower, names the leader and why the follower does not act; with no daemon answering, etcd says who leads", async () => {
    await until("m2 knows the leader", async () => (await statusOf("m2")).instances.leader === "m1");
    const r = await cli(["status", "--config", tt.path, "--http", HTTP["m2"]!]);
    assert.match(r.stdout, /^INSTANCES: leader m1; 3 of 3 observing \(m1, m2, m3\); 2 must agree/m, r.stdout + r.stderr);
    assert.match(r.stdout, /this daemon is m2: not acting: m1 is the acting instance/);
    const json = await cli(["status", "--config", tt.path, "--http", HTTP["m1"]!, "--json"]);
    const parsed = JSON.parse(json.stdout) as { instances: InstancesView };
    assert.equal(parsed.instances.leader, "m1");
    assert.equal(parsed.instances.acting, true);
    assert.ok((parsed.instances.lease.msLeft ?? 0) > 0, "the leader's lease time left");
    // No daemon answers there: the leader and the observers are read from etcd.
    const direct = await cli(["status", "--config", tt.path, "--http", `127.${NET}.8.9:9464`]);
    assert.match(direct.stdout, /^INSTANCES: no daemon answers on http:\/\/127\.230\.8\.9:9464 /m, direct.stdout + direct.stderr);
    assert.match(direct.stdout, /from etcd: leader m1; observers m1, m2, m3/);
    const page = await fetch(`http://${HTTP["m3"]}/`).then((x) => x.text());
    assert.match(page, /id="instances-section"/, "the status page has the instances");
  });

  test("a switchover sent to a follower is carried out by the leader, and the answer says so", async () => {
    // A switchover moves every HAProxy in step: the leader must have seen each one up (a loaded machine starts slowly).
    await until("the leader sees every target up", async () => (await statusOf("m1")).hosts.every((h) => h.targets.every((x) => x.status === "up")));
    const r = await call("m2", "POST", "/switchover", { to: "redis2" });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.equal(r.body["instance"], "m1", "carried out by the leader");
    assert.equal(r.body["via"], "m2");
    const [s] = await m.waitEnded(1, 120_000);
    assert.equal(s?.playbook, "switchover");
    assert.equal(s?.outcome, "succeeded", s?.error);
    assert.equal(s?.id, r.body["recoveryId"]);
    assert.match(m.logOf("m1"), /switchover of .* requested by tester via http/);
    assert.match(m.logOf("m2"), /handed to the acting instance m1/);
    assert.ok(!m.logOf("m2").includes(TOKEN) && !m.logOf("m1").includes(TOKEN), "the token is never logged");
    await m.waitConverged(60_000);
  });

  test("a pause sent to a follower pauses the leader: the primary killed meanwhile is not failed over", async () => {
    const r = await call("m2", "POST", "/pause", { reason: "ops test", for: "forever" });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body["instance"], "m2");
    await until("every instance paused", async () => (await Promise.all(NAMES.map(statusOf))).every((s) => s.paused && s.pause?.reason === "ops test"));
    killHost("redis2");
    const s = await until("the leader diagnoses the dead primary and holds back", async () => {
      const x = await statusOf("m1");
      return reasonOf(x, "DeadPrimary:redis2") === "failoverd is paused; not acting" ? x : null;
    });
    assert.equal(s.instances.acting, true, "m1 still leads");
    assert.equal((await m.recoveries()).length, 1, "no recovery started while paused");
  });

  test("an ack sent to a follower reaches the leader", async () => {
    await until("m3 has the finding", async () => finding(await statusOf("m3"), "DeadPrimary:redis2"));
    const r = await call("m3", "POST", "/ack", {});
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body["instance"], "m3");
    assert.ok((r.body["acknowledged"] as string[]).includes("DeadPrimary:redis2"));
    await until("the leader holds it acknowledged", async () => finding(await statusOf("m1"), "DeadPrimary:redis2")?.acknowledged === true, 30_000);
  });

  let second = "";
  test("the leader killed: the next leader is still paused; resumed through another instance, the failover follows", async () => {
    await kill("m1");
    const next = await acting();
    assert.notEqual(next, "m1");
    const s = await until("the new leader holds the dead primary back", async () => {
      const x = await statusOf(next);
      return reasonOf(x, "DeadPrimary:redis2") === "failoverd is paused; not acting" ? x : null;
    });
    assert.equal(s.paused, true);
    assert.match(s.pause?.by ?? "", /^tester via http /, "the pause set through m2, by whom");
    assert.equal((await m.recoveries()).length, 1, "the new leader started nothing while paused");
    // m1 comes back (at the back of the queue): two instances stay when the next leader is killed below.
    await start("m1");
    const other = NAMES.find((n) => n !== next && n !== "m1")!;
    const r = await call(other, "POST", "/resume", { confirm: true });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body["instance"], other);
    const done = await m.waitEnded(2, 180_000);
    const failover = done[1]!;
    assert.equal(failover.playbook, "failed_redis");
    assert.equal(failover.host, "redis2");
    assert.equal(failover.outcome, "succeeded", failover.error);
    // The failover ran on the leader of now (on a loaded machine the lease may have moved on since: then that one).
    second = await acting();
    await m.waitConverged(60_000);
  });

  test("a cooldown armed by the previous leader holds the next one", async () => {
    assert.ok(second, "the failover above ran");
    await kill(second);
    const next = await acting();
    assert.notEqual(next, second);
    await m.waitLog(next, "cooldown failover:pair:redis1+redis2 armed by", 60_000);
    killHost("redis1");
    const s = await until("the new leader holds the second failover back", async () => {
      const x = await statusOf(next);
      return /cooling down until/.test(reasonOf(x, "DeadPrimary:redis1") ?? "") ? x : null;
    });
    assert.equal(s.instances.acting, true);
    assert.equal((await m.recoveries()).length, 2, "no second failover within the cooldown");
  });
});
