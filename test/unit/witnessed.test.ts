/**
 * The mass-failure rule as tables: which down targets a witness still answering this monitor confirms
 * (`witnessedDown`), and the whole pure pipeline (diagnose -> witnessedDown -> decide) on the seed topology's 7
 * targets: both Redis hosts down is 4 of 7, a PairDown when the HAProxies see it, the monitor's network when nothing
 * confirms it. Observations are built by hand; no servers.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { DIAGNOSES, type DetectorInput, diagnose, type TargetHealth } from "../../src/checks/detector.ts";
import type { HaproxyObservation, HaproxyServerView, Observation, RedisObservation } from "../../src/checks/observation.ts";
import { witnessedDown } from "../../src/checks/witnessed.ts";
import { decide } from "../../src/recovery/decider.ts";
import { testTopology } from "../helpers/recording-providers.ts";

const topology = testTopology();
const addressOf = (host: string): string => {
  const h = topology.hosts.get(host);
  if (!h) throw new Error(`no host ${host}`);
  return h.address;
};
const PORTS = [9001, 9002];
type State = "up" | "down" | "maint";

const at = { at: 1_000, latencyMs: 1 };
const redisFailed = (host: string, port: number): RedisObservation => ({
  type: "redis",
  target: `${host}:${port}`,
  host,
  port,
  address: addressOf(host),
  ...at,
  ok: false,
  failure: { kind: "refused", message: "connection refused" },
});
const replicaOf = (host: string, port: number, primary: string, linkUp: boolean): RedisObservation => ({
  type: "redis",
  target: `${host}:${port}`,
  host,
  port,
  address: addressOf(host),
  ...at,
  ok: true,
  role: "replica",
  primaryAddress: addressOf(primary),
  primaryPort: port,
  linkUp,
});
const primaryWith = (host: string, port: number, replica: string | null): RedisObservation => ({
  type: "redis",
  target: `${host}:${port}`,
  host,
  port,
  address: addressOf(host),
  ...at,
  ok: true,
  role: "primary",
  replicas: replica ? [{ address: addressOf(replica), port, offset: 1, online: true, lag: 0 }] : [],
});
const proxy = (host: string, servers: HaproxyServerView[], ok = true): HaproxyObservation => ({
  type: "haproxy",
  target: host,
  host,
  role: host === "app" ? "app" : "haproxy",
  address: addressOf(host),
  ...at,
  ok,
  closedFrontends: [],
  servers: ok ? servers : [],
  ...(ok ? {} : { failure: { kind: "timeout" as const, message: "timed out" } }),
});
const redisViews = (states: Record<string, State>): HaproxyServerView[] =>
  Object.entries(states).flatMap(([server, s]) =>
    PORTS.map((port) => ({ backend: `be_redis_${port}`, server, address: addressOf(server), port, up: s === "up", maint: s === "maint" })),
  );
const relayViews = (states: Record<string, State>): HaproxyServerView[] =>
  Object.entries(states).map(([server, s]) => ({ backend: "be_relay_7001", server, address: addressOf(server), port: 8001, up: s === "up", maint: s === "maint" }));

const health = (o: Observation, status: "up" | "down"): TargetHealth => ({
  target: o.target,
  status,
  failures: status === "down" ? 3 : 0,
  successes: status === "down" ? 0 : 3,
  since: 0,
  last: o,
});

function input(hs: readonly TargetHealth[]): DetectorInput {
  return { topology, addressOf, health: new Map(hs.map((h) => [h.target, h])), lastRoles: new Map() };
}

const redisDown = (host: string) => PORTS.map((p) => health(redisFailed(host, p), "down"));
const haproxiesSee = (states: Record<string, State>, ok = true) =>
  ["haproxy1", "haproxy2"].map((h) => health(proxy(h, redisViews(states), ok), ok ? "up" : "down"));
const appSees = (states: Record<string, State>, ok = true) => health(proxy("app", relayViews(states), ok), ok ? "up" : "down");

describe("witnessedDown", () => {
  const rows: { name: string; health: TargetHealth[]; expected: string[] }[] = [
    {
      name: "both Redis hosts down, both HAProxies answer and mark them down -> all four confirmed",
      health: [...redisDown("redis1"), ...redisDown("redis2"), ...haproxiesSee({ redis1: "down", redis2: "down" }), appSees({ haproxy1: "up", haproxy2: "up" })],
      expected: ["redis1:9001", "redis1:9002", "redis2:9001", "redis2:9002"],
    },
    {
      name: "both Redis hosts down, the HAProxies still see them up (the monitor is cut off from them) -> none",
      health: [...redisDown("redis1"), ...redisDown("redis2"), ...haproxiesSee({ redis1: "up", redis2: "up" }), appSees({ haproxy1: "up", haproxy2: "up" })],
      expected: [],
    },
    {
      name: "everything down from here (the monitor is cut off): no witness answers -> none",
      health: [...redisDown("redis1"), ...redisDown("redis2"), ...haproxiesSee({ redis1: "down", redis2: "down" }, false), appSees({}, false)],
      expected: [],
    },
    {
      name: "a fenced server (maint) is not checked by HAProxy: no evidence",
      health: [...redisDown("redis1"), ...PORTS.map((p) => health(replicaOf("redis2", p, "redis1", true), "up")), ...haproxiesSee({ redis1: "maint", redis2: "up" })],
      expected: [],
    },
    {
      name: "the replica's link to its down primary is down -> confirmed by the replica alone",
      health: [...redisDown("redis1"), ...PORTS.map((p) => health(replicaOf("redis2", p, "redis1", false), "up")), ...haproxiesSee({ redis1: "up", redis2: "up" }, false)],
      expected: ["redis1:9001", "redis1:9002"],
    },
    {
      name: "a down replica its primary no longer lists -> confirmed; one it still lists -> not",
      health: [...redisDown("redis2"), health(primaryWith("redis1", 9001, null), "up"), health(primaryWith("redis1", 9002, "redis2"), "up")],
      expected: ["redis2:9001"],
    },
    {
      name: "an HAProxy down that the app-side HAProxy marks down -> confirmed; one it sees up -> not",
      health: [health(proxy("haproxy1", [], false), "down"), health(proxy("haproxy2", [], false), "down"), appSees({ haproxy1: "down", haproxy2: "up" })],
      expected: ["haproxy1"],
    },
    {
      name: "targets that are up are never in the set, whatever the witnesses say",
      health: [...PORTS.map((p) => health(primaryWith("redis1", p, null), "up")), ...haproxiesSee({ redis1: "down", redis2: "down" })],
      expected: [],
    },
  ];
  for (const row of rows) {
    test(row.name, () => {
      assert.deepEqual([...witnessedDown(input(row.health))].sort(), row.expected);
    });
  }
});

describe("the mass-failure rule on the seed topology (7 targets)", () => {
  function decideOn(hs: TargetHealth[]) {
    const i = input(hs);
    const down = hs.filter((h) => h.status === "down");
    const witnessed = witnessedDown(i);
    return decide({
      topology,
      diagnoses: diagnose(i),
      targetsTotal: 7,
      targetsDown: down.length,
      targetsConfirmed: down.filter((h) => witnessed.has(h.target)).length,
      state: { paused: false, active: new Set(), lastEnded: new Map() },
      now: 10_000_000,
    });
  }

  test("both Redis hosts down (4 of 7) while both HAProxies answer and see it: PairDown, not the monitor's network", () => {
    const out = decideOn([...redisDown("redis1"), ...redisDown("redis2"), ...haproxiesSee({ redis1: "down", redis2: "down" }), appSees({ haproxy1: "up", haproxy2: "up" })]);
    assert.deepEqual(
      out.map((d) => [d.kind, d.diagnosis.name, d.kind === "alert" ? d.reason : ""]),
      [["alert", "PairDown", DIAGNOSES.PairDown.description]],
    );
  });

  test("the same 4 of 7 with no witness confirming it: the monitor's own network is suspect", () => {
    const out = decideOn([...redisDown("redis1"), ...redisDown("redis2"), ...haproxiesSee({ redis1: "up", redis2: "up" }), appSees({ haproxy1: "up", haproxy2: "up" })]);
    assert.equal(out.length, 1);
    const d = out[0]!;
    assert.equal(d.kind, "alert");
    if (d.kind === "alert") assert.match(d.reason, /^4 of 7 targets fail at once and no witness confirms it: the monitor's own network is suspect/);
  });
});
