/**
 * The detector, as tables: `observe` (fall / rise), `nextCheckDelay` (fast re-check only on crash evidence) and
 * `diagnose` (witnesses decide between Dead* and Unreachable*). Observations are built by hand; no servers.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  type CheckRules,
  DIAGNOSES,
  type DetectorInput,
  type Diagnosis,
  diagnose,
  nextCheckDelay,
  observe,
  type TargetHealth,
} from "../../src/checks/detector.ts";
import type { HaproxyObservation, HaproxyServerView, Observation, RedisObservation } from "../../src/checks/observation.ts";
import type { ProbeFailureKind } from "../../src/errors.ts";
import { parseTopology } from "../../src/topology/load.ts";

/** The seed topology (config/sandbox.yaml's shape), inline so that edits to the sandbox never move these tables. */
const TOPOLOGY_YAML = `
topology: detector
hosts:
  redis1: { role: redis, address: 127.0.1.1, ports: [9001, 9002] }
  redis2: { role: redis, address: 127.0.1.2, ports: [9001, 9002] }
  haproxy1: { role: haproxy, address: 127.0.2.1, frontends: { 8001: 9001, 8002: 9002 }, adminPort: 9999 }
  haproxy2: { role: haproxy, address: 127.0.2.2, frontends: { 8001: 9001, 8002: 9002 }, adminPort: 9999 }
  app:
    role: app
    address: 127.0.3.1
    frontends: { 7001: 8001, 7002: 8002 }
    upstreams: [haproxy1, haproxy2]
    adminPort: 9999
pairs:
  - [redis1, redis2]
checks: { intervalMs: 1000, timeoutMs: 500, fall: 3, rise: 2 }
`;
const topology = parseTopology(TOPOLOGY_YAML, "detector-test");
const DECLARED = new Map([...topology.hosts.values()].map((h) => [h.name, h.address]));
const declaredAddress = (host: string): string => {
  const a = DECLARED.get(host);
  if (!a) throw new Error(`no host ${host} in the sandbox topology`);
  return a;
};

const PORTS = [9001, 9002] as const;
const FALL = 3;

// ---------------------------------------------------------------------------------------------------------------
// Observation builders
// ---------------------------------------------------------------------------------------------------------------

function redisBase(host: string, port: number, address = declaredAddress(host)) {
  return { type: "redis" as const, target: `${host}:${port}`, host, port, address, at: 1_000, latencyMs: 1 };
}

type Replica = { host: string; online?: boolean; address?: string };

/** A healthy primary; `replicas` are the servers INFO replication lists (online unless said otherwise). */
function primaryObs(host: string, port: number, replicas: readonly Replica[] = []): RedisObservation {
  return {
    ...redisBase(host, port),
    ok: true,
    role: "primary",
    offset: 5_000,
    replicas: replicas.map((r) => ({
      address: r.address ?? declaredAddress(r.host),
      port,
      offset: 5_000,
      online: r.online ?? true,
      lag: 0,
    })),
  };
}

/** A healthy replica of `primary` (a host name, or a literal address with `primaryAddress`). */
function replicaObs(
  host: string,
  port: number,
  o: { primary?: string; primaryAddress?: string; linkUp: boolean },
): RedisObservation {
  return {
    ...redisBase(host, port),
    ok: true,
    role: "replica",
    offset: 4_900,
    primaryAddress: o.primaryAddress ?? declaredAddress(o.primary ?? "redis1"),
    primaryPort: port,
    linkUp: o.linkUp,
    syncing: false,
  };
}

function failedRedisObs(host: string, port: number, kind: ProbeFailureKind = "refused"): RedisObservation {
  return { ...redisBase(host, port), ok: false, failure: { kind, message: `${kind} on ${host}:${port}` } };
}

type ServerState = "up" | "down" | "maint";

/** An HAProxy's view of one Redis server. */
function view(server: string, port: number, state: ServerState): HaproxyServerView {
  return {
    backend: `be_redis_${port}`,
    server,
    address: declaredAddress(server),
    port,
    up: state === "up",
    maint: state === "maint",
  };
}

/** An app-side HAProxy's view of one upstream HAProxy (its relay backend for listen port 7001). */
function relayView(server: string, state: ServerState, address = declaredAddress(server)): HaproxyServerView {
  return { backend: "be_relay_7001", server, address, port: 8001, up: state === "up", maint: state === "maint" };
}

function haproxyObs(host: string, servers: readonly HaproxyServerView[], ok = true): HaproxyObservation {
  const role: HaproxyObservation["role"] = host === "app" ? "app" : "haproxy";
  const base = { type: "haproxy" as const, target: host, host, role, address: declaredAddress(host), at: 1_000, latencyMs: 1 };
  return ok
    ? { ...base, ok: true, closedFrontends: [], servers }
    : { ...base, ok: false, failure: { kind: "timeout", message: `${host} timed out` }, closedFrontends: [], servers: [] };
}

// ---------------------------------------------------------------------------------------------------------------
// Health builders: what `observe` would have produced
// ---------------------------------------------------------------------------------------------------------------

function up(obs: Observation): TargetHealth {
  return { target: obs.target, status: "up", failures: 0, successes: 5, since: 0, last: obs };
}

function down(obs: Observation, failures = FALL): TargetHealth {
  return { target: obs.target, status: "down", failures, successes: 0, since: 900, failingSince: 500, last: obs };
}

/** Failing, but not yet `fall` times: still up. */
function failing(obs: Observation, failures = FALL - 1): TargetHealth {
  return { target: obs.target, status: "up", failures, successes: 0, since: 0, failingSince: 500, last: obs };
}

