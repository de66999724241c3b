/**
 * Operations without servers (but for HTTP servers this test runs on 127.0.0.1): the config keys, the switchover
 * guard, findings and acknowledgement, metrics from events, webhook delivery (retry, final 4xx, Slack form, event
 * filter, repeats), the HTTP API against a stub daemon, drills on a fake clock, the systemd notifier with a stand-in
 * for systemd-notify, and the terminal log format.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, test } from "node:test";
import type { Diagnosis, TargetHealth, TargetStatus } from "../../src/checks/detector.ts";
import type { Observation } from "../../src/checks/observation.ts";
import { type DaemonEvents, EventBus } from "../../src/daemon/events.ts";
import { Findings } from "../../src/daemon/findings.ts";
import { planSwitchover, type SwitchoverRequest } from "../../src/daemon/intents.ts";
import type { StatusView } from "../../src/daemon/status.ts";
import { ConfigError } from "../../src/errors.ts";
import { formatLine } from "../../src/log-pretty.ts";
import { silentLogger } from "../../src/log.ts";
import { type DrillClock, type DrillDaemon, Drills } from "../../src/ops/drills.ts";
import { HttpApi, parseListen } from "../../src/ops/http.ts";
import { Metrics } from "../../src/ops/metrics.ts";
import { describeDiagnosis, Notifier } from "../../src/ops/notify.ts";
import { STATUS_PAGE_CSP, STATUS_PAGE_HTML } from "../../src/ops/status-page.ts";
import { SystemdNotifier } from "../../src/ops/systemd.ts";
import type { Decision } from "../../src/recovery/decider.ts";
import { parseTopology } from "../../src/topology/load.ts";
import type { Topology } from "../../src/topology/topology.ts";
import { packagePath } from "../../src/package-root.ts";

const BASE = `topology: unit
hosts:
  redis1:   { role: redis, address: 127.0.1.1, ports: [9001, 9002] }
  redis2:   { role: redis, address: 127.0.1.2, ports: [9001, 9002] }
  haproxy1: { role: haproxy, address: 127.0.2.1, frontends: { 8001: 9001, 8002: 9002 }, adminPort: 9999 }
  haproxy2: { role: haproxy, address: 127.0.2.2, frontends: { 8001: 9001, 8002: 9002 }, adminPort: 9999 }
pairs:
  - [redis1, redis2]
`;

const topo = (extra = ""): Topology => parseTopology(`${BASE}${extra}`, "test.yaml");
const problems = (extra: string): string => {
  try {
    topo(extra);
  } catch (e) {
    if (e instanceof ConfigError) return e.problems.join("\n");
    throw e;
  }
  return "";
};

async function localServer(handler: (path: string, body: string) => number): Promise<{ server: Server; url: string; got: { path: string; body: string }[] }> {
  const got: { path: string; body: string }[] = [];
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => {
      body += c.toString();
    });
    req.on("end", () => {
      got.push({ path: req.url ?? "", body });
      res.writeHead(handler(req.url ?? "", body)).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, got };
}

const closeServer = (s: Server) => new Promise<void>((r) => s.close(() => r()));

async function until(what: string, fn: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(10);
  }
}

// ---------------------------------------------------------------------------------------------------------------

describe("config: http, notifications, drills", () => {
  test("all off by default", () => {
    const c = topo().config;
    assert.equal(c.http, undefined);
    assert.deepEqual(c.notifications, { webhooks: [], repeatMs: 3_600_000, timeoutMs: 5000, attempts: 5 });
    assert.deepEqual(c.drills, []);
    assert.equal(c.recovery.switchoverTimeoutMs, 5000);
  });

  test("defaults inside each section", () => {
    const c = topo(`http: { token: { env: TOKEN } }
notifications: { webhooks: [{ url: "https://hooks.example.test/x" }, { url: { file: /etc/failoverd/slack-url }, format: slack, events: [drill] }] }
drills: [{ schedule: "0 10 * * 2", pair: [redis2, redis1] }]
`).config;
    assert.deepEqual(c.http, { listen: "127.0.0.1:9464", token: { env: "TOKEN" } });
    assert.deepEqual(c.notifications.webhooks, [
      { url: "https://hooks.example.test/x", format: "json" },
      { url: { file: "/etc/failoverd/slack-url" }, format: "slack", events: ["drill"] },
    ]);
    assert.deepEqual(c.drills, [{ schedule: "0 10 * * 2", pair: ["redis2", "redis1"], action: "switchover" }]);
  });

  test("pagerduty needs only its routing key (PagerDuty's Events API v2 is the default URL); alertmanager its URL", () => {
    const c = topo(`notifications: { webhooks: [{ format: pagerduty, routingKey: { env: PD_KEY } }, { format: alertmanager, url: "http://am.test:9093/api/v2/alerts" }] }\n`).config;
    assert.deepEqual(c.notifications.webhooks, [
      { format: "pagerduty", routingKey: { env: "PD_KEY" } },
      { format: "alertmanager", url: "http://am.test:9093/api/v2/alerts" },
    ]);
  });

  const bad: [string, string, RegExp][] = [
    ["a token written in the config", `http: { token: "s3cret" }\n`, /^http\.token: /m],
    ["a listen address without a port", `http: { listen: "127.0.0.1" }\n`, /^http\.listen: "127\.0\.0\.1" is not ADDR:PORT/m],
    ["a listen port out of range", `http: { listen: "127.0.0.1:70000" }\n`, /^http\.listen: .* is not ADDR:PORT/m],
    ["an unknown http key", `http: { port: 80 }\n`, /^http: unknown key 'port'/m],
    ["a webhook that is not http(s)", `notifications: { webhooks: [{ url: "ftp://x" }] }\n`, /^notifications\.webhooks\[0\]\.url: /m],
    [
      "a webhook URL with a user and password, told without them",
      `notifications: { webhooks: [{ url: "https://ops:hunter2@hooks.example.test/x" }] }\n`,
      /^notifications\.webhooks\[0\]\.url: (?!.*hunter2).*carries a user or password/m,
    ],
    ["an unknown webhook format", `notifications: { webhooks: [{ url: "http://x.test", format: xml }] }\n`, /format must be one of json, slack, pagerduty, alertmanager/],
    ["a pagerduty webhook without a routing key", `notifications: { webhooks: [{ format: pagerduty }] }\n`, /^notifications\.webhooks\[0\]\.routingKey: a pagerduty webhook needs routingKey/m],
    ["a routing key written in the config", `notifications: { webhooks: [{ format: pagerduty, routingKey: "R0UTING" }] }\n`, /^notifications\.webhooks\[0\]\.routingKey: (?!.*R0UTING)/m],
    ["a routing key on a json webhook", `notifications: { webhooks: [{ url: "http://x.test", routingKey: { env: K } }] }\n`, /^notifications\.webhooks\[0\]\.routingKey: routingKey is for format: pagerduty only/m],
    ["an alertmanager webhook without a url", `notifications: { webhooks: [{ format: alertmanager }] }\n`, /^notifications\.webhooks\[0\]\.url: an alertmanager webhook needs a url/m],
    ["an unknown event", `notifications: { webhooks: [{ url: "http://x.test", events: [boom] }] }\n`, /an event is one of diagnosis, resolved/],
    ["a repeat shorter than a minute", `notifications: { repeatMs: 1000 }\n`, /^notifications\.repeatMs: must be at least 60000 ms/m],
    ["a wrong cron expression", `drills: [{ schedule: "61 * * * *", pair: [redis1, redis2] }]\n`, /^drills\[0\]\.schedule: "61 \* \* \* \*" is not a cron expression/m],
    ["a drill of an undeclared pair", `drills: [{ schedule: "0 3 * * *", pair: [redis1, haproxy1] }]\n`, /^drills\[0\]\.pair: \[redis1, haproxy1\] is not a declared pair$/m],
    ["an unknown drill action", `drills: [{ schedule: "0 3 * * *", pair: [redis1, redis2], action: failover }]\n`, /action must be switchover/],
  ];
  for (const [name, extra, expected] of bad) {
    test(`refused: ${name}`, () => assert.match(problems(extra), expected));
  }

  test("a webhook URL from the environment with a user and password: refused when the notifier is set up, the secret not told", () => {
    process.env["FAILOVERD_TEST_HOOK_URL"] = "https://ops:hunter2@hooks.example.test/x";
    try {
      const t = topo(`notifications: { webhooks: [{ url: { env: FAILOVERD_TEST_HOOK_URL } }] }\n`);
      assert.throws(
        () => new Notifier(t, { log: silentLogger() }),
        (e: unknown) => {
          assert.ok(e instanceof ConfigError, String(e));
          assert.match(e.message, /notifications\.webhooks\[0\]\.url: the URL carries a user or password/);
          assert.doesNotMatch(e.message, /hunter2|ops:/);
          return true;
        },
      );
    } finally {
      delete process.env["FAILOVERD_TEST_HOOK_URL"];
    }
  });

  test("--http parsing", () => {
    assert.deepEqual(parseListen("127.0.0.1:9464"), { address: "127.0.0.1", port: 9464 });
    assert.deepEqual(parseListen("0.0.0.0:0"), { address: "0.0.0.0", port: 0 });
    assert.throws(() => parseListen("localhost:80"), /--http: 'localhost:80' is not ADDR:PORT/);
    assert.throws(() => parseListen("127.0.0.1:99999"), /is not ADDR:PORT/);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe("the switchover guard", () => {
  const t = topo();
  const roles = (primary: string, replica: string, over: Record<string, "primary" | "replica"> = {}) =>
    new Map<string, "primary" | "replica">(
      Object.entries({ [`${primary}:9001`]: "primary", [`${primary}:9002`]: "primary", [`${replica}:9001`]: "replica", [`${replica}:9002`]: "replica", ...over }),
    );
  const plan = (request: SwitchoverRequest, o: { roles?: Map<string, "primary" | "replica">; down?: string[]; active?: string[]; unmonitored?: string[] } = {}) =>
    planSwitchover({
      topology: t,
      request,
      lastRoles: o.roles ?? roles("redis1", "redis2"),
      statusOf: (x): TargetStatus => (o.down?.includes(x) ? "down" : "up"),
      unmonitored: new Set(o.unmonitored ?? []),
      active: new Set(o.active ?? []),
    });

  const cases: [string, SwitchoverRequest, Parameters<typeof plan>[1], unknown][] = [
    ["the pair: to the host holding its replicas", { pair: ["redis1", "redis2"] }, {}, { to: "redis2", from: "redis1", group: "pair:redis1+redis2" }],
    ["the pair in the other order", { pair: ["redis2", "redis1"] }, { roles: roles("redis2", "redis1") }, { to: "redis1", from: "redis2", group: "pair:redis1+redis2" }],
    ["a named target", { to: "redis2" }, {}, { to: "redis2", from: "redis1", group: "pair:redis1+redis2" }],
    ["already primary everywhere", { to: "redis1" }, {}, { refused: "redis1 is already the primary on every port" }],
    ["not a pair", { pair: ["redis1", "haproxy1"] }, {}, { refused: "[redis1, haproxy1] is not a declared pair (pairs: redis1+redis2)" }],
    ["not a Redis host", { to: "haproxy1" }, {}, { refused: "haproxy1 is not a Redis host of a pair (pairs: redis1+redis2)" }],
    ["nothing named", {}, {}, { refused: "name the pair (pair: [a, b]) or the new primary (to: host)" }],
    ["a recovery under way", { to: "redis2" }, { active: ["pair:redis1+redis2"] }, { refused: "a recovery of pair:redis1+redis2 is under way; try again when it has ended" }],
    ["the target down", { to: "redis2" }, { down: ["redis2:9002"] }, { refused: "redis2:9002 is down: a switchover needs both servers of every port up" }],
    ["an HAProxy down", { to: "redis2" }, { down: ["haproxy2"] }, { refused: "HAProxy haproxy2 is down: every HAProxy must move in step" }],
    ["a host under recovery", { to: "redis2" }, { unmonitored: ["redis1"] }, { refused: "redis1 is under recovery (unmonitored)" }],
    [
      "primaries split evenly, no target named",
      { pair: ["redis1", "redis2"] },
      { roles: roles("redis1", "redis2", { "redis1:9002": "replica", "redis2:9002": "primary" }) },
      { refused: "the primaries of [redis1, redis2] are split evenly or unknown; name the new primary (to: host)" },
    ],
    [
      "primaries split, a target named: the ports it does not hold move",
      { to: "redis2" },
      { roles: roles("redis1", "redis2", { "redis1:9002": "replica", "redis2:9002": "primary" }) },
      { to: "redis2", from: "redis1", group: "pair:redis1+redis2" },
    ],
  ];
  for (const [name, request, o, expected] of cases) test(name, () => assert.deepEqual(plan(request, o), expected));
});

// ---------------------------------------------------------------------------------------------------------------

const diag = (name: Diagnosis["name"], host: string): Diagnosis => ({ name, host, targets: [`${host}:9001`], evidence: [`${host}:9001: 3 failed checks in a row`] });
const alert = (name: Diagnosis["name"], host: string, reason: string): Decision => ({ kind: "alert", host, diagnosis: diag(name, host), reason });
const recover = (host: string): Decision => ({ kind: "recover", playbook: "failed_redis", host, group: "pair:redis1+redis2", diagnosis: diag("DeadReplica", host) });

describe("findings", () => {
  test("announced when new or changed, resolved when gone, quiet when the same; ack until they change", () => {
    const bus = new EventBus();
    const seen: string[] = [];
    bus.on("diagnosis", (d) => seen.push(`diagnosis ${d.key} ${d.decision.kind} ack=${d.acknowledged}`));
    bus.on("resolved", (r) => seen.push(`resolved ${r.key} ${r.why}`));
    bus.on("ack", (a) => seen.push(`ack ${a.keys.join(",")}`));
    const f = new Findings(bus);
    f.update([alert("DeadReplica", "redis2", "failoverd is paused; not acting"), alert("UnreachableHaproxy", "haproxy2", "x")], 1000);
    f.update([alert("DeadReplica", "redis2", "failoverd is paused; not acting"), alert("UnreachableHaproxy", "haproxy2", "x")], 1200);
    // Only numbers changed: no news.
    f.update([alert("DeadReplica", "redis2", "failoverd is paused; not acting"), alert("UnreachableHaproxy", "haproxy2", "x"), alert("PairDown", "redis1", "4 of 7 targets fail at once")], 1250);
    f.update([alert("DeadReplica", "redis2", "failoverd is paused; not acting"), alert("UnreachableHaproxy", "haproxy2", "x"), alert("PairDown", "redis1", "5 of 7 targets fail at once")], 1260);
    assert.deepEqual(f.list().find((x) => x.key === "PairDown:redis1")?.decision, { kind: "alert", reason: "5 of 7 targets fail at once" });
    f.acknowledge(1300, "test");
    assert.deepEqual(
      f.list().map((x) => [x.key, x.acknowledged, x.since]),
      [
        ["DeadReplica:redis2", true, 1000],
        ["UnreachableHaproxy:haproxy2", true, 1000],
        ["PairDown:redis1", true, 1250],
      ],
    );
    f.update([recover("redis2"), alert("UnreachableHaproxy", "haproxy2", "x")], 1400);
    // A recovery under way for it is no news.
    f.update([alert("DeadReplica", "redis2", "a recovery of pair:redis1+redis2 is already under way"), alert("UnreachableHaproxy", "haproxy2", "x")], 1500);
    f.resolveHost("redis2", 1600);
    f.update([], 1700);
    assert.deepEqual(seen, [
      "diagnosis DeadReplica:redis2 alert ack=false",
      "diagnosis UnreachableHaproxy:haproxy2 alert ack=false",
      "diagnosis PairDown:redis1 alert ack=false",
      "ack DeadReplica:redis2,UnreachableHaproxy:haproxy2,PairDown:redis1",
      "diagnosis DeadReplica:redis2 recover ack=false",
      "resolved PairDown:redis1 cleared",
      "resolved DeadReplica:redis2 recovering",
      "resolved UnreachableHaproxy:haproxy2 cleared",
    ]);
    assert.deepEqual(f.list(), []);
  });

  test("a failing listener is reported and the others still run", () => {
    const errors: string[] = [];
    const bus = new EventBus((event, err) => errors.push(`${event}: ${(err as Error).message}`));
    let ran = false;
    bus.on("paused", () => {
      throw new Error("boom");
    });
    bus.on("paused", () => {
      ran = true;
    });
    bus.emit("paused", { paused: true, at: 1, by: "test" });
    assert.deepEqual(errors, ["paused: boom"]);
    assert.equal(ran, true);
  });
});

// ---------------------------------------------------------------------------------------------------------------

function metricsSource() {
  const bus = new EventBus();
  let cycle: number | null = null;
  return {
    bus,
    setCycle: (at: number | null) => {
      cycle = at;
    },
    source: { events: bus, paused: false, lastCycleAt: () => cycle },
  };
}

const obs = (target: string, ok: boolean, latencyMs: number, extra: Partial<Observation> = {}): Observation =>
  ({ type: "redis", target, host: target.split(":")[0], port: Number(target.split(":")[1]), address: "127.0.1.1", at: 1, ok, latencyMs, ...extra }) as Observation;
const health = (target: string, status: TargetStatus, last: Observation): TargetHealth => ({ target, status, failures: 0, successes: 1, since: 0, last });

describe("metrics", () => {
  test("follow the events", async () => {
    const s = metricsSource();
    const m = new Metrics(s.source, { processMetrics: false });
    const ok = obs("redis1:9001", true, 3, { role: "primary" });
    const bad = obs("redis2:9001", false, 150, { failure: { kind: "timeout", message: "no answer" } });
    s.bus.emit("observation", { observation: ok, health: health("redis1:9001", "up", ok) });
    s.bus.emit("observation", { observation: bad, health: health("redis2:9001", "down", bad) });
    // The daemon tells a target's first status and each change of it (its ingest).
    s.bus.emit("status", { target: "redis1:9001", from: "unknown", to: "up", at: 1 });
    s.bus.emit("status", { target: "redis2:9001", from: "unknown", to: "down", at: 1, failure: "timeout: no answer" });
    const ref = { recoveryId: "r1", playbook: "failed_redis", host: "redis2", group: "pair:redis1+redis2", diagnosis: "DeadReplica", origin: "diagnosis" as const };
    s.bus.emit("diagnosis", { key: "DeadReplica:redis2", diagnosis: diag("DeadReplica", "redis2"), actionable: true, decision: { kind: "recover", playbook: "failed_redis" }, since: 1, acknowledged: false, at: 1 });
    s.bus.emit("recovery-start", { ...ref, at: 10 });
    s.bus.emit("step-end", { ...ref, step: "fence", title: "", attempt: 1, at: 30, ok: true, durationMs: 20 });
    s.setCycle(1_700_000_000_000);
    let text = await m.text();
    assert.match(text, /^failoverd_recoveries_running\{playbook="failed_redis"\} 1$/m);
    s.bus.emit("recovery-end", { ...ref, outcome: "succeeded", at: 1000, durationMs: 990 });
    s.bus.emit("resolved", { key: "DeadReplica:redis2", diagnosis: diag("DeadReplica", "redis2"), at: 2, sinceMs: 1, why: "recovering" });
    s.bus.emit("drill", { pair: ["redis1", "redis2"], schedule: "* * * * *", action: "switchover", outcome: "skipped", startedAt: 0, endedAt: 5000, reason: "paused" });
    text = await m.text();
    for (const line of [
      'failoverd_checks_total{target="redis1:9001",type="redis"} 1',
      'failoverd_check_failures_total{target="redis2:9001",kind="timeout"} 1',
      'failoverd_check_duration_seconds_bucket{le="0.005",type="redis"} 1',
      'failoverd_check_duration_seconds_bucket{le="0.25",type="redis"} 2',
      'failoverd_check_last_duration_seconds{target="redis2:9001"} 0.15',
      'failoverd_target_status{target="redis1:9001",status="up"} 1',
      'failoverd_target_status{target="redis2:9001",status="down"} 1',
      'failoverd_target_status{target="redis2:9001",status="up"} 0',
      'failoverd_redis_primary{target="redis1:9001"} 1',
      'failoverd_diagnoses_total{diagnosis="DeadReplica",host="redis2",decision="recover"} 1',
      'failoverd_diagnosis_active{diagnosis="DeadReplica",host="redis2"} 0',
      'failoverd_recoveries_total{playbook="failed_redis",outcome="succeeded",origin="diagnosis"} 1',
      'failoverd_recoveries_running{playbook="failed_redis"} 0',
      'failoverd_step_duration_seconds_count{playbook="failed_redis",step="fence",ok="true"} 1',
      'failoverd_recovery_duration_seconds_sum{playbook="failed_redis",outcome="succeeded"} 0.99',
      'failoverd_drills_total{pair="redis1+redis2",outcome="skipped"} 1',
      'failoverd_drill_last_timestamp_seconds{pair="redis1+redis2",outcome="skipped"} 5',
      "failoverd_last_cycle_timestamp_seconds 1700000000",
      "failoverd_paused 0",
    ]) {
      assert.ok(text.split("\n").includes(line), `metrics have: ${line}`);
    }
    m.close();
  });
});

describe("metrics from the start", () => {
  test("every series the config names exists at 0 before any event; build_info says the version and Node", async () => {
    const s = metricsSource();
    const t = topo(`drills: [{ schedule: "0 10 * * 2", pair: [redis2, redis1] }]\n`);
    const m = new Metrics({ ...s.source, config: t }, { processMetrics: false });
    const text = await m.text();
    const lines = text.split("\n");
    const version = (JSON.parse(readFileSync(packagePath("package.json"), "utf8")) as { version: string }).version;
    for (const line of [
      `failoverd_build_info{version="${version}",node="${process.version}"} 1`,
      'failoverd_checks_total{target="redis1:9002",type="redis"} 0',
      'failoverd_checks_total{target="haproxy2",type="haproxy"} 0',
      'failoverd_check_failures_total{target="redis2:9001",kind="loading"} 0',
      'failoverd_check_failures_total{target="haproxy1",kind="refused"} 0',
      'failoverd_check_duration_seconds_count{type="haproxy"} 0',
      'failoverd_target_status{target="redis1:9001",status="unknown"} 1',
      'failoverd_target_status{target="redis1:9001",status="up"} 0',
      'failoverd_diagnoses_total{diagnosis="DeadPrimary",host="redis1",decision="recover"} 0',
      'failoverd_diagnoses_total{diagnosis="TwoPrimaries",host="redis2",decision="alert"} 0',
      'failoverd_diagnoses_total{diagnosis="HaproxyDown",host="haproxy1",decision="recover"} 0',
      'failoverd_diagnosis_active{diagnosis="UnreachableHaproxy",host="haproxy2"} 0',
      'failoverd_recoveries_total{playbook="failed_redis",outcome="failed",origin="diagnosis"} 0',
      'failoverd_recoveries_total{playbook="switchover",outcome="succeeded",origin="drill"} 0',
      'failoverd_recoveries_running{playbook="failed_haproxy"} 0',
      'failoverd_recovery_duration_seconds_count{playbook="failed_redis",outcome="succeeded"} 0',
      'failoverd_drills_total{pair="redis2+redis1",outcome="failed"} 0',
      'failoverd_drills_total{pair="redis2+redis1",outcome="skipped"} 0',
    ]) {
      assert.ok(lines.includes(line), `metrics have: ${line}`);
    }
    // No failure kinds an HAProxy cannot have, no diagnosis a host's role cannot have, no recovery of an alert-only one.
    assert.doesNotMatch(text, /kind="wrong-role"[^\n]*target="haproxy1"|target="haproxy1",kind="wrong-role"/);
    assert.doesNotMatch(text, /diagnosis="DeadPrimary",host="haproxy1"/);
    assert.doesNotMatch(text, /diagnosis="PairDown",host="redis1",decision="recover"/);
    // Durations are seconds: no metric is named in milliseconds.
    assert.doesNotMatch(text, /^failoverd_\w*_ms\b/m);

    // A status told by the daemon is not reset by a reload; a new host gets its series; the counts go on.
    s.bus.emit("status", { target: "redis1:9001", from: "unknown", to: "up", at: 1 });
    const ok = obs("redis1:9001", true, 2, { role: "primary" });
    s.bus.emit("observation", { observation: ok, health: health("redis1:9001", "up", ok) });
    const t2 = parseTopology(BASE.replace("pairs:", "  redis3: { role: redis, address: 127.0.1.3, ports: [9003] }\n  redis4: { role: redis, address: 127.0.1.4, ports: [9003] }\npairs:\n  - [redis3, redis4]"), "test.yaml");
    m.configure(t2);
    const after = (await m.text()).split("\n");
    assert.ok(after.includes('failoverd_target_status{target="redis1:9001",status="up"} 1'));
    assert.ok(after.includes('failoverd_target_status{target="redis1:9001",status="unknown"} 0'));
    assert.ok(after.includes('failoverd_checks_total{target="redis1:9001",type="redis"} 1'));
    assert.ok(after.includes('failoverd_target_status{target="redis3:9003",status="unknown"} 1'));
    assert.ok(after.includes('failoverd_diagnoses_total{diagnosis="DeadReplica",host="redis4",decision="recover"} 0'));
    m.close();
  });

  test("a webhook's deliveries exist at 0 for each result", async () => {
    const s = metricsSource();
    const metrics = new Metrics(s.source, { processMetrics: false });
    const n = new Notifier(topo(`notifications: { webhooks: [{ name: pager, url: "http://127.0.0.1:9/x" }] }\n`), { log: silentLogger(), metrics });
    await n.close();
    const text = await metrics.text();
    for (const result of ["sent", "retried", "dropped"]) assert.match(text, new RegExp(`^failoverd_notifications_total\\{webhook="pager",result="${result}"\\} 0$`, "m"));
    metrics.close();
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe("webhooks", () => {
  const diagnosisEvent = (): DaemonEvents["diagnosis"] => ({
    key: "DeadPrimary:redis1",
    diagnosis: { ...diag("DeadPrimary", "redis1"), evidence: ["redis1:9001 <down> & gone"] },
    actionable: true,
    decision: { kind: "recover", playbook: "failed_redis" },
    since: 1,
    acknowledged: false,
    at: Date.UTC(2031, 0, 7, 10, 0, 0),
  });

  test("retried on 5xx until delivered, in order; a final 4xx is dropped at once", async () => {
    let calls = 0;
    const srv = await localServer((path) => {
      if (path === "/flaky") return ++calls <= 2 ? 503 : 204;
      return 404;
    });
    try {
      const s = metricsSource();
      const metrics = new Metrics(s.source, { processMetrics: false });
      const t = topo(`notifications: { webhooks: [{ name: flaky, url: "${srv.url}/flaky" }, { name: gone, url: "${srv.url}/gone" }] }\n`);
      const n = new Notifier(t, { log: silentLogger(), metrics, backoffMs: 5 });
      n.attach(s.bus);
      s.bus.emit("diagnosis", diagnosisEvent());
      s.bus.emit("paused", { paused: true, at: 1, by: "x" }); // not a notification
      s.bus.emit("step-end", { recoveryId: "r", playbook: "failed_redis", host: "redis1", group: "g", diagnosis: "DeadPrimary", origin: "diagnosis", step: "fence", title: "Fence", attempt: 1, at: 2, ok: false, durationMs: 1, error: "HAProxy refused" });
      await until("both delivered to /flaky", () => srv.got.filter((g) => g.path === "/flaky" && calls > 2).length >= 2 && srv.got.length >= 6);
      await n.close();
      const flaky = srv.got.filter((g) => g.path === "/flaky").map((g) => JSON.parse(g.body) as { event: string; title: string; at: string; details: string[] });
      assert.deepEqual(
        flaky.map((b) => b.event),
        ["diagnosis", "diagnosis", "diagnosis", "step-failed"],
      );
      assert.equal(flaky[0]?.title, "DeadPrimary on redis1: running failed_redis");
      assert.equal(flaky[0]?.at, "2031-01-07T10:00:00.000Z");
      assert.equal(flaky[3]?.title, "failed_redis for redis1: step fence failed (attempt 1)");
      assert.equal(srv.got.filter((g) => g.path === "/gone").length, 2, "a 404 is not retried: one try per notification");
      const text = await metrics.text();
      assert.match(text, /^failoverd_notifications_total\{webhook="flaky",result="retried"\} 2$/m);
      assert.match(text, /^failoverd_notifications_total\{webhook="flaky",result="sent"\} 2$/m);
      assert.match(text, /^failoverd_notifications_total\{webhook="gone",result="dropped"\} 2$/m);
    } finally {
      await closeServer(srv.server);
    }
  });

  test("a notification queued at any moment as the worker finishes is delivered, not left waiting for the next one", async () => {
    const srv = await localServer(() => 204);
    try {
      const t = topo(`notifications: { webhooks: [{ name: hook, url: "${srv.url}/hook" }] }\n`);
      // After each delivery, the next notification is queued d microtasks later, d = 0, 1, ... 11: one of them falls
      // between the worker seeing its queue empty and the worker being cleared, if there is such a moment.
      let depth = 0;
      let n: Notifier | undefined;
      const later = (d: number, fn: () => void): void => (d === 0 ? fn() : queueMicrotask(() => later(d - 1, fn)));
      const metrics = {
        notifications: {
          inc: (labels: { result: string }, by = 1) => {
            if (labels.result !== "sent" || by === 0 || depth >= 12) return;
            const d = depth++;
            later(d, () => n?.send({ event: "diagnosis", at: 0, severity: "info", title: `queued ${d} microtasks after a delivery`, details: [], data: {} }));
          },
        },
      } as unknown as Metrics;
      n = new Notifier(t, { log: silentLogger(), metrics });
      n.send({ event: "diagnosis", at: 0, severity: "info", title: "first", details: [], data: {} });
      await until("all 13 delivered", () => srv.got.length >= 13);
      await n.close();
      assert.deepEqual(
        srv.got.map((g) => (JSON.parse(g.body) as { title: string }).title),
        ["first", ...Array.from({ length: 12 }, (_, d) => `queued ${d} microtasks after a delivery`)],
      );
    } finally {
      await closeServer(srv.server);
    }
  });

  test("Slack form: one escaped text; only the chosen events; repeats until acknowledged", async () => {
    const srv = await localServer(() => 200);
    try {
      const bus = new EventBus();
      let now = 1_000_000;
      const t = topo(`notifications: { repeatMs: 60000, webhooks: [{ url: "${srv.url}/slack", format: slack, events: [diagnosis] }] }\n`);
      const n = new Notifier(t, { log: silentLogger(), now: () => now });
      n.attach(bus);
      bus.emit("diagnosis", diagnosisEvent());
      bus.emit("recovery-start", { recoveryId: "r", playbook: "failed_redis", host: "redis1", group: "g", diagnosis: "DeadPrimary", origin: "diagnosis", at: 1 });
      await until("delivered", () => srv.got.length === 1);
      assert.deepEqual(JSON.parse(srv.got[0]!.body), {
        text: ":red_circle: *[unit]* DeadPrimary on redis1: running failed_redis\n• redis1:9001 &lt;down&gt; &amp; gone",
      });
      now += 59_000;
      n.repeatDue();
      now += 2_000;
      n.repeatDue();
      await until("repeated once", () => srv.got.length === 2);
      assert.match(JSON.parse(srv.got[1]!.body).text, /still: DeadPrimary on redis1/);
      bus.emit("ack", { keys: ["DeadPrimary:redis1"], at: now, by: "test" });
      now += 120_000;
      n.repeatDue();
      await sleep(100);
      assert.equal(srv.got.length, 2, "not repeated once acknowledged");
      await n.close();
    } finally {
      await closeServer(srv.server);
    }
  });

  test("a webhook that never answers delays nothing: events return at once, deliveries give up at their deadline", async () => {
    const hung = createServer(() => {}); // reads the request, never answers
    await new Promise<void>((r) => hung.listen(0, "127.0.0.1", r));
    try {
      const s = metricsSource();
      const metrics = new Metrics(s.source, { processMetrics: false });
      const url = `http://127.0.0.1:${(hung.address() as AddressInfo).port}/`;
      const t = topo(`notifications: { timeoutMs: 100, attempts: 2, webhooks: [{ name: hung, url: "${url}" }] }\n`);
      const n = new Notifier(t, { log: silentLogger(), metrics, backoffMs: 10, maxQueue: 10 });
      n.attach(s.bus);
      const t0 = performance.now();
      for (let i = 0; i < 50; i++) s.bus.emit("recovery-start", { recoveryId: `r${i}`, playbook: "failed_redis", host: "redis1", group: "g", diagnosis: "DeadPrimary", origin: "diagnosis", at: i });
      assert.ok(performance.now() - t0 < 50, `50 events took ${performance.now() - t0} ms`);
      // The queue is bounded: of 50, one is in flight, 10 wait, 39 are dropped at once.
      assert.match(await metrics.text(), /failoverd_notifications_total\{webhook="hung",result="dropped"\} 39$/m);
      // The one in flight gives up after 2 attempts of 100 ms.
      await sleep(400);
      assert.match(await metrics.text(), /failoverd_notifications_total\{webhook="hung",result="dropped"\} 4\d$/m);
      assert.match(await metrics.text(), /failoverd_notifications_total\{webhook="hung",result="retried"\} [1-9]$/m);
      const c0 = performance.now();
      await n.close(200);
      assert.ok(performance.now() - c0 < 1000, "close gives up on the queue after its grace");
    } finally {
      hung.closeAllConnections();
      await closeServer(hung);
    }
  });

  test("a finding's severity and text", () => {
    const n = describeDiagnosis({ ...diagnosisEvent(), diagnosis: diag("UnreachablePrimary", "redis1"), actionable: false, decision: { kind: "alert", reason: "not confirmed" } });
    assert.equal(n.severity, "warning");
    assert.equal(n.title, "UnreachablePrimary on redis1: not confirmed");
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe("the HTTP API", () => {
  const calls: string[] = [];
  let lastCycle: number | null = Date.now();
  const stub = {
    config: topo(),
    paused: false,
    status: async () => ({ topology: "unit", hosts: [] }) as unknown as StatusView,
    lastCycleAt: () => lastCycle,
    setPause: async (by: string, r: { reason?: string | undefined; forMs: number | null }) => {
      calls.push(`pause ${by} ${r.forMs} ${r.reason ?? "-"}`);
      return { since: 1, by, ...(r.forMs !== null ? { until: 1 + r.forMs } : {}) };
    },
    resume: async (by: string, confirm: boolean) => {
      calls.push(`resume ${by.split(" ")[0]} ${confirm}`);
      const starts = [{ playbook: "failed_redis", host: "redis2", diagnosis: "DeadReplica" }];
      return { resumed: confirm, starts };
    },
    startMaintenance: async (host: string, by: string, r: { reason?: string | undefined; forMs: number }) => {
      calls.push(`maintenance ${host} ${r.forMs} ${r.reason}`);
      return host === "app1" ? { refused: "app1 is an app host" } : { since: 1, until: 1 + r.forMs, by, ...(r.reason ? { reason: r.reason } : {}) };
    },
    endMaintenance: async (host: string) => {
      calls.push(`end maintenance ${host}`);
      return null;
    },
    requestFailover: async (host: string, by: string, reason: string | undefined, confirm: boolean) => {
      calls.push(`failover ${host} ${by.split(" ")[0]} ${reason ?? "-"} ${confirm}`);
      const check = { playbook: "failed_redis" as const, host, group: "pair:redis1+redis2", warnings: ["redis1 answers"] };
      if (host === "app1") return { refused: "app1 is an app host" };
      return confirm ? { started: true as const, check, recoveryId: "r2" } : { started: false as const, check, plan: { playbook: "failed_redis" as const, host, steps: [], outcome: "succeeded" as const } };
    },
    history: async (since?: number) => {
      calls.push(`history ${since === undefined ? "all" : "since"}`);
      return { recoveries: [], controls: [] };
    },
    acknowledge: () => {
      calls.push("acknowledge");
      return ["DeadPrimary:redis1"];
    },
    requestSwitchover: async (r: SwitchoverRequest) => {
      calls.push(`switchover ${JSON.stringify(r)}`);
      return r.to === "redis1" ? { refused: "redis1 is already the primary on every port" } : { recoveryId: "r1", to: "redis2", from: "redis1" };
    },
    acceptDataLoss: (host: string, by: string) => {
      calls.push(`acceptDataLoss ${host} ${by.split(" ")[0]}`);
      return host === "redis1" ? { refused: "redis2 is not failing now: nothing to promote redis1 in place of" } : { accepted: host, failed: "redis1" };
    },
  };
  const metrics = { text: async () => "failoverd_up 1\n", contentType: "text/plain; version=0.0.4; charset=utf-8" };
  let api: HttpApi;
  let open: HttpApi;
  let base: string;
  let openBase: string;
  const post = (path: string, auth?: string, body?: unknown, to = base) =>
    fetch(`${to}${path}`, { method: "POST", headers: auth ? { authorization: auth } : {}, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });

  before(async () => {
    api = new HttpApi({ daemon: stub, listen: { address: "127.0.0.1", port: 0 }, token: "t0ken", metrics, log: silentLogger() });
    const a = await api.start();
    base = `http://${a.address}:${a.port}`;
    open = new HttpApi({ daemon: stub, listen: { address: "127.0.0.1", port: 0 }, metrics, log: silentLogger() });
    const b = await open.start();
    openBase = `http://${b.address}:${b.port}`;
  });
  after(async () => {
    await api.close();
    await open.close();
  });

  test("reads need no token", async () => {
    assert.deepEqual(await (await fetch(`${base}/status`)).json(), { topology: "unit", hosts: [], staleAfterMs: 5500, verdicts: [], drills: [] });
    const m = await fetch(`${base}/metrics`);
    assert.equal(m.headers.get("content-type"), metrics.contentType);
    assert.equal(await m.text(), "failoverd_up 1\n");
  });

  test("changing requests: 401 without or with a wrong token, and nothing reaches the daemon", async () => {
    calls.length = 0;
    for (const path of ["/pause", "/resume", "/ack", "/switchover", "/maintenance", "/failover"]) {
      assert.equal((await post(path)).status, 401, path);
      assert.equal((await post(path, "Bearer nope")).status, 401, path);
      assert.equal((await post(path, "Basic dDBrZW4=")).status, 401, path);
    }
    assert.deepEqual(calls, []);
  });

  test("with no token configured, changing requests are off (403)", async () => {
    const r = await post("/pause", "Bearer t0ken", undefined, openBase);
    assert.equal(r.status, 403);
    assert.match(((await r.json()) as { error: string }).error, /set http\.token in the config/);
  });

  test("with the token: pause, resume, ack, switchover, maintenance, failover (202, or 409 with the reason)", async () => {
    calls.length = 0;
    assert.deepEqual(await (await post("/pause", "Bearer t0ken")).json(), { paused: true, pause: { since: 1, by: "http 127.0.0.1", until: 3_600_001 } });
    assert.equal((await post("/pause", "Bearer t0ken", { for: "2h", reason: "db upgrade", operator: "alice" })).status, 200);
    assert.equal((await post("/pause", "Bearer t0ken", { for: "forever" })).status, 200);
    const preview = await post("/resume", "bearer t0ken");
    assert.equal(preview.status, 409);
    assert.deepEqual(await preview.json(), {
      error: "resuming starts failed_redis for redis2 (DeadReplica) at once: confirm it (confirm: true)",
      wouldStart: [{ playbook: "failed_redis", host: "redis2", diagnosis: "DeadReplica" }],
    });
    assert.deepEqual(await (await post("/resume", "bearer t0ken", { confirm: true })).json(), {
      paused: false,
      started: [{ playbook: "failed_redis", host: "redis2", diagnosis: "DeadReplica" }],
    });
    assert.deepEqual(await (await post("/ack", "Bearer t0ken")).json(), { acknowledged: ["DeadPrimary:redis1"] });
    const ok = await post("/switchover", "Bearer t0ken", { pair: ["redis1", "redis2"] });
    assert.equal(ok.status, 202);
    assert.deepEqual(await ok.json(), { recoveryId: "r1", to: "redis2", from: "redis1" });
    const no = await post("/switchover", "Bearer t0ken", { to: "redis1" });
    assert.equal(no.status, 409);
    assert.deepEqual(await no.json(), { error: "redis1 is already the primary on every port" });
    const m = await post("/maintenance", "Bearer t0ken", { host: "redis1", for: "30m", reason: "kernel update" });
    assert.deepEqual(await m.json(), { host: "redis1", maintenance: { since: 1, until: 1_800_001, by: "http 127.0.0.1", reason: "kernel update" } });
    assert.equal((await post("/maintenance", "Bearer t0ken", { host: "app1", for: 60000, reason: "x" })).status, 409);
    assert.deepEqual(await (await post("/maintenance", "Bearer t0ken", { host: "redis1", end: true })).json(), { host: "redis1", ended: null });
    const plan = await post("/failover", "Bearer t0ken", { host: "redis1", reason: "bad disk" });
    assert.equal(plan.status, 200);
    assert.equal(((await plan.json()) as { started: boolean }).started, false);
    const go = await post("/failover", "Bearer t0ken", { host: "redis1", confirm: true, operator: "bob" });
    assert.equal(go.status, 202);
    assert.deepEqual(await go.json(), { started: true, recoveryId: "r2", playbook: "failed_redis", host: "redis1", group: "pair:redis1+redis2", warnings: ["redis1 answers"] });
    assert.equal((await post("/failover", "Bearer t0ken", { host: "app1" })).status, 409);
    assert.equal((await fetch(`${base}/history?since=2h`)).status, 200);
    assert.deepEqual(calls, [
      "pause http 127.0.0.1 3600000 -",
      "pause alice via http 127.0.0.1 7200000 db upgrade",
      "pause http 127.0.0.1 null -",
      "resume http false",
      "resume http true",
      "acknowledge",
      'switchover {"pair":["redis1","redis2"]}',
      'switchover {"to":"redis1"}',
      "maintenance redis1 1800000 kernel update",
      "maintenance app1 60000 x",
      "end maintenance redis1",
      "failover redis1 http bad disk false",
      "failover redis1 bob - true",
      "failover app1 http - false",
      "history since",
    ]);
  });

  test("with the token: promote with acceptDataLoss (202, or 409 with the reason); without it, 400", async () => {
    calls.length = 0;
    const ok = await post("/promote", "Bearer t0ken", { host: "redis2", acceptDataLoss: true });
    assert.equal(ok.status, 202);
    assert.deepEqual(await ok.json(), { accepted: "redis2", failed: "redis1" });
    const no = await post("/promote", "Bearer t0ken", { host: "redis1", acceptDataLoss: true });
    assert.equal(no.status, 409);
    assert.match(((await no.json()) as { error: string }).error, /not failing now/);
    const unsaid = await post("/promote", "Bearer t0ken", { host: "redis2" });
    assert.equal(unsaid.status, 400);
    assert.match(((await unsaid.json()) as { error: string }).error, /acceptDataLoss must be true/);
    assert.equal((await post("/promote", undefined, { host: "redis2", acceptDataLoss: true })).status, 401);
    assert.deepEqual(calls, ["acceptDataLoss redis2 http", "acceptDataLoss redis1 http"]);
  });

  test("bad requests say what is wrong", async () => {
    const cases: [string, unknown, number, RegExp][] = [
      ["/switchover", {}, 400, /name the new primary \(to\) or the pair \(pair\)/],
      ["/switchover", { to: 3 }, 400, /to must be a host name/],
      ["/switchover", { pair: ["a"] }, 400, /pair must be a list of two host names/],
      ["/switchover", { to: "redis2", force: true }, 400, /unknown field force/],
      ["/switchover", [1], 400, /must be a JSON object/],
      ["/pause", { for: "2" }, 400, /for: '2' is not a duration/],
      ["/pause", { for: "2h", until: 3 }, 400, /unknown field until \(a pause takes reason, for\)/],
      ["/pause", { reason: "a\nb" }, 400, /reason must be one line of text/],
      ["/pause", { operator: "alice smith" }, 400, /operator must be a name/],
      ["/resume", { confirm: "yes" }, 400, /confirm must be true or false/],
      ["/maintenance", { for: "2h", reason: "x" }, 400, /host is required/],
      ["/maintenance", { host: "redis1", reason: "x" }, 400, /for is required/],
      ["/maintenance", { host: "redis1", for: "2h" }, 400, /reason is required/],
      ["/maintenance", { host: "redis1", end: true, for: "2h" }, 400, /end takes no for or reason/],
      ["/failover", {}, 400, /host is required/],
    ];
    for (const [path, body, status, error] of cases) {
      const r = await post(path, "Bearer t0ken", body);
      assert.equal(r.status, status);
      assert.match(((await r.json()) as { error: string }).error, error);
    }
    const notJson = await fetch(`${base}/switchover`, { method: "POST", headers: { authorization: "Bearer t0ken" }, body: "{" });
    assert.equal(notJson.status, 400);
    const big = await post("/pause", "Bearer t0ken", { x: "y".repeat(20_000) });
    assert.equal(big.status, 413);
    assert.equal((await fetch(`${base}/status`, { method: "POST" })).status, 405);
    assert.equal((await fetch(`${base}/constructor`)).status, 404);
  });

  test("/healthz: 200 while the loops turn, 503 when they stalled or before the first round", async () => {
    lastCycle = Date.now();
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    lastCycle = Date.now() - 60_000;
    const stale = await fetch(`${base}/healthz`);
    assert.equal(stale.status, 503);
    assert.equal(((await stale.json()) as { status: string }).status, "stale");
    lastCycle = null;
    assert.equal(((await (await fetch(`${base}/healthz`)).json()) as { status: string }).status, "starting");
    lastCycle = Date.now();
  });

  test("the status page: self-contained, its script and style allowed by hash", async () => {
    const r = await fetch(`${base}/`);
    const html = await r.text();
    assert.equal(html, STATUS_PAGE_HTML);
    assert.equal(r.headers.get("content-security-policy"), STATUS_PAGE_CSP);
    const script = /<script>([\s\S]*)<\/script>/.exec(html)?.[1] ?? "";
    const style = /<style>([\s\S]*)<\/style>/.exec(html)?.[1] ?? "";
    const hash = (s: string) => `'sha256-${createHash("sha256").update(s).digest("base64")}'`;
    assert.ok(STATUS_PAGE_CSP.includes(`script-src ${hash(script)}`));
    assert.ok(STATUS_PAGE_CSP.includes(`style-src ${hash(style)}`));
    assert.doesNotMatch(html, /(src|href)=["']?(https?:)?\/\//, "no external assets");
    assert.doesNotMatch(script, /innerHTML/, "daemon data is inserted as text");
  });

  test("a port in use is a clear error", async () => {
    const port = Number(new URL(base).port);
    const clash = new HttpApi({ daemon: stub, listen: { address: "127.0.0.1", port }, metrics, log: silentLogger() });
    await assert.rejects(clash.start(), /the HTTP API cannot listen on 127\.0\.0\.1:\d+: the address is in use \(set http\.listen or --http\)/);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe("drills on a fake clock", () => {
  function fake(start: number) {
    const timers: { fn: () => void; ms: number; cancelled: boolean }[] = [];
    const clock = {
      t: start,
      now() {
        return this.t;
      },
      setTimer(fn: () => void, ms: number) {
        const x = { fn, ms, cancelled: false };
        timers.push(x);
        return () => {
          x.cancelled = true;
        };
      },
    };
    return { clock: clock as DrillClock & { t: number }, timers };
  }

  function daemon(answer: { recoveryId: string; to: string } | { refused: string }, outcome: "succeeded" | "failed" = "succeeded") {
    const bus = new EventBus();
    const results: DaemonEvents["drill"][] = [];
    bus.on("drill", (d) => results.push(d));
    const d: DrillDaemon & { paused: boolean } = {
      paused: false,
      events: bus,
      requestSwitchover: async () => {
        if ("recoveryId" in answer) {
          setTimeout(() => {
            const ref = { recoveryId: answer.recoveryId, playbook: "switchover", host: answer.to, group: "g", diagnosis: "drill", origin: "drill" as const };
            bus.emit("recovery-end", { ...ref, outcome, at: 0, durationMs: 5, ...(outcome === "failed" ? { error: "failover: aborted" } : {}) });
          }, 5);
        }
        return answer;
      },
    };
    return { d, results };
  }

  test("a drill a minute ahead is armed, fires, tells its result and is armed again", async () => {
    const start = new Date(2031, 0, 7, 9, 59, 10).getTime();
    const { clock, timers } = fake(start);
    const { d, results } = daemon({ recoveryId: "r1", to: "redis2" });
    const drills = new Drills(d, silentLogger(), clock);
    drills.configure([{ schedule: "0 10 * * *", pair: ["redis1", "redis2"], action: "switchover" }]);
    const due = new Date(2031, 0, 7, 10, 0, 0).getTime();
    assert.equal(timers[0]?.ms, due - start);
    clock.t = due;
    timers[0]?.fn();
    await until("told", () => results.length === 1);
    assert.deepEqual(results[0], { pair: ["redis1", "redis2"], schedule: "0 10 * * *", action: "switchover", startedAt: due, endedAt: due, outcome: "succeeded", recoveryId: "r1", to: "redis2" });
    await until("re-armed", () => timers.length === 2);
    assert.equal(timers[1]?.ms, 24 * 3600 * 1000);
    await drills.close();
    assert.equal(timers[1]?.cancelled, true);
  });

  test("refused by the daemon: skipped, with its reason; a failed switchover: failed, with its error", async () => {
    const { clock } = fake(0);
    const refused = daemon({ refused: "redis2:9001 is down: a switchover needs both servers of every port up" });
    await new Drills(refused.d, silentLogger(), clock).runDrill({ schedule: "@daily", pair: ["redis1", "redis2"], action: "switchover" });
    assert.equal(refused.results[0]?.outcome, "skipped");
    assert.equal(refused.results[0]?.reason, "redis2:9001 is down: a switchover needs both servers of every port up");
    const failed = daemon({ recoveryId: "r2", to: "redis2" }, "failed");
    await new Drills(failed.d, silentLogger(), clock).runDrill({ schedule: "@daily", pair: ["redis1", "redis2"], action: "switchover" });
    assert.equal(failed.results[0]?.outcome, "failed");
    assert.equal(failed.results[0]?.reason, "failover: aborted");
  });

  test("a drill far ahead is reached in hops of setTimeout's longest delay", () => {
    const start = new Date(2031, 0, 1, 0, 0, 0).getTime();
    const { clock, timers } = fake(start);
    const drills = new Drills(daemon({ refused: "x" }).d, silentLogger(), clock);
    drills.configure([{ schedule: "0 0 1 6 *", pair: ["redis1", "redis2"], action: "switchover" }]);
    const due = new Date(2031, 5, 1, 0, 0, 0).getTime();
    let hops = 0;
    while (timers.at(-1)?.ms === 2 ** 31 - 1) {
      clock.t += 2 ** 31 - 1;
      timers.at(-1)?.fn();
      hops++;
    }
    assert.equal(hops, Math.floor((due - start) / (2 ** 31 - 1)));
    assert.equal(timers.at(-1)?.ms, due - clock.t);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe("systemd notify", () => {
  let dir: string;
  let fakeNotify: string;
  const sent = () => readFileSync(join(dir, "sent"), "utf8").trim().split("\n").filter(Boolean);
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "failoverd-sdnotify-"));
    fakeNotify = join(dir, "systemd-notify");
    writeFileSync(fakeNotify, `#!/bin/sh\necho "$NOTIFY_SOCKET $*" >> ${join(dir, "sent")}\n`);
    chmodSync(fakeNotify, 0o755);
    writeFileSync(join(dir, "sent"), "");
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("not under systemd: nothing is sent", async () => {
    const n = new SystemdNotifier({ log: silentLogger(), env: {}, command: fakeNotify, lastCycleAt: () => Date.now(), staleAfterMs: 1000 });
    assert.equal(n.enabled, false);
    await n.ready("x");
    await n.stopping();
    assert.deepEqual(sent(), []);
  });

  test("READY=1, then WATCHDOG=1 while the loops turn, none once they stall, STOPPING=1", async () => {
    let cycle: number | null = Date.now();
    const n = new SystemdNotifier({
      log: silentLogger(),
      env: { NOTIFY_SOCKET: "/run/x.sock", WATCHDOG_USEC: "200000", WATCHDOG_PID: String(process.pid) },
      command: fakeNotify,
      lastCycleAt: () => cycle,
      staleAfterMs: 1000,
    });
    assert.equal(n.watchdogMs, 200);
    await n.ready("watching unit");
    await until("two pings", () => sent().filter((l) => l.endsWith("WATCHDOG=1")).length >= 2);
    cycle = Date.now() - 5000;
    await sleep(50);
    const before = sent().length;
    await sleep(350);
    assert.equal(sent().length, before, "no ping while the loops are stalled");
    await n.stopping();
    const lines = sent();
    assert.equal(lines[0], "/run/x.sock --ready --status=watching unit");
    assert.equal(lines.at(-1), "/run/x.sock STOPPING=1");
  });

  test("a watchdog meant for another process is ignored", () => {
    const n = new SystemdNotifier({ log: silentLogger(), env: { NOTIFY_SOCKET: "/x", WATCHDOG_USEC: "1000000", WATCHDOG_PID: "1" }, lastCycleAt: () => null, staleAfterMs: 1 });
    assert.equal(n.watchdogMs, null);
  });
});

describe("the terminal log format", () => {
  test("time, level, message, then the fields", () => {
    const line = JSON.stringify({ level: "warn", time: "2031-01-07T10:00:00.123Z", app: "failoverd", target: "redis1:9001", failures: 3, msg: "redis1:9001 is down" });
    assert.equal(formatLine(line, false), "10:00:00.123 WARN  redis1:9001 is down  target=redis1:9001 failures=3");
    assert.equal(formatLine("not json", false), "not json");
  });
});
