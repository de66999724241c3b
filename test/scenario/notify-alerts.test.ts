/**
 * PagerDuty and Alertmanager webhooks of a running daemon: a replica's host dies, failoverd replaces it, and the
 * receivers (HTTP servers on 127.162.9.x) get one incident that opens with the finding, follows the recovery and is
 * resolved at its success. Real sandbox on 127.162.x.y.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, test } from "node:test";
import { signal, whyNotFree } from "../../src/providers/local/processes.ts";
import type { Sandbox } from "../../src/providers/local/sandbox.ts";
import { sandboxDown, sandboxUp } from "../../src/providers/local/up.ts";
import { startDaemon, stopDaemon, waitForDaemon } from "../../src/simulate/daemon-process.ts";
import { assertAddressesFree, type TestTopology, testTopology } from "../helpers/sandbox.ts";

const PD = { address: "127.162.9.1", port: 8080 };
const AM = { address: "127.162.9.2", port: 9093 };
const ROUTING_KEY = "pd-routing-key-162-never-logged";

interface Got {
  readonly path: string;
  readonly body: unknown;
}

async function receiver(at: { address: string; port: number }, status: number): Promise<{ server: Server; got: Got[] }> {
  const busy = await whyNotFree(at.address, at.port);
  if (busy) throw new Error(`test address is busy: ${busy}`);
  const got: Got[] = [];
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => {
      body += c.toString();
    });
    req.on("end", () => {
      got.push({ path: req.url ?? "", body: JSON.parse(body) as unknown });
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((r) => server.listen(at.port, at.address, r));
  return { server, got };
}

async function waitUntil(what: string, fn: () => boolean, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(50);
  }
}

type PdEvent = { routing_key: string; event_action: string; dedup_key: string; payload?: { summary: string; severity: string; class: string; source: string; group: string; component: string } };
type AmAlert = { labels: Record<string, string>; annotations: Record<string, string>; startsAt: string; endsAt: string };

describe("PagerDuty and Alertmanager notifications of a running daemon", { timeout: 180_000 }, () => {
  let tt: TestTopology;
  let sandbox: Sandbox;
  let daemon: ChildProcess | undefined;
  let pd: { server: Server; got: Got[] };
  let am: { server: Server; got: Got[] };

  before(async () => {
    pd = await receiver(PD, 202);
    am = await receiver(AM, 200);
    tt = testTopology({ net: 162 });
    const keyFile = join(tt.dir, "pd-routing-key");
    writeFileSync(keyFile, `${ROUTING_KEY}\n`, { mode: 0o600 });
    const extra = `notifications:
  webhooks:
    - { name: pager, format: pagerduty, url: "http://${PD.address}:${PD.port}/v2/enqueue", routingKey: { file: ${keyFile} } }
    - { name: am, format: alertmanager, url: "http://${AM.address}:${AM.port}/api/v2/alerts" }
`;
    writeFileSync(tt.path, `${readFileSync(tt.path, "utf8")}${extra}`);
    await assertAddressesFree(tt.topology);
    sandbox = await sandboxUp(tt.topology);
  });
  after(async () => {
    if (daemon) await stopDaemon(daemon);
    await sandboxDown(tt.topology);
    await new Promise<void>((r) => pd.server.close(() => r()));
    await new Promise<void>((r) => am.server.close(() => r()));
    tt.cleanup();
  });

  test("a dead replica: triggered with its finding, updated by its recovery, resolved when the recovery succeeds", async () => {
    const log = join(tt.dir, "daemon.log");
    daemon = startDaemon(tt.topology, log);
    await waitForDaemon(log, daemon);
    // redis2 holds the replicas of the seed topology.
    for (const p of sandbox.machineOf("redis2")?.processes ?? []) signal(p, "SIGKILL");
    await waitForDaemon(log, daemon, "recovery succeeded");
    // Only this finding's alert: on a loaded machine other checks may time out and raise findings of their own.
    const KEY = "failoverd/t162/DeadReplica:redis2";
    const pdEvents = () => pd.got.map((g) => g.body as PdEvent).filter((e) => e.dedup_key === KEY);
    const amAlerts = () => am.got.map((g) => (g.body as AmAlert[])[0] as AmAlert).filter((a) => a.labels["alertname"] === "FailoverdDeadReplica");
    await waitUntil("PagerDuty got the resolve", () => pdEvents().some((e) => e.event_action === "resolve"));
    await waitUntil("Alertmanager got the resolve", () => amAlerts().some((a) => Date.parse(a.endsAt) <= Date.now()));

    const events = pdEvents();
    assert.ok(events.every((e) => e.routing_key === ROUTING_KEY), JSON.stringify(events, null, 1));
    assert.ok(pd.got.every((g) => g.path === "/v2/enqueue"));
    const actions = events.map((e) => e.event_action);
    // Triggers (the finding, the recovery's start, any failed step), then one resolve, last.
    assert.equal(actions.at(-1), "resolve");
    assert.deepEqual(actions.slice(0, -1).filter((a) => a !== "trigger"), []);
    assert.ok(actions.length >= 3, actions.join(", "));
    const first = events[0]?.payload;
    assert.deepEqual(
      { source: first?.source, severity: first?.severity, class: first?.class, group: first?.group, component: first?.component },
      { source: "redis2", severity: "critical", class: "FailoverdDeadReplica", group: "t162", component: "redis2" },
    );
    assert.match(events[0]?.payload?.summary ?? "", /^\[t162\] DeadReplica on redis2: running failed_redis$/);
    assert.ok(events.some((e) => /^\[t162\] failed_redis for redis2 started \(DeadReplica\)$/.test(e.payload?.summary ?? "")));

    for (const g of am.got) {
      assert.equal((g.body as AmAlert[]).length, 1);
      assert.equal(g.path, "/api/v2/alerts");
    }
    const alerts = amAlerts();
    for (const a of alerts) assert.deepEqual(a.labels, { alertname: "FailoverdDeadReplica", severity: "critical", host: "redis2", topology: "t162", source: "failoverd" });
    const startsAt = new Set(alerts.map((a) => a.startsAt));
    assert.equal(startsAt.size, 1, "one alert, one start");
    const last = alerts.at(-1) as AmAlert;
    assert.match(last.annotations["summary"] ?? "", /^failed_redis for redis2 succeeded after /);
    assert.ok(Date.parse(last.endsAt) >= Date.parse(last.startsAt) && Date.parse(last.endsAt) <= Date.now(), "resolved: endsAt is the recovery's end");
    for (const a of alerts.slice(0, -1)) assert.ok(Date.parse(a.endsAt) > Date.parse(last.endsAt), "firing: endsAt ahead");

    // The routing key went to PagerDuty only: not in the daemon's log.
    assert.doesNotMatch(readFileSync(log, "utf8"), new RegExp(ROUTING_KEY));
  });
});