/** Every port of a Redis host down (refused). */
const redisDown = (host: string, ports: readonly number[] = PORTS, kind: ProbeFailureKind = "refused") =>
  ports.map((p) => down(failedRedisObs(host, p, kind)));

const primaryUp = (host: string, replicas: readonly Replica[] = [], ports: readonly number[] = PORTS) =>
  ports.map((p) => up(primaryObs(host, p, replicas)));

const replicaUp = (host: string, o: { primary?: string; primaryAddress?: string; linkUp: boolean }, ports: readonly number[] = PORTS) =>
  ports.map((p) => up(replicaObs(host, p, o)));

/** Both HAProxies answering, each with the given state for every port of every Redis host listed. */
function haproxiesSee(states: Record<string, ServerState>): TargetHealth[] {
  const servers = Object.entries(states).flatMap(([server, state]) => PORTS.map((p) => view(server, p, state)));
  return ["haproxy1", "haproxy2"].map((h) => up(haproxyObs(h, servers)));
}

const appSees = (states: Record<string, ServerState>): TargetHealth =>
  up(haproxyObs("app", Object.entries(states).map(([s, st]) => relayView(s, st))));

interface Scenario {
  readonly health: readonly TargetHealth[];
  readonly roles?: Record<string, "primary" | "replica">;
  readonly unmonitored?: readonly string[];
  readonly addresses?: Record<string, string>;
}

/** Every port of `host` with the same role. */
const rolesOf = (host: string, role: "primary" | "replica") => Object.fromEntries(PORTS.map((p) => [`${host}:${p}`, role]));

/** The usual roles: redis1 primary, redis2 replica, on every port. */
const USUAL_ROLES = { ...rolesOf("redis1", "primary"), ...rolesOf("redis2", "replica") };

function input(s: Scenario): DetectorInput {
  const health = new Map<string, TargetHealth>();
  for (const h of s.health) {
    assert.ok(!health.has(h.target), `scenario lists ${h.target} twice`);
    health.set(h.target, h);
  }
  return {
    topology,
    addressOf: (host) => s.addresses?.[host] ?? declaredAddress(host),
    health,
    lastRoles: new Map(Object.entries(s.roles ?? {})),
    ...(s.unmonitored ? { unmonitored: new Set(s.unmonitored) } : {}),
  };
}

const summary = (ds: readonly Diagnosis[]) => ds.map((d) => ({ name: d.name, host: d.host, targets: [...d.targets] }));

// ---------------------------------------------------------------------------------------------------------------
// observe
// ---------------------------------------------------------------------------------------------------------------

function obsAt(at: number, ok: boolean, kind: ProbeFailureKind = "refused"): RedisObservation {
  const base = { ...redisBase("redis1", 9001), at };
  return ok ? { ...base, ok: true, role: "primary", replicas: [] } : { ...base, ok: false, failure: { kind, message: kind } };
}

/** Folds a sequence of "ok" / "fail" into healths; returns the status after each step. */
function run(steps: readonly ("ok" | "fail")[], rules: CheckRules, start?: TargetHealth): { statuses: string[]; last: TargetHealth } {
  let h = start;
  const statuses: string[] = [];
  steps.forEach((s, i) => {
    h = observe(h, obsAt(1_000 + i * 100, s === "ok"), rules);
    statuses.push(h.status);
  });
  assert.ok(h, "at least one step");
  return { statuses, last: h };
}

const RULES: CheckRules = { fall: 3, rise: 2, intervalMs: 1000, fastIntervalMs: 100 };

