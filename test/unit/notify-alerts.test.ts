/**
 * PagerDuty Events v2 and Alertmanager webhooks: real HTTP servers on 127.161.0.1 receive the deliveries; the tests
 * assert the exact payloads, which notifications trigger, update and resolve an alert, Alertmanager's re-posts, and
 * that a routing key never reaches a log line.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, test } from "node:test";
import type { DiagnosisName } from "../../src/checks/detector.ts";
import { type DaemonEvents, EventBus, type RecoveryRef } from "../../src/daemon/events.ts";
import { ConfigError } from "../../src/errors.ts";
import { createLogger, silentLogger } from "../../src/log.ts";
import { ALERTMANAGER_HOLD_MS, Notifier } from "../../src/ops/notify.ts";
import { parseTopology } from "../../src/topology/load.ts";
import type { Topology } from "../../src/topology/topology.ts";

const ADDRESS = "127.161.0.1";
const T0 = Date.UTC(2031, 0, 7, 10, 0, 0);
const iso = (ms: number) => new Date(ms).toISOString();

const topo = (notifications: string): Topology =>
  parseTopology(
    `topology: unit
hosts:
  redis1:   { role: redis, address: 127.161.1.1, ports: [9001] }
  redis2:   { role: redis, address: 127.161.1.2, ports: [9001] }
  haproxy1: { role: haproxy, address: 127.161.2.1, frontends: { 8001: 9001 }, adminPort: 9999 }
pairs:
  - [redis1, redis2]
notifications: ${notifications}
`,
    "test.yaml",
  );

interface Received {
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: unknown;
}

/** An HTTP server on 127.161.0.1 that keeps every request and answers `status(path)` (202 by default, as PagerDuty). */
async function receiver(status: (path: string) => number = () => 202): Promise<{ server: Server; url: string; got: Received[] }> {
  const got: Received[] = [];
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => {
      body += c.toString();
    });
    req.on("end", () => {
      got.push({ path: req.url ?? "", headers: req.headers, body: JSON.parse(body) as unknown });
      res.writeHead(status(req.url ?? ""), { "content-type": "application/json" }).end('{"status":"success"}');
    });
  });
  await new Promise<void>((r) => server.listen(0, ADDRESS, r));
  return { server, url: `http://${ADDRESS}:${(server.address() as AddressInfo).port}`, got };
}

const closeServer = (s: Server) => new Promise<void>((r) => s.close(() => r()));

async function until(what: string, fn: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(10);
  }
}

const finding = (name: DiagnosisName, host: string, decision: DaemonEvents["diagnosis"]["decision"], at: number): DaemonEvents["diagnosis"] => ({
  key: `${name}:${host}`,
  diagnosis: { name, host, targets: [`${host}:9001`], evidence: [`${host}:9001 does not answer`] },
  actionable: decision.kind === "recover",
  decision,
  since: at - 600,
  acknowledged: false,
  at,
});
const cleared = (name: DiagnosisName, host: string, at: number, why: "cleared" | "recovering"): DaemonEvents["resolved"] => ({
  key: `${name}:${host}`,
  diagnosis: { name, host, targets: [`${host}:9001`], evidence: [] },
  at,
  sinceMs: 2000,
  why,
});
const ref = (over: Partial<RecoveryRef> = {}): RecoveryRef => ({
  recoveryId: "r1",
  playbook: "failed_redis",
  host: "redis1",
  group: "pair:redis1+redis2",
  diagnosis: "DeadPrimary",
  origin: "diagnosis",
  ...over,
});

