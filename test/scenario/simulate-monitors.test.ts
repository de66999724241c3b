/**
 * `failoverd simulate --monitors 3` on the real sandbox (redis-server, haproxy), a real 3-member etcd and three
 * failoverd instances, on 127.205.x.y: the acting instance killed in the middle of failed_redis (the next leader
 * resumes); the leader cut off from etcd and the topology before the primary crashes (it alone sees every host down
 * and does nothing; the majority fails the primary over); bad --monitors and --at-step values.
 */
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { after, before, describe, test } from "node:test";
import { BIN_PATH } from "../../src/package-root.ts";
import { whyNotFree } from "../../src/providers/local/processes.ts";
import { sandboxOf } from "../../src/providers/local/up.ts";
import { simulate, type SimulateReport } from "../../src/simulate/scenario.ts";
import { isActing, logMessages, monitorsTopology } from "../helpers/monitors.ts";
import { assertAddressesFree, type TestTopology } from "../helpers/sandbox.ts";

const NET = 205;
const execFileP = promisify(execFile);
/** The groups simulate gives m1..m3 on 127.205 (src/simulate/monitors.ts): the rules a killed run could leave. */
const GIDS = [0, 1, 2].map((i) => 60_000 + NET * 10 + i);

async function cli(tt: TestTopology, args: readonly string[], timeout = 600_000): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await execFileP(process.execPath, [BIN_PATH, "simulate", "--config", tt.path, ...args], { timeout, maxBuffer: 64 * 1024 * 1024 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof x.code === "number" ? x.code : -1, stdout: x.stdout ?? "", stderr: x.stderr ?? "" };
  }
}

async function assertNothingListens(tt: TestTopology): Promise<void> {
  await assertAddressesFree(tt.topology);
  const etcd = (await Promise.all([1, 2, 3].map((i) => whyNotFree(`127.${NET}.9.${i}`, 2379)))).filter(Boolean);
  assert.deepEqual(etcd, [], "no etcd member left running");
}