describe("observe: fall and rise", () => {
  const table: readonly { name: string; rules?: Partial<CheckRules>; steps: ("ok" | "fail")[]; statuses: string[] }[] = [
    { name: "unknown -> up on the first success", steps: ["ok"], statuses: ["up"] },
    {
      name: "unknown -> down after exactly `fall` failures, not before",
      steps: ["fail", "fail", "fail"],
      statuses: ["unknown", "unknown", "down"],
    },
    {
      name: "up -> down after exactly `fall` consecutive failures",
      steps: ["ok", "fail", "fail", "fail", "fail"],
      statuses: ["up", "up", "up", "down", "down"],
    },
    {
      name: "a success resets the failure count",
      steps: ["ok", "fail", "fail", "ok", "fail", "fail", "ok", "fail", "fail"],
      statuses: ["up", "up", "up", "up", "up", "up", "up", "up", "up"],
    },
    {
      name: "the failure count restarts after a success: fall more failures are needed",
      steps: ["ok", "fail", "fail", "ok", "fail", "fail", "fail"],
      statuses: ["up", "up", "up", "up", "up", "up", "down"],
    },
    {
      name: "down -> up only after `rise` consecutive successes",
      steps: ["fail", "fail", "fail", "ok", "ok"],
      statuses: ["unknown", "unknown", "down", "down", "up"],
    },
    {
      name: "a failure while rising resets the success count",
      steps: ["fail", "fail", "fail", "ok", "fail", "ok", "ok"],
      statuses: ["unknown", "unknown", "down", "down", "down", "down", "up"],
    },
    {
      name: "rise 3",
      rules: { rise: 3 },
      steps: ["ok", "fail", "fail", "fail", "ok", "ok", "ok"],
      statuses: ["up", "up", "up", "down", "down", "down", "up"],
    },
    { name: "fall 1: the first failure is down", rules: { fall: 1 }, steps: ["ok", "fail"], statuses: ["up", "down"] },
    {
      name: "rise 1: the first success after down is up",
      rules: { rise: 1 },
      steps: ["fail", "fail", "fail", "ok"],
      statuses: ["unknown", "unknown", "down", "up"],
    },
    {
      name: "fall 5",
      rules: { fall: 5 },
      steps: ["ok", "fail", "fail", "fail", "fail", "fail"],
      statuses: ["up", "up", "up", "up", "up", "down"],
    },
  ];
  for (const row of table) {
    test(row.name, () => {
      assert.deepEqual(run(row.steps, { ...RULES, ...row.rules }).statuses, row.statuses);
    });
  }

  test("counts consecutive failures and successes, the current run only", () => {
    const { last } = run(["ok", "ok", "fail", "fail"], RULES);
    assert.equal(last.failures, 2);
    assert.equal(last.successes, 0);
    const again = run(["fail", "ok", "ok"], RULES, last);
    assert.equal(again.last.failures, 0);
    assert.equal(again.last.successes, 2);
  });

  test("failingSince is the first failure of the current run; since is when the status began", () => {
    let h = observe(undefined, obsAt(1_000, true), RULES);
    assert.equal(h.since, 1_000);
    assert.equal(h.failingSince, undefined);
    h = observe(h, obsAt(1_100, false), RULES);
    assert.equal(h.failingSince, 1_100);
    assert.equal(h.since, 1_000, "still up: the status did not change");
    h = observe(h, obsAt(1_200, false), RULES);
    h = observe(h, obsAt(1_300, false), RULES);
    assert.equal(h.status, "down");
    assert.equal(h.since, 1_300, "down since the fall-th failure");
    assert.equal(h.failingSince, 1_100, "the fault was first seen at the first failure");
    h = observe(h, obsAt(1_400, true), RULES);
    h = observe(h, obsAt(1_500, false), RULES);
    assert.equal(h.failingSince, 1_500, "a new run of failures starts a new failingSince");
  });

  test("keeps the last observation and its target", () => {
    const o = obsAt(1_234, false, "timeout");
    const h = observe(undefined, o, RULES);
    assert.equal(h.last, o);
    assert.equal(h.target, "redis1:9001");
  });
});

// ---------------------------------------------------------------------------------------------------------------
// nextCheckDelay
// ---------------------------------------------------------------------------------------------------------------