describe("PagerDuty Events v2", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "failoverd-pd-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("a finding triggers, its recovery adds to the same incident (one dedup_key), its success resolves it", async () => {
    const srv = await receiver();
    const keyFile = join(dir, "routing-key");
    writeFileSync(keyFile, "R0UTING-KEY-from-a-file\n");
    const bus = new EventBus();
    const n = new Notifier(topo(`{ webhooks: [{ name: pd, format: pagerduty, url: "${srv.url}/v2/enqueue", routingKey: { file: ${keyFile} } }] }`), { log: silentLogger() });
    try {
      n.attach(bus);
      bus.emit("diagnosis", finding("DeadPrimary", "redis1", { kind: "recover", playbook: "failed_redis" }, T0));
      bus.emit("resolved", cleared("DeadPrimary", "redis1", T0 + 5, "recovering")); // told by the recovery
      bus.emit("recovery-start", { ...ref(), at: T0 + 10 });
      bus.emit("step-end", { ...ref(), step: "fence", title: "Fence redis1 in every HAProxy", attempt: 1, at: T0 + 500, ok: false, durationMs: 490, error: "HAProxy refused" });
      bus.emit("recovery-end", { ...ref(), outcome: "succeeded", at: T0 + 4000, durationMs: 3990 });
      await until("4 deliveries", () => srv.got.length >= 4);
      await sleep(100);
      assert.equal(srv.got.length, 4);
      for (const g of srv.got) {
        assert.equal(g.path, "/v2/enqueue");
        assert.equal(g.headers["content-type"], "application/json");
      }
      const dedup_key = "failoverd/unit/DeadPrimary:redis1";
      const routing_key = "R0UTING-KEY-from-a-file";
      const trigger = (at: number, summary: string, severity: string, custom_details: Record<string, unknown>) => ({
        routing_key,
        event_action: "trigger",
        dedup_key,
        client: "failoverd",
        payload: { summary, source: "redis1", severity, timestamp: iso(at), group: "unit", class: "FailoverdDeadPrimary", component: "redis1", custom_details },
      });
      assert.deepEqual(
        srv.got.map((g) => g.body),
        [
          trigger(T0, "[unit] DeadPrimary on redis1: running failed_redis", "critical", {
            event: "diagnosis",
            details: ["redis1:9001 does not answer"],
            key: "DeadPrimary:redis1",
            diagnosis: "DeadPrimary",
            host: "redis1",
            targets: ["redis1:9001"],
            decision: { kind: "recover", playbook: "failed_redis" },
            since: T0 - 600,
          }),
          trigger(T0 + 10, "[unit] failed_redis for redis1 started (DeadPrimary)", "warning", {
            event: "recovery-start",
            details: ["recovery r1", "origin: diagnosis"],
            recoveryId: "r1",
            playbook: "failed_redis",
            host: "redis1",
            diagnosis: "DeadPrimary",
            origin: "diagnosis",
          }),
          trigger(T0 + 500, "[unit] failed_redis for redis1: step fence failed (attempt 1)", "warning", {
            event: "step-failed",
            details: ["Fence redis1 in every HAProxy", "HAProxy refused"],
            recoveryId: "r1",
            playbook: "failed_redis",
            host: "redis1",
            step: "fence",
            attempt: 1,
            error: "HAProxy refused",
          }),
          { routing_key, event_action: "resolve", dedup_key },
        ],
      );
    } finally {
      await n.close();
      await closeServer(srv.server);
    }
  });

  test("an alert-only finding resolves when it clears; a planned switchover opens nothing unless it fails; drills; an interrupted recovery says nothing", async () => {
    const srv = await receiver();
    process.env["FAILOVERD_TEST_PD_KEY_161"] = "R0UTING-KEY-from-env";
    const bus = new EventBus();
    const n = new Notifier(topo(`{ webhooks: [{ format: pagerduty, url: "${srv.url}/enqueue", routingKey: { env: FAILOVERD_TEST_PD_KEY_161 } }] }`), { log: silentLogger() });
    try {
      n.attach(bus);
      bus.emit("diagnosis", finding("UnreachableReplica", "redis2", { kind: "alert", reason: "not confirmed" }, T0));
      bus.emit("resolved", cleared("UnreachableReplica", "redis2", T0 + 3000, "cleared"));
      // A planned switchover that succeeds: its start (info) opens nothing; its end's resolve goes out (harmless).
      const sw = ref({ recoveryId: "s1", playbook: "switchover", host: "redis2", group: "pair:redis1+redis2", diagnosis: "switchover requested by ops", origin: "operator" });
      bus.emit("recovery-start", { ...sw, at: T0 + 4000 });
      bus.emit("recovery-end", { ...sw, outcome: "succeeded", at: T0 + 4500, durationMs: 500 });
      // One that fails: its own incident, critical.
      const sw2 = { ...sw, recoveryId: "s2" };
      bus.emit("recovery-start", { ...sw2, at: T0 + 5000 });
      bus.emit("recovery-end", { ...sw2, outcome: "rolled-back", at: T0 + 6000, durationMs: 1000, error: "FAILOVER timed out" });
      // A recovery interrupted by a shutdown resumes later: nothing to say now.
      bus.emit("recovery-end", { ...ref({ recoveryId: "r9" }), outcome: "interrupted", at: T0 + 6500, durationMs: 10 });
      const drill = { pair: ["redis1", "redis2"] as const, schedule: "0 10 * * 2", action: "switchover" as const, startedAt: T0 + 7000 };
      bus.emit("drill", { ...drill, outcome: "failed", endedAt: T0 + 8000, reason: "preflight: redis2 not in sync" });
      bus.emit("drill", { ...drill, outcome: "succeeded", endedAt: T0 + 9000, to: "redis2" });
      await until("6 deliveries", () => srv.got.length >= 6);
      await sleep(100);
      const routing_key = "R0UTING-KEY-from-env";
      assert.deepEqual(
        srv.got.map((g) => g.body),
        [
          {
            routing_key,
            event_action: "trigger",
            dedup_key: "failoverd/unit/UnreachableReplica:redis2",
            client: "failoverd",
            payload: {
              summary: "[unit] UnreachableReplica on redis2: not confirmed",
              source: "redis2",
              severity: "warning",
              timestamp: iso(T0),
              group: "unit",
              class: "FailoverdUnreachableReplica",
              component: "redis2",
              custom_details: {
                event: "diagnosis",
                details: ["redis2:9001 does not answer"],
                key: "UnreachableReplica:redis2",
                diagnosis: "UnreachableReplica",
                host: "redis2",
                targets: ["redis2:9001"],
                decision: { kind: "alert", reason: "not confirmed" },
                since: T0 - 600,
              },
            },
          },
          { routing_key, event_action: "resolve", dedup_key: "failoverd/unit/UnreachableReplica:redis2" },
          { routing_key, event_action: "resolve", dedup_key: "failoverd/unit/recovery:s1" },
          {
            routing_key,
            event_action: "trigger",
            dedup_key: "failoverd/unit/recovery:s2",
            client: "failoverd",
            payload: {
              summary: "[unit] switchover for redis2 rolled-back after 1.0 s",
              source: "redis2",
              severity: "critical",
              timestamp: iso(T0 + 6000),
              group: "unit",
              class: "FailoverdRecovery",
              component: "redis2",
              custom_details: {
                event: "recovery-end",
                details: ["FAILOVER timed out"],
                recoveryId: "s2",
                playbook: "switchover",
                host: "redis2",
                outcome: "rolled-back",
                durationMs: 1000,
                origin: "operator",
                error: "FAILOVER timed out",
              },
            },
          },
          {
            routing_key,
            event_action: "trigger",
            dedup_key: "failoverd/unit/drill:redis1+redis2",
            client: "failoverd",
            payload: {
              summary: "[unit] drill of redis1+redis2: switchover failed in 1.0 s",
              source: "redis1+redis2",
              severity: "critical",
              timestamp: iso(T0 + 8000),
              group: "unit",
              class: "FailoverdDrill",
              custom_details: {
                event: "drill",
                details: ["preflight: redis2 not in sync"],
                ...drill,
                pair: "redis1+redis2",
                outcome: "failed",
                endedAt: T0 + 8000,
                reason: "preflight: redis2 not in sync",
              },
            },
          },
          { routing_key, event_action: "resolve", dedup_key: "failoverd/unit/drill:redis1+redis2" },
        ],
      );
    } finally {
      delete process.env["FAILOVERD_TEST_PD_KEY_161"];
      await n.close();
      await closeServer(srv.server);
    }
  });

  test("the routing key is a secret: a missing one is told by its field, and no log line carries it", async () => {
    assert.throws(
      () => new Notifier(topo(`{ webhooks: [{ format: pagerduty, routingKey: { env: FAILOVERD_TEST_PD_MISSING_161 } }] }`), { log: silentLogger() }),
      (e: unknown) => e instanceof ConfigError && /notifications\.webhooks\[0\]\.routingKey: environment variable FAILOVERD_TEST_PD_MISSING_161 is not set/.test(e.message),
    );
    const srv = await receiver(() => 400); // PagerDuty's answer to an invalid event: final, not retried
    process.env["FAILOVERD_TEST_PD_KEY_161"] = "S3CRET-ROUTING-KEY";
    const out = new PassThrough();
    let logged = "";
    out.on("data", (c: Buffer) => {
      logged += c.toString();
    });
    const bus = new EventBus();
    const n = new Notifier(topo(`{ webhooks: [{ name: pd, format: pagerduty, url: "${srv.url}/enqueue", routingKey: { env: FAILOVERD_TEST_PD_KEY_161 } }] }`), {
      log: createLogger({ level: "debug", destination: out }),
    });
    try {
      n.attach(bus);
      bus.emit("diagnosis", finding("DeadPrimary", "redis1", { kind: "recover", playbook: "failed_redis" }, T0));
      await until("the drop is logged", () => logged.includes("dropped"));
      assert.equal(srv.got.length, 1);
      assert.equal((srv.got[0]?.body as { routing_key: string } | undefined)?.routing_key, "S3CRET-ROUTING-KEY");
      assert.match(logged, /notification to pd dropped: HTTP 400/);
      assert.doesNotMatch(logged, /S3CRET/);
    } finally {
      delete process.env["FAILOVERD_TEST_PD_KEY_161"];
      await n.close();
      await closeServer(srv.server);
    }
  });
});