describe("simulate --monitors 3", { timeout: 1_500_000 }, () => {
  let tt: TestTopology;
  before(async () => {
    tt = monitorsTopology(NET);
    await assertNothingListens(tt);
  });
  after(() => {
    for (const gid of GIDS) {
      try {
        execFileSync("iptables", ["-D", "OUTPUT", "-m", "owner", "--gid-owner", String(gid), "-j", "DROP"], { stdio: "ignore" });
      } catch {
        // not there: the run removed it
      }
    }
    if (!process.env["KEEP"]) tt?.cleanup();
  });

  test("bad --monitors, --at-step and --fault combinations: one line, exit 2, nothing started", async () => {
    const cases: [string[], RegExp][] = [
      [["--target", "redis1", "--monitors", "4"], /--monitors.*'4'.*odd number of instances, at least 3/],
      [["--target", "redis1", "--monitors", "1"], /--monitors.*'1'.*odd number/],
      [["--target", "redis1", "--monitors", "three"], /--monitors.*'three'.*odd number/],
      [["--target", "redis1", "--monitors", "5"], /--monitors 5: coordination\.instances is 3/],
      [["--target", "redis1", "--fault", "monitor-leader"], /--fault monitor-leader: give --monitors/],
      [["--target", "redis1", "--monitors", "3", "--fault", "monitor-leader", "--at-step", "reboot"], /--at-step reboot: not a step of failed_redis \(unmonitor, fence, hold, promote, terminate, launch, replicate, register, converge, monitor\)/],
      [["--target", "haproxy1", "--monitors", "3", "--fault", "monitor-leader", "--at-step", "promote"], /--at-step promote: not a step of failed_haproxy/],
      [["--target", "redis1", "--monitors", "3", "--at-step", "launch"], /--at-step launch: only the monitor faults/],
      [["--target", "redis1", "--monitors", "3", "--fault", "monitor-sleep"], /--fault.*'monitor-sleep'.*monitor-leader or monitor-partition/],
    ];
    for (const [args, expected] of cases) {
      const r = await cli(tt, args, 60_000);
      assert.equal(r.code, 2, `${args.join(" ")}: exit ${r.code}; ${r.stderr}`);
      const lines = r.stderr.trim().split("\n");
      assert.equal(lines.length, 1, `${args.join(" ")}: one line, got ${r.stderr}`);
      assert.match(lines[0]!, expected);
      assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
      assert.equal(r.stdout, "", `${args.join(" ")}: nothing started (stdout: ${r.stdout})`);
    }
    await assertNothingListens(tt);
  });

  test("monitor-leader at promote: the acting instance killed before the promotion, the next leader resumes there; recovered, one replacement, no acknowledged write lost", async () => {
    await assertNothingListens(tt);
    let redis1Machines = -1;
    const events: string[] = [];
    const r: SimulateReport = await simulate(tt.topology, {
      target: "redis1",
      fault: "monitor-leader",
      monitors: 3,
      atStep: "promote",
      timeoutMs: 300_000,
      onEvent: (l) => events.push(l),
      hooks: {
        beforeTeardown: async () => {
          redis1Machines = sandboxOf(tt.topology).read().machines.filter((x) => x.host === "redis1").length;
        },
      },
    });
    const m = r.monitors;
    assert.ok(m, "the report has a monitors section");
    assert.equal(r.recovered, true, `not recovered: ${r.why}\n${events.join("\n")}`);
    assert.equal(r.lostAckedWrites, 0, "acknowledged writes lost");
    assert.ok(r.ackedWrites > 0);
    assert.equal(redis1Machines, 2, "the original machine and exactly one replacement");
    assert.equal(r.steps.filter((s) => s.name === "launch").length, 1, "launched once");
    assert.ok(r.steps.every((s) => s.outcome === "ok"), JSON.stringify(r.steps));
    assert.deepEqual(m.instances, ["m1", "m2", "m3"]);
    assert.deepEqual(m.problems, []);
    // The fault struck the instance that led the recovery, before promote.
    assert.ok(m.fault, "the fault struck");
    assert.equal(m.fault.kind, "monitor-leader");
    assert.equal(m.fault.step, "promote");
    assert.ok(m.fault.atMs > 0, "during the recovery, after the crash");
    const killed = m.fault.instance;
    assert.ok(m.acts.some((a) => a.instance === killed && a.what === "started"), `${killed} had started the recovery: ${JSON.stringify(m.acts)}`);
    // A leader change to another instance after the kill, which resumed the recovery at promote.
    const later = m.leaders.filter((l) => l.atMs >= m.fault!.atMs);
    assert.ok(later.some((l) => l.leader !== null && l.leader !== killed), `a leader change after the kill: ${JSON.stringify(m.leaders)}`);
    assert.ok(m.resumedBy !== null && m.resumedBy !== killed, `resumed by another instance: ${m.resumedBy}`);
    assert.ok(m.resumedMs !== null && m.resumedMs >= m.fault.atMs, `resumed after the kill: ${m.resumedMs}`);
    const promote = r.steps.find((s) => s.name === "promote");
    assert.ok(promote && promote.startMs >= m.fault.atMs, "promote started after the kill, by the next leader");
    assert.ok(m.acts.some((a) => a.instance === m.resumedBy && a.what === "resumed"), JSON.stringify(m.acts));
    // The killed instance never ran the step it was killed before.
    const log = join(sandboxOf(tt.topology).runDir, `daemon-${killed}.log`);
    assert.ok(!logMessages(log).some((x) => x.startsWith("step promote:")), `${killed} never started promote`);
    await assertNothingListens(tt);
  });

  test("monitor-partition through the CLI: the leader cut off from etcd and the topology sees every host down and does nothing; the majority leads and fails the crashed primary over; the report says so", async () => {
    await assertNothingListens(tt);
    const r = await cli(tt, ["--target", "redis1", "--monitors", "3", "--fault", "monitor-partition", "--hang-ms", "30000", "--json"]);
    const last = r.stdout.trim().split("\n").at(-1) ?? "";
    assert.equal(r.code, 0, `exit ${r.code}\n${r.stdout}\n${r.stderr}`);
    const report = JSON.parse(last) as SimulateReport;
    const m = report.monitors;
    assert.ok(m, "the report has a monitors section");
    assert.equal(report.recovered, true, report.why);
    assert.equal(report.lostAckedWrites, 0);
    assert.equal(report.diagnosis, "DeadPrimary");
    assert.deepEqual(m.problems, []);
    assert.ok(m.fault, "the fault struck");
    const cut = m.fault.instance;
    assert.equal(m.fault.kind, "monitor-partition");
    assert.equal(m.fault.step, null, "cut before the crash");
    assert.ok(m.fault.atMs < 0, "before the crash");
    assert.equal(m.leaders[0]?.leader, cut, "the leader was cut off");
    // Another instance led before the primary crashed, and it (not the cut one) ran the recovery.
    assert.ok(m.leaders.some((l) => l.atMs < 0 && l.leader !== null && l.leader !== cut), `a new leader before the crash: ${JSON.stringify(m.leaders)}`);
    assert.ok(m.acts.length > 0 && m.acts.every((a) => a.instance !== cut), `the recovery was run by the majority: ${JSON.stringify(m.acts)}`);
    assert.ok(m.acts.every((a) => a.atMs >= 0), "no recovery before the crash (only the cut instance saw the hosts down)");
    // The cut instance's own log: it never started, resumed or ran a step of anything.
    const log = join(sandboxOf(tt.topology).runDir, `daemon-${cut}.log`);
    const msgs = logMessages(log);
    assert.ok(msgs.length > 0, `${cut}'s log is there`);
    assert.deepEqual(msgs.filter(isActing), [], `${cut} did nothing`);
    // The text report names the cut, the leader changes and the recovery's start.
    assert.match(r.stdout, new RegExp(`${cut} cut off from etcd and the topology`));
    assert.match(r.stdout, /leader changes\s+m\d at -?\d+ ms/);
    assert.match(r.stdout, /monitor problems\s+none/);
    await assertNothingListens(tt);
  });
});