describe("nextCheckDelay", () => {
  const after = (kinds: readonly (ProbeFailureKind | "ok")[], rules: CheckRules = RULES): TargetHealth => {
    let h: TargetHealth | undefined = observe(undefined, obsAt(0, true), rules);
    kinds.forEach((k, i) => {
      h = observe(h, obsAt(100 * (i + 1), k === "ok", k === "ok" ? "refused" : k), rules);
    });
    return h;
  };
  const table: readonly { name: string; kinds: (ProbeFailureKind | "ok")[]; rules?: CheckRules; delay: number }[] = [
    { name: "healthy: the normal interval", kinds: [], delay: 1000 },
    { name: "after a refused connection: the fast interval", kinds: ["refused"], delay: 100 },
    { name: "after a reset connection: the fast interval", kinds: ["reset"], delay: 100 },
    { name: "after two refusals, not yet down: still fast", kinds: ["refused", "refused"], delay: 100 },
    { name: "after a timeout: never fast (a hang is not confirmed sooner)", kinds: ["timeout"], delay: 1000 },
    { name: "after refused then a timeout: the timeout decides", kinds: ["refused", "timeout"], delay: 1000 },
    { name: "after an error reply: normal", kinds: ["error-reply"], delay: 1000 },
    { name: "after a wrong role: normal", kinds: ["wrong-role"], delay: 1000 },
    { name: "while loading: normal", kinds: ["loading"], delay: 1000 },
    { name: "after a protocol error: normal", kinds: ["protocol"], delay: 1000 },
    { name: "confirmed down by refusals: back to normal", kinds: ["refused", "refused", "refused"], delay: 1000 },
    { name: "confirmed down by resets: back to normal", kinds: ["reset", "reset", "reset", "reset"], delay: 1000 },
    { name: "a success after a refusal: normal", kinds: ["refused", "ok"], delay: 1000 },
    {
      name: "no fastIntervalMs configured: always normal",
      kinds: ["refused"],
      rules: { fall: 3, rise: 2, intervalMs: 1000 },
      delay: 1000,
    },
    {
      name: "a fast interval longer than the interval is capped at the interval",
      kinds: ["refused"],
      rules: { fall: 3, rise: 2, intervalMs: 200, fastIntervalMs: 500 },
      delay: 200,
    },
  ];
  for (const row of table) {
    test(row.name, () => {
      const rules = row.rules ?? RULES;
      assert.equal(nextCheckDelay(after(row.kinds, rules), rules), row.delay);
    });
  }

  test("a target never seen healthy that refuses: fast until it is confirmed down", () => {
    let h = observe(undefined, obsAt(0, false, "refused"), RULES);
    assert.equal(h.status, "unknown");
    assert.equal(nextCheckDelay(h, RULES), 100);
    h = observe(h, obsAt(100, false, "refused"), RULES);
    h = observe(h, obsAt(200, false, "refused"), RULES);
    assert.equal(h.status, "down");
    assert.equal(nextCheckDelay(h, RULES), 1000);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// diagnose
// ---------------------------------------------------------------------------------------------------------------

const ALL_PORTS = (host: string) => PORTS.map((p) => `${host}:${p}`);

/** The healthy fleet: redis1 primary of redis2, both HAProxies see redis1 up, the app sees both HAProxies up. */
const HEALTHY: readonly TargetHealth[] = [
  ...primaryUp("redis1", [{ host: "redis2" }]),
  ...replicaUp("redis2", { primary: "redis1", linkUp: true }),
  ...haproxiesSee({ redis1: "up", redis2: "down" }),
  appSees({ haproxy1: "up", haproxy2: "up" }),
];

interface DiagnoseCase {
  readonly name: string;
  readonly scenario: Scenario;
  readonly expect: readonly { name: Diagnosis["name"]; host: string; targets: string[] }[];
}

const diagnoseCases: readonly DiagnoseCase[] = [
  { name: "a healthy fleet: no diagnosis", scenario: { health: HEALTHY, roles: USUAL_ROLES }, expect: [] },
  {
    name: "nothing observed yet: no diagnosis",
    scenario: { health: [] },
    expect: [],
  },
  {
    name: "a primary timing out fewer than `fall` times: no diagnosis yet",
    scenario: {
      health: [
        ...PORTS.map((p) => failing(failedRedisObs("redis1", p, "timeout"))),
        ...replicaUp("redis2", { primary: "redis1", linkUp: false }),
      ],
      roles: USUAL_ROLES,
    },
    expect: [],
  },
  {
    name: "a primary refusing fewer than `fall` times, its replica's link down since: DeadPrimary, early (strong evidence)",
    scenario: {
      health: [
        ...PORTS.map((p) => failing(failedRedisObs("redis1", p))),
        ...replicaUp("redis2", { primary: "redis1", linkUp: false }),
      ],
      roles: USUAL_ROLES,
    },
    expect: [{ name: "DeadPrimary", host: "redis1", targets: ALL_PORTS("redis1") }],
  },
  {
    name: "a primary refusing fewer than `fall` times, its replica still linked: no diagnosis yet",
    scenario: {
      health: [
        ...PORTS.map((p) => failing(failedRedisObs("redis1", p))),
        ...replicaUp("redis2", { primary: "redis1", linkUp: true }),
      ],
      roles: USUAL_ROLES,
    },
    expect: [],
  },
  // Primary down.
  {
    name: "DeadPrimary: the replica's link to it is down",
    scenario: {
      health: [...redisDown("redis1"), ...replicaUp("redis2", { primary: "redis1", linkUp: false })],
      roles: USUAL_ROLES,
    },
    expect: [{ name: "DeadPrimary", host: "redis1", targets: ALL_PORTS("redis1") }],
  },
  {
    name: "DeadPrimary: one port down, confirmed by its replica",
    scenario: {
      health: [
        ...redisDown("redis1", [9002]),
        up(primaryObs("redis1", 9001, [{ host: "redis2" }])),
        up(replicaObs("redis2", 9001, { primary: "redis1", linkUp: true })),
        up(replicaObs("redis2", 9002, { primary: "redis1", linkUp: false })),
      ],
      roles: USUAL_ROLES,
    },
    expect: [{ name: "DeadPrimary", host: "redis1", targets: ["redis1:9002"] }],
  },
  {
    name: "DeadPrimary: every answering HAProxy marks it down (not maint), the replica not observed",
    scenario: {
      health: [...redisDown("redis1"), ...haproxiesSee({ redis1: "down", redis2: "up" })],
      roles: USUAL_ROLES,
    },
    expect: [{ name: "DeadPrimary", host: "redis1", targets: ALL_PORTS("redis1") }],
  },
  {
    name: "DeadPrimary: an HAProxy that does not answer is not asked; the one that answers marks it down",
    scenario: {
      health: [
        ...redisDown("redis1"),
        up(haproxyObs("haproxy1", PORTS.map((p) => view("redis1", p, "down")))),
        failing(haproxyObs("haproxy2", [], false), 1),
      ],
      roles: USUAL_ROLES,
    },
    expect: [{ name: "DeadPrimary", host: "redis1", targets: ALL_PORTS("redis1") }],
  },
  {
    name: "UnreachablePrimary: the replica still has a live link (the monitor is partitioned)",
    scenario: {
      health: [...redisDown("redis1", PORTS, "timeout"), ...replicaUp("redis2", { primary: "redis1", linkUp: true })],
      roles: USUAL_ROLES,
    },
    expect: [{ name: "UnreachablePrimary", host: "redis1", targets: ALL_PORTS("redis1") }],
  },
  {
    name: "UnreachablePrimary: an HAProxy still sees it up",
    scenario: {
      health: [
        ...redisDown("redis1"),
        up(haproxyObs("haproxy1", PORTS.map((p) => view("redis1", p, "up")))),
        up(haproxyObs("haproxy2", PORTS.map((p) => view("redis1", p, "down")))),
      ],
      roles: USUAL_ROLES,
    },
    expect: [{ name: "UnreachablePrimary", host: "redis1", targets: ALL_PORTS("redis1") }],
  },
  {
    name: "UnreachablePrimary: HAProxies that hold it in maint are not witnesses of a crash",
    scenario: {
      health: [...redisDown("redis1"), ...haproxiesSee({ redis1: "maint" })],
      roles: USUAL_ROLES,
    },
    expect: [{ name: "UnreachablePrimary", host: "redis1", targets: ALL_PORTS("redis1") }],
  },
  {
    name: "UnreachablePrimary: no witness at all (replica and HAProxies not observed)",
    scenario: { health: redisDown("redis1"), roles: USUAL_ROLES },
    expect: [{ name: "UnreachablePrimary", host: "redis1", targets: ALL_PORTS("redis1") }],
  },
  {
    name: "UnreachablePrimary: no HAProxy answers and the replica follows another address",
    scenario: {
      health: [
        ...redisDown("redis1"),
        ...replicaUp("redis2", { primaryAddress: "127.0.9.9", linkUp: false }),
        failing(haproxyObs("haproxy1", [], false), 1),
        failing(haproxyObs("haproxy2", [], false), 1),
      ],
      roles: USUAL_ROLES,
    },
    expect: [{ name: "UnreachablePrimary", host: "redis1", targets: ALL_PORTS("redis1") }],
  },
  {
    name: "UnreachablePrimary: one port confirmed, the other not: not every primary is confirmed",
    scenario: {
      health: [
        ...redisDown("redis1"),
        up(replicaObs("redis2", 9001, { primary: "redis1", linkUp: false })),
        up(replicaObs("redis2", 9002, { primary: "redis1", linkUp: true })),
      ],
      roles: USUAL_ROLES,
    },
    expect: [{ name: "UnreachablePrimary", host: "redis1", targets: ALL_PORTS("redis1") }],
  },
  // Replica down.
  {
    name: "DeadReplica: the primary no longer lists it",
    scenario: {
      health: [...primaryUp("redis1", []), ...redisDown("redis2")],
      roles: USUAL_ROLES,
    },
    expect: [{ name: "DeadReplica", host: "redis2", targets: ALL_PORTS("redis2") }],
  },
  {
    name: "DeadReplica: the primary lists it, but not online",
    scenario: {
      health: [...primaryUp("redis1", [{ host: "redis2", online: false }]), ...redisDown("redis2")],
      roles: USUAL_ROLES,
    },
    expect: [{ name: "DeadReplica", host: "redis2", targets: ALL_PORTS("redis2") }],
  },
  {
    name: "DeadReplica: the primary lists another replica online, not this one",
    scenario: {
      health: [...primaryUp("redis1", [{ host: "redis2", address: "127.0.1.99" }]), ...redisDown("redis2")],
      roles: USUAL_ROLES,
    },
    expect: [{ name: "DeadReplica", host: "redis2", targets: ALL_PORTS("redis2") }],
  },
  {
    name: "UnreachableReplica: the primary still lists it online",
    scenario: {
      health: [...primaryUp("redis1", [{ host: "redis2" }]), ...redisDown("redis2", PORTS, "timeout")],
      roles: USUAL_ROLES,
    },
    expect: [{ name: "UnreachableReplica", host: "redis2", targets: ALL_PORTS("redis2") }],
  },
  {
    name: "UnreachableReplica: its primary is not reachable to confirm",
    scenario: { health: redisDown("redis2"), roles: USUAL_ROLES },
    expect: [{ name: "UnreachableReplica", host: "redis2", targets: ALL_PORTS("redis2") }],
  },
  // Both down.
  {
    name: "PairDown: both hosts down on every port, reported once",
    scenario: { health: [...redisDown("redis1"), ...redisDown("redis2")], roles: USUAL_ROLES },
    expect: [{ name: "PairDown", host: "redis1", targets: [...ALL_PORTS("redis1"), ...ALL_PORTS("redis2")] }],
  },
  {
    name: "PairDown: both hosts down on the first port only, reported once",
    scenario: {
      health: [
        ...redisDown("redis1", [9001]),
        ...redisDown("redis2", [9001]),
        up(primaryObs("redis1", 9002, [{ host: "redis2" }])),
        up(replicaObs("redis2", 9002, { primary: "redis1", linkUp: true })),
      ],
      roles: USUAL_ROLES,
    },
    expect: [{ name: "PairDown", host: "redis1", targets: ["redis1:9001", "redis2:9001"] }],
  },
  {
    // Reported twice today: the de-duplication in diagnose() looks for `${host}:${pair.ports[0]}` only.
    name: "PairDown: both hosts down on the second port only, reported once",
    scenario: {
      health: [
        ...redisDown("redis1", [9002]),
        ...redisDown("redis2", [9002]),
        up(primaryObs("redis1", 9001, [{ host: "redis2" }])),
        up(replicaObs("redis2", 9001, { primary: "redis1", linkUp: true })),
      ],
      roles: USUAL_ROLES,
    },
    expect: [{ name: "PairDown", host: "redis1", targets: ["redis1:9002", "redis2:9002"] }],
  },
  {
    name: "PairDown: the host is down and its twin is unmonitored (under recovery): nothing to promote",
    scenario: { health: redisDown("redis2"), roles: USUAL_ROLES, unmonitored: ["redis1"] },
    expect: [{ name: "PairDown", host: "redis2", targets: [...ALL_PORTS("redis2"), ...ALL_PORTS("redis1")] }],
  },
  // Split brain.
  {
    name: "TwoPrimaries: both answer as primary on one port",
    scenario: {
      health: [
        ...primaryUp("redis1", []),
        up(primaryObs("redis2", 9001)),
        up(replicaObs("redis2", 9002, { primary: "redis1", linkUp: true })),
      ],
      roles: { ...USUAL_ROLES, "redis2:9001": "primary" },
    },
    expect: [{ name: "TwoPrimaries", host: "redis1", targets: ["redis1:9001", "redis2:9001"] }],
  },
  {
    name: "TwoPrimaries: both answer as primary on every port",
    scenario: { health: [...primaryUp("redis1"), ...primaryUp("redis2")], roles: {} },
    expect: [
      {
        name: "TwoPrimaries",
        host: "redis1",
        targets: ["redis1:9001", "redis2:9001", "redis1:9002", "redis2:9002"],
      },
    ],
  },
  // HAProxy tier.
  {
    name: "HaproxyDown: the app host's view confirms it",
    scenario: {
      health: [...HEALTHY.filter((h) => h.target !== "haproxy1" && h.target !== "app"), down(haproxyObs("haproxy1", [], false)), appSees({ haproxy1: "down", haproxy2: "up" })],
      roles: USUAL_ROLES,
    },
    expect: [{ name: "HaproxyDown", host: "haproxy1", targets: ["haproxy1"] }],
  },
  {
    name: "UnreachableHaproxy: the app still sees it UP",
    scenario: {
      health: [down(haproxyObs("haproxy2", [], false)), appSees({ haproxy1: "up", haproxy2: "up" })],
    },
    expect: [{ name: "UnreachableHaproxy", host: "haproxy2", targets: ["haproxy2"] }],
  },
  {
    name: "AppProxyDown: an app-side HAProxy is down (alert only)",
    scenario: { health: [...HEALTHY.filter((h) => h.target !== "app"), down(haproxyObs("app", [], false))], roles: USUAL_ROLES },
    expect: [{ name: "AppProxyDown", host: "app", targets: ["app"] }],
  },
  // Unmonitored hosts.
  {
    name: "an unmonitored Redis host is never diagnosed, even when confirmed dead",
    scenario: {
      health: [...redisDown("redis1"), ...replicaUp("redis2", { primary: "redis1", linkUp: false })],
      roles: USUAL_ROLES,
      unmonitored: ["redis1"],
    },
    expect: [],
  },
  {
    name: "an unmonitored HAProxy is never diagnosed",
    scenario: {
      health: [down(haproxyObs("haproxy1", [], false)), appSees({ haproxy1: "down", haproxy2: "up" })],
      unmonitored: ["haproxy1"],
    },
    expect: [],
  },
  {
    name: "an unmonitored app host is never diagnosed",
    scenario: { health: [down(haproxyObs("app", [], false))], unmonitored: ["app"] },
    expect: [],
  },
  {
    name: "TwoPrimaries is not reported while one of the pair is unmonitored",
    scenario: { health: [...primaryUp("redis1"), ...primaryUp("redis2")], unmonitored: ["redis2"] },
    expect: [],
  },
  // Unknown roles.
  {
    name: "role unknown: a replica naming the dead host's address as its primary => the dead host was primary",
    scenario: { health: [...redisDown("redis1"), ...replicaUp("redis2", { primary: "redis1", linkUp: false })], roles: {} },
    expect: [{ name: "DeadPrimary", host: "redis1", targets: ALL_PORTS("redis1") }],
  },
  {
    name: "role unknown: the replica names the dead host's current (replaced) address",
    scenario: {
      health: [...redisDown("redis1"), ...replicaUp("redis2", { primaryAddress: "127.0.1.11", linkUp: false })],
      roles: {},
      addresses: { redis1: "127.0.1.11" },
    },
    expect: [{ name: "DeadPrimary", host: "redis1", targets: ALL_PORTS("redis1") }],
  },
  {
    name: "role unknown: a replica naming the host's old address is no witness",
    scenario: {
      health: [...redisDown("redis1"), ...replicaUp("redis2", { primaryAddress: "127.0.1.1", linkUp: false })],
      roles: {},
      addresses: { redis1: "127.0.1.11" },
    },
    expect: [{ name: "UnreachablePrimary", host: "redis1", targets: ALL_PORTS("redis1") }],
  },
  {
    name: "role unknown: the twin answers as primary => the dead host was a replica",
    scenario: { health: [...primaryUp("redis1", []), ...redisDown("redis2")], roles: {} },
    expect: [{ name: "DeadReplica", host: "redis2", targets: ALL_PORTS("redis2") }],
  },
  {
    name: "role unknown and no twin view: assume primary, which needs the stronger witnesses",
    scenario: { health: redisDown("redis2"), roles: {} },
    expect: [{ name: "UnreachablePrimary", host: "redis2", targets: ALL_PORTS("redis2") }],
  },
  {
    name: "a known role wins over the twin's view",
    scenario: {
      health: [...redisDown("redis2"), ...replicaUp("redis1", { primary: "redis2", linkUp: false })],
      roles: USUAL_ROLES,
    },
    expect: [{ name: "UnreachableReplica", host: "redis2", targets: ALL_PORTS("redis2") }],
  },
];

describe("diagnose", () => {
  for (const c of diagnoseCases) {
    test(c.name, () => {
      const ds = diagnose(input(c.scenario));
      assert.deepEqual(summary(ds), c.expect);
      for (const d of ds) {
        assert.ok(d.evidence.length > 0, `${d.name} carries evidence`);
        for (const e of d.evidence) assert.ok(typeof e === "string" && e.length > 0);
      }
    });
  }

  test("the evidence of a DeadPrimary names the witness", () => {
    const [d] = diagnose(
      input({
        health: [...redisDown("redis1"), ...replicaUp("redis2", { primary: "redis1", linkUp: false })],
        roles: USUAL_ROLES,
      }),
    );
    assert.equal(d?.name, "DeadPrimary");
    assert.ok(d?.evidence.some((e) => e.startsWith("redis1:9001: 3 failed checks in a row (refused")), JSON.stringify(d?.evidence));
    assert.ok(d?.evidence.some((e) => e.includes("redis2:9001 (replica) confirms")), JSON.stringify(d?.evidence));
  });

  test("the evidence of an UnreachablePrimary says which HAProxy still sees it", () => {
    const [d] = diagnose(
      input({
        health: [...redisDown("redis1"), up(haproxyObs("haproxy2", PORTS.map((p) => view("redis1", p, "up"))))],
        roles: USUAL_ROLES,
      }),
    );
    assert.equal(d?.name, "UnreachablePrimary");
    assert.ok(d?.evidence.some((e) => e.includes("haproxy2 still see redis1:9001 up")), JSON.stringify(d?.evidence));
  });

  test("only Dead*, PrimaryRestartedEmpty and HaproxyDown are actionable; every other finding only alerts", () => {
    const actionable = Object.entries(DIAGNOSES)
      .filter(([, d]) => d.actionable)
      .map(([n]) => n)
      .sort();
    assert.deepEqual(actionable, ["DeadPrimary", "DeadReplica", "HaproxyDown", "PrimaryRestartedEmpty"]);
    for (const d of Object.values(DIAGNOSES)) assert.ok(d.description.length > 0);
  });

  test("the input is not changed", () => {
    const i = input({ health: [...redisDown("redis1"), ...redisDown("redis2")], roles: USUAL_ROLES });
    const before = JSON.stringify([...i.health.entries()]);
    diagnose(i);
    diagnose(i);
    assert.equal(JSON.stringify([...i.health.entries()]), before);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Never make it worse: fresh evidence, failing now, identity, replication health
// ---------------------------------------------------------------------------------------------------------------

const at = (obs: RedisObservation, when: number): RedisObservation => ({ ...obs, at: when });
const atH = (obs: HaproxyObservation, when: number): HaproxyObservation => ({ ...obs, at: when });
/** A replica that has never completed a sync since it started (Redis says its link is down since -1). */
const neverSynced = (host: string, port: number): RedisObservation => ({ ...replicaObs(host, port, { primary: "redis1", linkUp: false }), linkDownSeconds: -1 });

interface FreshCase {
  readonly name: string;
  readonly health: readonly TargetHealth[];
  readonly roles?: Record<string, "primary" | "replica">;
  readonly extra?: Partial<DetectorInput>;
  readonly expect: readonly { name: Diagnosis["name"]; host: string; targets: string[] }[];
}

const freshCases: readonly FreshCase[] = [
  {
    name: "down but answering again (waiting for `rise`): not failing now, no diagnosis",
    health: [
      ...PORTS.map((p): TargetHealth => ({ target: `redis1:${p}`, status: "down", failures: 0, successes: 1, since: 900, last: primaryObs("redis1", p, [{ host: "redis2" }]) })),
      ...replicaUp("redis2", { primary: "redis1", linkUp: true }),
      ...haproxiesSee({ redis1: "down", redis2: "down" }),
    ],
    roles: USUAL_ROLES,
    expect: [],
  },
  {
    name: "the replica's link-down was read before the failure began: not a witness",
    health: [...redisDown("redis1", PORTS, "timeout"), ...PORTS.map((p) => up(at(replicaObs("redis2", p, { primary: "redis1", linkUp: false }), 400)))],
    roles: USUAL_ROLES,
    expect: [{ name: "UnreachablePrimary", host: "redis1", targets: ALL_PORTS("redis1") }],
  },
  {
    name: "the HAProxies' 'down' was read before the failure began: not a confirmation (a lagging mark)",
    health: [
      ...redisDown("redis1", PORTS, "timeout"),
      ...["haproxy1", "haproxy2"].map((h) => up(atH(haproxyObs(h, PORTS.map((p) => view("redis1", p, "down"))), 400))),
    ],
    roles: USUAL_ROLES,
    expect: [{ name: "UnreachablePrimary", host: "redis1", targets: ALL_PORTS("redis1") }],
  },
  {
    name: "the HAProxies read after the failure began mark it down: DeadPrimary",
    health: [
      ...redisDown("redis1", PORTS, "timeout"),
      ...["haproxy1", "haproxy2"].map((h) => up(atH(haproxyObs(h, PORTS.map((p) => view("redis1", p, "down"))), 600))),
    ],
    roles: USUAL_ROLES,
    expect: [{ name: "DeadPrimary", host: "redis1", targets: ALL_PORTS("redis1") }],
  },
  {
    name: "the survivor never completed a sync: PairDown (nothing to promote), not DeadPrimary",
    health: [...redisDown("redis1"), ...PORTS.map((p) => up(neverSynced("redis2", p))), ...haproxiesSee({ redis1: "down", redis2: "down" })],
    roles: USUAL_ROLES,
    expect: [{ name: "PairDown", host: "redis1", targets: [...ALL_PORTS("redis1"), ...ALL_PORTS("redis2")] }],
  },
  {
    name: "a never-synced replica's link-down is no witness (no early start on it)",
    health: [...PORTS.map((p) => failing(failedRedisObs("redis1", p))), ...PORTS.map((p) => up(neverSynced("redis2", p)))],
    roles: USUAL_ROLES,
    expect: [],
  },
  {
    name: "a primary restarted with its dataset gone: PrimaryRestartedEmpty, no witness needed",
    health: [...primaryUp("redis1", [{ host: "redis2" }]), ...replicaUp("redis2", { primary: "redis1", linkUp: false })],
    roles: USUAL_ROLES,
    extra: {
      restarts: new Map(
        PORTS.map((p) => [`redis1:${p}`, { target: `redis1:${p}`, at: 1000, datasetLost: true, text: `redis1:${p} restarted with its dataset gone`, before: primaryObs("redis1", p) }]),
      ),
    },
    expect: [{ name: "PrimaryRestartedEmpty", host: "redis1", targets: ALL_PORTS("redis1") }],
  },
  {
    name: "a primary restarted with its data: PrimaryRestarted, alert only",
    health: HEALTHY,
    roles: USUAL_ROLES,
    extra: {
      restarts: new Map([["redis1:9001", { target: "redis1:9001", at: 1000, datasetLost: false, text: "redis1:9001 restarted", before: primaryObs("redis1", 9001) }]]),
    },
    expect: [{ name: "PrimaryRestarted", host: "redis1", targets: ["redis1:9001"] }],
  },
  {
    name: "TwoPrimaries while everything else is healthy (a replica promoted by hand)",
    health: [...primaryUp("redis1"), ...primaryUp("redis2"), ...haproxiesSee({ redis1: "up", redis2: "down" })],
    roles: { ...rolesOf("redis1", "primary"), ...rolesOf("redis2", "primary") },
    expect: [{ name: "TwoPrimaries", host: "redis1", targets: ["redis1:9001", "redis2:9001", "redis1:9002", "redis2:9002"] }],
  },
  {
    name: "a replica's link down for longer than replication.linkDownAlertMs: ReplicaLinkDown",
    health: [...primaryUp("redis1"), ...PORTS.map((p) => up({ ...replicaObs("redis2", p, { primary: "redis1", linkUp: false }), linkDownSeconds: 12 }))],
    roles: USUAL_ROLES,
    expect: [{ name: "ReplicaLinkDown", host: "redis2", targets: ALL_PORTS("redis2") }],
  },
  {
    name: "a replica's link down for less than the threshold: nothing yet",
    health: [...primaryUp("redis1"), ...PORTS.map((p) => up({ ...replicaObs("redis2", p, { primary: "redis1", linkUp: false }), linkDownSeconds: 2 }))],
    roles: USUAL_ROLES,
    expect: [],
  },
  {
    name: "a link down that Redis does not count is timed from when failoverd first saw it",
    health: [...primaryUp("redis1"), ...PORTS.map((p) => up({ ...replicaObs("redis2", p, { primary: "redis1", linkUp: false }), linkDownSeconds: -1 }))],
    roles: USUAL_ROLES,
    extra: { now: 20_000, linkDownSince: new Map(PORTS.map((p) => [`redis2:${p}`, 1000])) },
    expect: [{ name: "ReplicaLinkDown", host: "redis2", targets: ALL_PORTS("redis2") }],
  },
  {
    name: "a replica megabytes behind its primary: ReplicaLagging",
    health: [
      ...PORTS.map((p) => up({ ...primaryObs("redis1", p, [{ host: "redis2" }]), offset: 5_000_000 })),
      ...PORTS.map((p) => up({ ...replicaObs("redis2", p, { primary: "redis1", linkUp: true }), offset: 1_000 })),
    ],
    roles: USUAL_ROLES,
    expect: [{ name: "ReplicaLagging", host: "redis2", targets: ALL_PORTS("redis2") }],
  },
  {
    name: "a replica a few bytes behind: healthy",
    health: HEALTHY,
    roles: USUAL_ROLES,
    expect: [],
  },
];

describe("diagnose: never make it worse", () => {
  for (const c of freshCases) {
    test(c.name, () => {
      const i = { ...input({ health: c.health, ...(c.roles ? { roles: c.roles } : {}) }), ...c.extra };
      assert.deepEqual(summary(diagnose(i)), c.expect);
    });
  }

  test("an early DeadPrimary says so; one confirmed by `fall` does not", () => {
    const early = diagnose(input({ health: [...PORTS.map((p) => failing(failedRedisObs("redis1", p))), ...replicaUp("redis2", { primary: "redis1", linkUp: false })], roles: USUAL_ROLES }));
    assert.equal(early[0]?.early, true);
    const confirmed = diagnose(input({ health: [...redisDown("redis1"), ...replicaUp("redis2", { primary: "redis1", linkUp: false })], roles: USUAL_ROLES }));
    assert.equal(confirmed[0]?.early, undefined);
  });

  test("a DeadPrimary carries what promoting its replica would lose, from the last check that reached it", () => {
    const last = new Map(PORTS.map((p) => [`redis1:${p}`, { ...primaryObs("redis1", p), offset: 90_000, at: 900 }]));
    const [d] = diagnose({
      ...input({ health: [...redisDown("redis1"), ...replicaUp("redis2", { primary: "redis1", linkUp: false })], roles: USUAL_ROLES }),
      lastGood: (t) => last.get(t),
    });
    assert.equal(d?.name, "DeadPrimary");
    assert.deepEqual(
      d?.dataLoss?.map((l) => [l.target, l.candidate, l.estimate.bytes, l.estimate.lastAckOffset]),
      PORTS.map((p) => [`redis1:${p}`, `redis2:${p}`, 90_000 - 4_900, 90_000]),
    );
  });

  test("the evidence of ReplicaLinkDown names the duration and the threshold", () => {
    const [d] = diagnose(
      input({ health: [...primaryUp("redis1"), ...PORTS.map((p) => up({ ...replicaObs("redis2", p, { primary: "redis1", linkUp: false }), linkDownSeconds: 12 }))], roles: USUAL_ROLES }),
    );
    assert.match(d?.evidence[0] ?? "", /redis2:9001: link to redis1:9001 down for 12\.0 s.*replication\.linkDownAlertMs 5000 ms/);
  });
});
