/**
 * Quorum under a partition, with three failoverd instances on a real 3-member etcd and a real sandbox (Redis,
 * HAProxy), on 127.206.x.y. Each instance runs in a group of its own, so an iptables OUTPUT rule matching that group
 * cuts exactly that instance off; the machines it launches run in root's group (FAILOVERD_LOCAL_GID). The leader cut
 * off from the primary (refused: the strongest evidence) alone sees the primary down: nothing confirms it (the
 * witnesses and the other instances see it up), so nothing is fenced, promoted or terminated over a generous window.
 * Then the primary is killed: every instance sees it down, and the majority fails it over.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, test } from "node:test";
import { RedisAdminClient } from "../../src/admin/redis.ts";
import { signal } from "../../src/providers/local/processes.ts";
import { readBackLost } from "../../src/simulate/scenario.ts";
import { Traffic } from "../../src/simulate/traffic.ts";
import { isActing, logMessages, type Monitors, monitorsTopology, startMonitors, TTL_SECONDS, until } from "../helpers/monitors.ts";
import type { TestTopology } from "../helpers/sandbox.ts";

const NET = 206;
const NAMES = ["m1", "m2", "m3"];
const gidOf = (name: string) => 63_000 + NET * 10 + NAMES.indexOf(name);
const PRIMARY = `127.${NET}.1.1`;


async function roleOf(address: string): Promise<string | null> {
  const c = new RedisAdminClient({ address, port: 9001 }, 3000);
  try {
    return (await c.role()).role;
  } catch {
    return null;
  } finally {
    c.close();
  }
}


describe("a partitioned minority of three instances", { timeout: 1_200_000 }, () => {
  let tt: TestTopology;
  let m: Monitors;
  const rules: string[][] = [];
  const addRule = (rule: string[]) => {
    execFileSync("iptables", ["-I", "OUTPUT", ...rule]);
    rules.push(rule);
  };
  const removeRules = () => {
    while (rules.length > 0) {
      try {
        execFileSync("iptables", ["-D", "OUTPUT", ...rules.pop()!], { stdio: "ignore" });
      } catch {
        // already gone
      }
    }
  };
  before(async () => {
    tt = monitorsTopology(NET);
    m = await startMonitors(tt);
    // One after the other (m1 leads), each in a group of its own; the machines they launch in root's group.
    for (const name of NAMES) {
      m.start(name, { FAILOVERD_LOCAL_GID: String(process.getgid?.() ?? 0) }, { uid: process.getuid?.() ?? 0, gid: gidOf(name) });
      await m.waitLog(name, "roles discovered");
    }
    await until(async () => (await m.leader()) !== null, 60_000, "a leader");
  });
  after(async () => {
    removeRules();
    await m?.stop();
    if (!process.env["KEEP"]) tt?.cleanup();
  });

  test("the leader alone sees the primary down (cut off from it): nothing is fenced, promoted or terminated; the primary killed, the majority fails it over", async () => {
    const app = tt.topology.appHosts[0]!;
    const writes = new Traffic({ address: app.address, port: Number(Object.keys(app.frontends)[0]), prefix: `p:${Date.now()}`, probeEveryMs: 0 });
    try {
      writes.start();
      const leader = (await m.leader())!;
      // Refused (a reset, as from a dead server's host): the strongest evidence, the kind a lone instance would act on.
      addRule(["-m", "owner", "--gid-owner", String(gidOf(leader)), "-d", PRIMARY, "-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"]);
      const cutAt = Date.now();
      await m.waitLog(leader, /redis1:9001 is down/, 60_000);
      // Its view is never confirmed: the replica's live link and the HAProxies contradict it (the witness rules), and
      // the other instances see redis1 up (the quorum). It alerts and does not act.
      await m.waitLog(leader, /"host":"redis1","evidence":\[[^\]]*not confirmed[^\]]*\],"msg":"[A-Za-z]+ on redis1: [^"]*do not act/, 60_000);
      // The connection it lost made it drain the primary on the HAProxies at once (a restart could be under way), and
      // the replica, still linked to the primary, ended that drain: the clients of a live primary are not kept out.
      await until(async () => /released redis1:9001's drain: its replica redis2:9001 is linked to it/.test(m.logOf(leader)), 60_000, "the leader's drain ended by the replica's link");
      // A generous window (several lease TTLs and detection budgets): nothing may start.
      await sleep(Math.max(0, cutAt + 4 * TTL_SECONDS * 1000 - Date.now()));
      assert.deepEqual(await m.recoveries(), [], "no recovery in the journal");
      for (const name of NAMES) assert.deepEqual(logMessages(m.daemons.get(name)!.log).filter(isActing), [], `${name} did nothing`);
      assert.equal(await roleOf(PRIMARY), "primary", "redis1 is still the primary (not fenced, not terminated)");
      assert.equal(await roleOf(`127.${NET}.1.2`), "replica", "redis2 is still its replica (not promoted)");
      assert.equal(m.sandbox.read().machines.filter((x) => x.host === "redis1").length, 1, "no machine launched");
      await m.waitConverged(30_000);
      assert.equal(await m.leader(), leader, "the cut leader still leads (it reaches etcd): only the quorum held it back");

      // Now every instance sees the primary down: the majority agrees, and it is failed over.
      const killedAt = Date.now();
      for (const p of m.sandbox.machineOf("redis1")?.processes ?? []) signal(p, "SIGKILL");
      const [r] = await m.waitEnded(1, 180_000);
      assert.equal(r?.outcome, "succeeded", r?.error);
      assert.ok(r!.startedAt >= killedAt, "the recovery started after the kill, not before");
      assert.match(r?.diagnosis ?? "", /DeadPrimary/);
      assert.equal((await m.recoveries()).length, 1, "one recovery");
      await m.waitConverged(60_000);
      assert.equal(m.sandbox.read().machines.filter((x) => x.host === "redis1").length, 2, "the original machine and exactly one replacement");
      await writes.stop();
      assert.ok(writes.acks.length > 0);
      assert.equal(await readBackLost(tt.topology, writes, {}), 0, "acknowledged writes lost");
      // The diagnosis that ran the playbook names the majority that agreed (in its evidence).
      assert.ok(NAMES.some((n) => /confirmed by [23] of 3 instances \(m\d, m\d/.test(m.logOf(n))), "the failure was confirmed by a majority");
    } finally {
      removeRules();
      await writes.stop().catch(() => {});
    }
  });
});
