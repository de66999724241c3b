/**
 * The decider as tables: diagnosis + state + time -> recover or alert, with every guard rail (non-actionable,
 * paused, disabled, one recovery per group, cooldown, too many targets down), and the registry that maps every
 * diagnosis to a playbook or to "alert only".
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { DIAGNOSES, type Diagnosis, type DiagnosisName } from "../../src/checks/detector.ts";
import { type DeciderInput, type DeciderState, type Decision, decide, groupOf } from "../../src/recovery/decider.ts";
import { PLAYBOOK_FOR, playbookFor } from "../../src/recovery/registry.ts";
import { type TestRecoveryOptions, testTopology } from "../helpers/recording-providers.ts";

const NOW = 10_000_000;
const COOLDOWN = 60_000;
const PAIR = "pair:redis1+redis2";
const TIER = "haproxy-tier";
/** The anti-flap keys: a failover of the pair, a rebuild of one HAProxy. */
const FAILOVER = `failover:${PAIR}`;

/** The host each diagnosis is about in the sandbox topology. */
const HOST_OF: Record<DiagnosisName, string> = {
  NoProblem: "redis1",
  DeadPrimary: "redis1",
  PrimaryRestartedEmpty: "redis1",
  PrimaryRestarted: "redis1",
  ReplicaLinkDown: "redis2",
  ReplicaLagging: "redis2",
  UnreachablePrimary: "redis1",
  DeadReplica: "redis2",
  UnreachableReplica: "redis2",
  PairDown: "redis1",
  TwoPrimaries: "redis1",
  HaproxyDown: "haproxy1",
  UnreachableHaproxy: "haproxy1",
  AppProxyDown: "app",
};

const NAMES = Object.keys(DIAGNOSES) as DiagnosisName[];

function diagnosis(name: DiagnosisName, host = HOST_OF[name]): Diagnosis {
  return { name, host, targets: [host], evidence: [`${host} is down (test)`] };
}

function state(s: Partial<DeciderState> = {}): DeciderState {
  return { paused: false, active: new Set(), lastEnded: new Map(), ...s };
}

function input(
  diagnoses: readonly Diagnosis[],
  o: { state?: Partial<DeciderState>; recovery?: TestRecoveryOptions; total?: number; down?: number; confirmed?: number } = {},
): DeciderInput {
  return {
    topology: testTopology({ cooldownMs: COOLDOWN, ...o.recovery }),
    diagnoses,
    targetsTotal: o.total ?? 6,
    targetsDown: o.down ?? 1,
    targetsConfirmed: o.confirmed ?? 0,
    state: state(o.state),
    now: NOW,
  };
}

function only(decisions: readonly Decision[]): Decision {
  assert.equal(decisions.length, 1, `one decision expected, got ${JSON.stringify(decisions.map((d) => d.kind))}`);
  return decisions[0]!;
}

function assertRecover(d: Decision, playbook: string, host: string, group: string) {
  assert.equal(d.kind, "recover", d.kind === "alert" ? `alert instead: ${d.reason}` : "");
  if (d.kind !== "recover") return;
  assert.deepEqual([d.playbook, d.host, d.group], [playbook, host, group]);
}

function assertAlert(d: Decision, reason: RegExp) {
  assert.equal(d.kind, "alert");
  if (d.kind !== "alert") return;
  assert.match(d.reason, reason);
}

describe("decide: the diagnosis alone", () => {
  const actionable = [
    { name: "DeadPrimary", playbook: "failed_redis", group: PAIR },
    { name: "DeadReplica", playbook: "failed_redis", group: PAIR },
    { name: "HaproxyDown", playbook: "failed_haproxy", group: TIER },
  ] as const;
  for (const row of actionable) {
    test(`${row.name} -> recover with ${row.playbook}`, () => {
      const d = diagnosis(row.name);
      const decision = only(decide(input([d])));
      assertRecover(decision, row.playbook, d.host, row.group);
      assert.equal(decision.diagnosis, d);
    });
  }

  for (const name of NAMES.filter((n) => !DIAGNOSES[n].actionable)) {
    test(`${name} -> alert with its description`, () => {
      const d = diagnosis(name);
      const decision = only(decide(input([d])));
      assert.equal(decision.kind, "alert");
      assert.equal(decision.host, d.host);
      if (decision.kind === "alert") assert.equal(decision.reason, DIAGNOSES[name].description);
    });
  }

  test("no diagnosis -> no decision", () => {
    assert.deepEqual(decide(input([])), []);
  });
});