describe("Alertmanager", () => {
  test("v2 alerts: firing with endsAt ahead and posted again while the finding or recovery lasts; resolved with endsAt; startsAt kept", async () => {
    const srv = await receiver(() => 200);
    const bus = new EventBus();
    let now = T0;
    const n = new Notifier(topo(`{ webhooks: [{ name: am, format: alertmanager, url: "${srv.url}/api/v2/alerts" }] }`), { log: silentLogger(), now: () => now });
    const bodies = () => srv.got.map((g) => g.body);
    const alert = (labels: Record<string, string>, summary: string, event: string, startsAt: number, endsAt: number, description?: string) => [
      {
        labels: { ...labels, topology: "unit", source: "failoverd" },
        annotations: { summary, ...(description ? { description } : {}), event },
        startsAt: iso(startsAt),
        endsAt: iso(endsAt),
      },
    ];
    const unreachable = { alertname: "FailoverdUnreachablePrimary", severity: "warning", host: "redis1" };
    const deadReplica = { alertname: "FailoverdDeadReplica", severity: "critical", host: "redis2" };
    const recovery = ref({ recoveryId: "r7", host: "redis2", diagnosis: "DeadReplica" });
    try {
      n.attach(bus);
      bus.emit("diagnosis", finding("UnreachablePrimary", "redis1", { kind: "alert", reason: "not confirmed" }, T0));
      await until("posted", () => srv.got.length === 1);
      assert.deepEqual(bodies(), [
        alert(unreachable, "UnreachablePrimary on redis1: not confirmed", "diagnosis", T0, T0 + ALERTMANAGER_HOLD_MS, "redis1:9001 does not answer"),
      ]);
      assert.equal(srv.got[0]?.path, "/api/v2/alerts");

      now = T0 + 30_000;
      n.refreshDue(); // posted 30 s ago: not yet
      bus.emit("diagnosis", finding("DeadReplica", "redis2", { kind: "recover", playbook: "failed_redis" }, now));
      bus.emit("resolved", cleared("DeadReplica", "redis2", now + 1, "recovering"));
      bus.emit("recovery-start", { ...recovery, at: now + 2 });
      await until("3 posts", () => srv.got.length === 3);

      now = T0 + 61_000;
      n.refreshDue(); // the finding lasts (61 s since its post): posted again; the recovery's was posted 31 s ago
      await until("4 posts", () => srv.got.length === 4);
      now = T0 + 95_000;
      n.refreshDue(); // now the recovery's too, as it runs (its finding went under recovery)
      await until("5 posts", () => srv.got.length === 5);
      bus.emit("recovery-end", { ...recovery, outcome: "succeeded", at: now, durationMs: 65_000 });
      bus.emit("resolved", cleared("UnreachablePrimary", "redis1", now + 1, "cleared"));
      await until("7 posts", () => srv.got.length === 7);
      now = T0 + 400_000;
      n.refreshDue(); // nothing fires any more
      await sleep(100);
      assert.deepEqual(bodies(), [
        alert(unreachable, "UnreachablePrimary on redis1: not confirmed", "diagnosis", T0, T0 + ALERTMANAGER_HOLD_MS, "redis1:9001 does not answer"),
        alert(deadReplica, "DeadReplica on redis2: running failed_redis", "diagnosis", T0 + 30_000, T0 + 30_000 + ALERTMANAGER_HOLD_MS, "redis2:9001 does not answer"),
        alert(deadReplica, "failed_redis for redis2 started (DeadReplica)", "recovery-start", T0 + 30_000, T0 + 30_000 + ALERTMANAGER_HOLD_MS, "recovery r7\norigin: diagnosis"),
        alert(unreachable, "UnreachablePrimary on redis1: not confirmed", "diagnosis", T0, T0 + 61_000 + ALERTMANAGER_HOLD_MS, "redis1:9001 does not answer"),
        alert(deadReplica, "failed_redis for redis2 started (DeadReplica)", "recovery-start", T0 + 30_000, T0 + 95_000 + ALERTMANAGER_HOLD_MS, "recovery r7\norigin: diagnosis"),
        alert(deadReplica, "failed_redis for redis2 succeeded after 65 s", "recovery-end", T0 + 30_000, T0 + 95_000),
        alert(unreachable, "resolved: UnreachablePrimary on redis1 (lasted 2.0 s)", "resolved", T0, T0 + 95_001),
      ]);
    } finally {
      await n.close();
      await closeServer(srv.server);
    }
  });

  test("a failed recovery is posted firing once and left to lapse: not posted again once it has ended", async () => {
    const srv = await receiver(() => 200);
    const bus = new EventBus();
    let now = T0;
    const n = new Notifier(topo(`{ webhooks: [{ format: alertmanager, url: "${srv.url}/api/v2/alerts" }] }`), { log: silentLogger(), now: () => now });
    try {
      n.attach(bus);
      const sw = ref({ recoveryId: "s3", playbook: "switchover", host: "redis2", diagnosis: "switchover requested by ops", origin: "operator" });
      bus.emit("recovery-start", { ...sw, at: now }); // info: opens nothing
      bus.emit("step-end", { ...sw, step: "failover", title: "FAILOVER", attempt: 1, at: now + 100, ok: false, durationMs: 100, error: "FAILOVER timed out" });
      bus.emit("recovery-end", { ...sw, outcome: "failed", at: now + 200, durationMs: 200, error: "FAILOVER timed out" });
      await until("2 posts", () => srv.got.length === 2);
      for (const t of [61_000, 200_000, 400_000]) {
        now = T0 + t;
        n.refreshDue();
      }
      await sleep(100);
      assert.equal(srv.got.length, 2, "a recovery that ended is not posted again");
      const last = (srv.got[1]?.body as { labels: Record<string, string>; annotations: Record<string, string>; endsAt: string }[] | undefined)?.[0];
      assert.deepEqual(last?.labels, { alertname: "FailoverdRecovery", severity: "critical", host: "redis2", playbook: "switchover", recovery_id: "s3", topology: "unit", source: "failoverd" });
      assert.equal(last?.annotations["summary"], "switchover for redis2 failed after 0.2 s");
      assert.equal(last?.endsAt, iso(T0 + ALERTMANAGER_HOLD_MS));
    } finally {
      await n.close();
      await closeServer(srv.server);
    }
  });
});
