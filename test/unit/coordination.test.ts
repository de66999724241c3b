/**
 * Several instances, without etcd: the `coordination` section's validation, and quorum confirmation (a pure
 * function of the diagnoses, this instance's view and the others' verdicts).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import type { Diagnosis } from "../../src/checks/detector.ts";
import { confirmByQuorum, majority } from "../../src/coordination/quorum.ts";
import type { Verdict } from "../../src/coordination/session.ts";
import { ConfigError } from "../../src/errors.ts";
import { DEFAULT_CONFIG_PATH, parseTopology } from "../../src/topology/load.ts";

const SANDBOX = readFileSync(DEFAULT_CONFIG_PATH, "utf8");

function withCoordination(block: string) {
  return parseTopology(`${SANDBOX}\ncoordination:\n${block}\n`, "unit.yaml");
}

function problem(block: string): string {
  try {
    withCoordination(block);
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    assert.doesNotMatch(e.message, /[\r\n]/);
    return e.message;
  }
  assert.fail("the config was accepted");
}

describe("the coordination section", () => {
  test("absent: single-instance mode", () => {
    assert.equal(parseTopology(SANDBOX, "unit.yaml").config.coordination, undefined);
  });

  test("defaults: 3 instances, a 3 s lease", () => {
    const c = withCoordination("  endpoints: [http://127.0.0.1:2379]").config.coordination;
    assert.equal(c?.instances, 3);
    assert.equal(c?.leaseTtlSeconds, 3);
    assert.equal(c?.prefix, undefined);
  });

  test("bad values are refused, each with one line naming the field", () => {
    assert.match(problem("  endpoints: []"), /coordination\.endpoints: give at least one etcd endpoint/);
    assert.match(problem("  endpoints: [127.0.0.1:2379]"), /coordination\.endpoints\[0\]: .* is not an etcd endpoint/);
    assert.match(problem("  endpoints: [http://127.0.0.1]"), /coordination\.endpoints\[0\]: .*ADDR:PORT/);
    assert.match(problem("  endpoints: [http://u:secret@127.0.0.1:2379]"), /carries no user or password/);
    assert.doesNotMatch(problem("  endpoints: [http://u:secret@127.0.0.1:2379]"), /secret/);
    assert.match(problem("  endpoints: [http://127.0.0.1:2379]\n  leaseTtlSeconds: 1"), /coordination\.leaseTtlSeconds: must be at least 2/);
    assert.match(problem("  endpoints: [http://127.0.0.1:2379]\n  instances: 0"), /coordination\.instances: must be at least 1/);
    assert.match(problem("  endpoints: [http://127.0.0.1:2379]\n  prefix: failoverd"), /coordination\.prefix: .* is not a key prefix/);
    assert.match(problem("  endpoints: [http://127.0.0.1:2379]\n  password: hunter2"), /coordination\.password/);
    assert.match(problem("  endpoints: [http://127.0.0.1:2379]\n  password: { env: ETCD_PW }"), /coordination\.password needs coordination\.username/);
    assert.match(problem("  endpoints: [http://127.0.0.1:2379]\n  leader: m1"), /coordination: .*leader/);
  });
});

const dead = (host = "redis1"): Diagnosis => ({ name: "DeadPrimary", host, targets: [`${host}:9001`], evidence: ["redis2:9001 (replica) confirms"] });
const verdicts = (o: Record<string, Record<string, Verdict["status"]>>) =>
  new Map(Object.entries(o).map(([i, v]) => [i, new Map(Object.entries(v).map(([t, s]) => [t, { status: s, since: 0 } as Verdict]))]));

describe("quorum confirmation", () => {
  test("a majority of the configured instances, this one included, confirms and is named", () => {
    assert.equal(majority(3), 2);
    assert.equal(majority(5), 3);
    const [d] = confirmByQuorum({
      diagnoses: [dead()],
      self: "m1",
      statusOf: () => "down",
      peers: verdicts({ m3: { "redis1:9001": "down" }, m2: { "redis1:9001": "up" } }),
      instances: 3,
    });
    assert.equal(d?.name, "DeadPrimary");
    assert.match(d?.evidence.at(-1) ?? "", /confirmed by 2 of 3 instances \(m1, m3\)/);
  });

  test("a minority never confirms: alone, or with the others silent, the failure is only unreachable", () => {
    const alone = confirmByQuorum({ diagnoses: [dead()], self: "m1", statusOf: () => "down", peers: new Map(), instances: 3 });
    assert.equal(alone[0]?.name, "UnreachablePrimary");
    assert.match(alone[0]?.evidence.at(-1) ?? "", /only 1 of 3 instances see it down \(m1\); 2 must agree/);
    // Without etcd the others' verdicts are unknown: the evidence says why, not that they disagree.
    const cut = confirmByQuorum({ diagnoses: [dead()], self: "m1", statusOf: () => "down", peers: new Map(), instances: 3, unknownBecause: "etcd: refused; no instance acts without etcd" });
    assert.equal(cut[0]?.name, "UnreachablePrimary");
    assert.match(cut[0]?.evidence.at(-1) ?? "", /not confirmed \(the others' verdicts are unknown: etcd: refused; no instance acts without etcd\)$/);
    // Two of five is no majority, even when both agree.
    const two = confirmByQuorum({ diagnoses: [dead()], self: "m1", statusOf: () => "down", peers: verdicts({ m2: { "redis1:9001": "down" } }), instances: 5 });
    assert.equal(two[0]?.name, "UnreachablePrimary");
  });

  test("the others agreeing does not need this instance (its own view up), and non-actionable diagnoses pass through", () => {
    const out = confirmByQuorum({
      diagnoses: [dead(), { name: "TwoPrimaries", host: "redis1", targets: ["redis1:9001"], evidence: [] }, { ...dead("redis2"), name: "DeadReplica" }],
      self: "m1",
      statusOf: () => "up",
      peers: verdicts({ m2: { "redis1:9001": "down", "redis2:9001": "down" }, m3: { "redis1:9001": "down" } }),
      instances: 3,
    });
    assert.deepEqual(out.map((d) => d.name), ["DeadPrimary", "TwoPrimaries", "UnreachableReplica"]);
  });

  test("an early diagnosis (crash evidence before fall) is confirmed as early by a majority failing with refused or reset, not by a timeout", () => {
    const early: Diagnosis = { ...dead(), early: true };
    const failing = (kind: string) => new Map([["m2", new Map([["redis1:9001", { status: "up", failing: kind, since: 0 } as Verdict]])]]);
    const refused = confirmByQuorum({ diagnoses: [early], self: "m1", statusOf: () => "up", peers: failing("refused"), instances: 3 });
    assert.equal(refused[0]?.name, "DeadPrimary");
    assert.match(refused[0]?.evidence.at(-1) ?? "", /confirmed early by 2 of 3 instances \(m1, m2\)/);
    assert.equal(confirmByQuorum({ diagnoses: [early], self: "m1", statusOf: () => "up", peers: failing("reset"), instances: 3 })[0]?.name, "DeadPrimary");
    assert.equal(confirmByQuorum({ diagnoses: [early], self: "m1", statusOf: () => "up", peers: failing("timeout"), instances: 3 })[0]?.name, "UnreachablePrimary");
    // A peer's crash evidence does not confirm a diagnosis that was not started early (it waits for `down`).
    assert.equal(confirmByQuorum({ diagnoses: [dead()], self: "m1", statusOf: () => "down", peers: failing("refused"), instances: 3 })[0]?.name, "UnreachablePrimary");
    // Alone, early or not, nothing is confirmed.
    assert.equal(confirmByQuorum({ diagnoses: [early], self: "m1", statusOf: () => "up", peers: new Map(), instances: 3 })[0]?.name, "UnreachablePrimary");
  });

});