describe("decide: guard rails", () => {
  const dead = diagnosis("DeadPrimary");

  test("paused -> alert", () => {
    assertAlert(only(decide(input([dead], { state: { paused: true } }))), /paused/);
  });

  test("recovery.enabled: false -> alert naming the setting", () => {
    assertAlert(only(decide(input([dead], { recovery: { enabled: false } }))), /recovery\.enabled: false/);
  });

  test("a recovery of the same pair is active -> alert", () => {
    assertAlert(only(decide(input([dead], { state: { active: new Set([PAIR]) } }))), /already under way/);
  });

  test("a recovery of another group is active -> recover", () => {
    assertRecover(only(decide(input([dead], { state: { active: new Set([TIER]) } }))), "failed_redis", "redis1", PAIR);
  });

  test("two diagnoses for the same pair in one call -> one recovery, the other an alert", () => {
    const out = decide(input([dead, diagnosis("DeadReplica", "redis2")], { down: 2 }));
    assert.equal(out.length, 2);
    assertRecover(out[0]!, "failed_redis", "redis1", PAIR);
    assertAlert(out[1]!, new RegExp(`a recovery of ${PAIR.replace("+", "\\+")} is already under way`));
    assert.equal(out[1]!.host, "redis2");
  });

  test("two HAProxies down in one call -> one recovery of the HAProxy tier", () => {
    const out = decide(input([diagnosis("HaproxyDown", "haproxy1"), diagnosis("HaproxyDown", "haproxy2")], { down: 2 }));
    assert.deepEqual(
      out.map((d) => d.kind),
      ["recover", "alert"],
    );
  });

  test("a pair and the HAProxy tier in one call -> both recover", () => {
    const out = decide(input([dead, diagnosis("HaproxyDown")], { down: 2 }));
    assert.deepEqual(
      out.map((d) => [d.kind, d.host]),
      [
        ["recover", "redis1"],
        ["recover", "haproxy1"],
      ],
    );
  });

  const cooldown = [
    { name: "never failed over", ago: undefined, kind: "recover" },
    { name: "failed over 1 ms ago", ago: 1, kind: "alert" },
    { name: "failed over cooldownMs - 1 ms ago", ago: COOLDOWN - 1, kind: "alert" },
    { name: "failed over exactly cooldownMs ago", ago: COOLDOWN, kind: "recover" },
    { name: "failed over long ago", ago: 10 * COOLDOWN, kind: "recover" },
  ] as const;
  for (const row of cooldown) {
    test(`cooldown: the pair ${row.name} -> ${row.kind}`, () => {
      const lastEnded = new Map(row.ago === undefined ? [] : [[FAILOVER, NOW - row.ago]]);
      const d = only(decide(input([dead], { state: { lastEnded } })));
      if (row.kind === "recover") assertRecover(d, "failed_redis", "redis1", PAIR);
      else assertAlert(d, /recovery\.cooldownMs/);
    });
  }

  test("cooldown: the alert says what it guards and when it ends, in words that do not change every second", () => {
    const armed = NOW - (COOLDOWN - 1500);
    const a = only(decide(input([dead], { state: { lastEnded: new Map([[FAILOVER, armed]]) } })));
    const b = only(decide({ ...input([dead], { state: { lastEnded: new Map([[FAILOVER, armed]]) } }), now: NOW + 1000 }));
    const until = new Date(armed + COOLDOWN).toISOString().replace(/\.\d+Z$/, "Z");
    assertAlert(a, new RegExp(`pair:redis1\\+redis2 failed over at .*repeated failovers; cooling down until ${until}`));
    assert.equal(a.kind === "alert" && b.kind === "alert" && a.reason, b.kind === "alert" && b.reason, "the same text a second later");
  });

  test("cooldown of another group does not hold this one back", () => {
    const d = only(decide(input([dead], { state: { lastEnded: new Map([[`haproxy:haproxy1`, NOW - 1]]) } })));
    assertRecover(d, "failed_redis", "redis1", PAIR);
  });

  test("a failover's cooldown does not hold a replica rebuild of the same pair", () => {
    const d = only(decide(input([diagnosis("DeadReplica", "redis2")], { state: { lastEnded: new Map([[FAILOVER, NOW - 1]]) } })));
    assertRecover(d, "failed_redis", "redis2", PAIR);
  });

  test("a recovery of the pair that armed nothing (a replica rebuild, a rollback) does not hold its failover", () => {
    // The old key (the whole group) is what a replica rebuild used to arm: it no longer holds a failover.
    const d = only(decide(input([dead], { state: { lastEnded: new Map([[PAIR, NOW - 1]]) } })));
    assertRecover(d, "failed_redis", "redis1", PAIR);
  });

  test("a primary that restarted empty is held by the pair's failover cooldown like a dead one", () => {
    const d = only(decide(input([diagnosis("PrimaryRestartedEmpty")], { state: { lastEnded: new Map([[FAILOVER, NOW - 1]]) } })));
    assertAlert(d, /cooling down/);
  });

  test("a recovery of a host that failed holds that host's next recovery, not the other host's", () => {
    const lastEnded = new Map([["failed:redis1", NOW - 1]]);
    assertAlert(only(decide(input([diagnosis("DeadReplica", "redis1")], { state: { lastEnded } }))), /the last recovery of redis1 failed at .*cooling down until/);
    assertRecover(only(decide(input([diagnosis("DeadPrimary", "redis2")], { state: { lastEnded } }))), "failed_redis", "redis2", PAIR);
    const later = only(decide({ ...input([diagnosis("DeadReplica", "redis1")], { state: { lastEnded } }), now: NOW + COOLDOWN }));
    assertRecover(later, "failed_redis", "redis1", PAIR);
  });

  test("one HAProxy's rebuild does not hold the other HAProxy's", () => {
    const lastEnded = new Map([["haproxy:haproxy1", NOW - 1]]);
    assertRecover(only(decide(input([diagnosis("HaproxyDown", "haproxy2")], { state: { lastEnded } }))), "failed_haproxy", "haproxy2", TIER);
    assertAlert(only(decide(input([diagnosis("HaproxyDown", "haproxy1")], { state: { lastEnded } }))), /haproxy1 was rebuilt at .*cooling down until/);
  });

  const isolation = [
    { down: 4, total: 6, fraction: 0.5, kind: "alert" },
    { down: 3, total: 6, fraction: 0.5, kind: "recover" },
    { down: 6, total: 6, fraction: 0.5, kind: "alert" },
    { down: 2, total: 6, fraction: 0.25, kind: "alert" },
    { down: 6, total: 6, fraction: 1, kind: "recover" },
    { down: 0, total: 0, fraction: 0.5, kind: "recover" },
  ] as const;
  for (const row of isolation) {
    test(`${row.down} of ${row.total} targets down, maxFailingFraction ${row.fraction} -> ${row.kind}`, () => {
      const d = only(decide(input([dead], { down: row.down, total: row.total, recovery: { maxFailingFraction: row.fraction } })));
      if (row.kind === "recover") assertRecover(d, "failed_redis", "redis1", PAIR);
      else assertAlert(d, new RegExp(`${row.down} of ${row.total} targets fail at once and no witness confirms it: the monitor's own network is suspect`));
    });
  }

  // Targets a witness still answering this monitor confirms down are a fault in the fleet, not the monitor's network.
  const witnessed = [
    { name: "both Redis hosts of the seed topology, confirmed by both HAProxies", diagnosis: "PairDown", down: 4, confirmed: 4, kind: "PairDown" },
    { name: "both Redis hosts, one port confirmed (3 of 7 unconfirmed)", diagnosis: "PairDown", down: 4, confirmed: 1, kind: "PairDown" },
    { name: "both Redis hosts, nothing confirmed (4 of 7)", diagnosis: "PairDown", down: 4, confirmed: 0, kind: "isolated" },
    { name: "a dead primary confirmed, with 4 of 7 down", diagnosis: "DeadPrimary", down: 4, confirmed: 2, kind: "recover" },
    { name: "every target down, every one confirmed", diagnosis: "DeadPrimary", down: 7, confirmed: 7, kind: "recover" },
  ] as const;
  for (const row of witnessed) {
    test(`${row.name}: ${row.down} down, ${row.confirmed} confirmed of 7 -> ${row.kind}`, () => {
      const d = only(decide(input([diagnosis(row.diagnosis)], { down: row.down, confirmed: row.confirmed, total: 7 })));
      if (row.kind === "recover") assertRecover(d, "failed_redis", "redis1", PAIR);
      else if (row.kind === "isolated") assertAlert(d, /^4 of 7 targets fail at once and no witness confirms it: the monitor's own network is suspect/);
      else assertAlert(d, new RegExp(`^${DIAGNOSES.PairDown.description}$`));
    });
  }

  test("too many targets down: every actionable diagnosis is an alert, not just the first", () => {
    const out = decide(input([dead, diagnosis("HaproxyDown")], { down: 5, total: 6 }));
    assert.deepEqual(
      out.map((d) => d.kind),
      ["alert", "alert"],
    );
    for (const d of out) assertAlert(d, /monitor's own network/);
  });
});

describe("decide: the promotion guard", () => {
  const estimate = (bytes: number, ms: number) => ({ bytes, ms, atLeast: false, lastAckOffset: 10_000 + bytes, lastAckAt: NOW - 200, candidateOffset: 10_000 });
  const withLoss = (name: DiagnosisName, bytes: number, ms: number): Diagnosis => ({
    ...diagnosis(name),
    targets: ["redis1:9001"],
    dataLoss: [{ target: "redis1:9001", candidate: "redis2:9001", estimate: estimate(bytes, ms) }],
  });
  const rows = [
    { name: "nothing missing", bytes: 0, ms: 0, kind: "recover" },
    { name: "a few bytes (pings)", bytes: 28, ms: 0, kind: "recover" },
    { name: "exactly the byte bound", bytes: 65_536, ms: 0, kind: "recover" },
    { name: "one byte over the byte bound", bytes: 65_537, ms: 0, kind: "alert" },
    { name: "exactly the time bound", bytes: 5000, ms: 1000, kind: "recover" },
    { name: "over the time bound", bytes: 5000, ms: 1001, kind: "alert" },
    { name: "megabytes and seconds behind", bytes: 3 << 20, ms: 8000, kind: "alert" },
  ] as const;
  for (const row of rows) {
    test(`DeadPrimary whose replica misses ${row.name} -> ${row.kind}`, () => {
      const d = only(decide(input([withLoss("DeadPrimary", row.bytes, row.ms)])));
      if (row.kind === "recover") assertRecover(d, "failed_redis", "redis1", PAIR);
      else assertAlert(d, /automatic promotion refused: redis2:9001 misses .* of what redis1:9001 had acknowledged .*over recovery\.maxDataLoss.*failoverd promote --host redis2 --accept-data-loss/);
    });
  }

  test("the refusal names the bound and the estimate", () => {
    const d = only(decide(input([withLoss("DeadPrimary", 3 << 20, 8000)])));
    assertAlert(d, /about 3\.0 MiB \(about 8\.0 s of writes\).*recovery\.maxDataLossBytes 64\.0 KiB and recovery\.maxDataLossMs 1000 ms/);
  });

  test("a primary restarted empty is guarded the same way", () => {
    assertAlert(only(decide(input([withLoss("PrimaryRestartedEmpty", 3 << 20, 8000)]))), /automatic promotion refused/);
  });

  test("an operator's --accept-data-loss for the pair lets it through", () => {
    const d = only(decide(input([withLoss("DeadPrimary", 3 << 20, 8000)], { state: { acceptDataLoss: new Set([PAIR]) } })));
    assertRecover(d, "failed_redis", "redis1", PAIR);
  });

  test("the bounds come from the config", () => {
    const d = only(decide(input([withLoss("DeadPrimary", 3 << 20, 8000)], { recovery: { maxDataLossBytes: 4 << 20, maxDataLossMs: 10_000 } })));
    assertRecover(d, "failed_redis", "redis1", PAIR);
  });

  test("a replica rebuild is never refused for data loss (nothing is promoted)", () => {
    assertRecover(only(decide(input([withLoss("DeadReplica", 3 << 20, 8000)]))), "failed_redis", "redis2", PAIR);
  });
});

describe("groupOf", () => {
  const t = testTopology();
  test("both hosts of a pair share a group", () => {
    assert.equal(groupOf(t, "redis1"), PAIR);
    assert.equal(groupOf(t, "redis2"), PAIR);
  });
  test("the HAProxies share one group", () => {
    assert.equal(groupOf(t, "haproxy1"), TIER);
    assert.equal(groupOf(t, "haproxy2"), TIER);
  });
});

describe("PLAYBOOK_FOR", () => {
  test("covers exactly the diagnoses the detector names", () => {
    assert.deepEqual(Object.keys(PLAYBOOK_FOR).sort(), [...NAMES].sort());
  });

  const expected: Record<DiagnosisName, string | null> = {
    NoProblem: null,
    DeadPrimary: "failed_redis",
    PrimaryRestartedEmpty: "failed_redis",
    PrimaryRestarted: null,
    ReplicaLinkDown: null,
    ReplicaLagging: null,
    UnreachablePrimary: null,
    DeadReplica: "failed_redis",
    UnreachableReplica: null,
    PairDown: null,
    TwoPrimaries: null,
    HaproxyDown: "failed_haproxy",
    UnreachableHaproxy: null,
    AppProxyDown: null,
  };
  for (const name of NAMES) {
    test(`${name} (${DIAGNOSES[name].actionable ? "actionable" : "alert only"}) -> ${expected[name] ?? "null"}`, () => {
      assert.equal(PLAYBOOK_FOR[name] !== null, DIAGNOSES[name].actionable, "a playbook exactly for the actionable diagnoses");
      assert.equal(PLAYBOOK_FOR[name], expected[name]);
      const pb = PLAYBOOK_FOR[name];
      if (pb) {
        const playbook = playbookFor(pb, HOST_OF[name]);
        assert.deepEqual([playbook.name, playbook.host], [pb, HOST_OF[name]]);
      }
    });
  }
});
