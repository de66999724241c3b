/**
 * The alerting files against a real daemon: every metric the Prometheus rules and the Grafana dashboard name is one
 * that `failoverd run` exports (scraped from its /metrics), and the series a config determines are there at 0
 * before anything happened. Real sandbox on 127.160.x.y.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, test } from "node:test";
import { whyNotFree } from "../../src/providers/local/processes.ts";
import { sandboxDown, sandboxUp } from "../../src/providers/local/up.ts";
import { startDaemon, stopDaemon, waitForDaemon } from "../../src/simulate/daemon-process.ts";
import { dashboardExprs, exportedNames, failoverdMetricNames, ruleExprs } from "../helpers/alerting.ts";
import { assertAddressesFree, type TestTopology, testTopology } from "../helpers/sandbox.ts";

const HTTP = { address: "127.160.9.1", port: 9464 };
const API = `http://${HTTP.address}:${HTTP.port}`;

describe("alerting files against a running daemon", { timeout: 120_000 }, () => {
  let tt: TestTopology;
  let daemon: ChildProcess | undefined;
  let text = "";

  before(async () => {
    tt = testTopology({ net: 160, extra: `drills: [{ schedule: "0 10 * * 2", pair: [redis1, redis2] }]\nnotifications: { webhooks: [{ name: pager, url: "http://127.160.9.2:9/alerts" }] }\n` });
    await assertAddressesFree(tt.topology);
    const busy = await whyNotFree(HTTP.address, HTTP.port);
    if (busy) throw new Error(`test address is busy: ${busy}`);
    await sandboxUp(tt.topology);
    const log = join(tt.dir, "daemon.log");
    daemon = startDaemon(tt.topology, log, {}, ["--http", `${HTTP.address}:${HTTP.port}`]);
    await waitForDaemon(log, daemon);
    // The first complete round is in the metrics once /healthz says so.
    const deadline = Date.now() + 30_000;
    while ((await fetch(`${API}/healthz`).catch(() => null))?.status !== 200) {
      if (Date.now() > deadline) throw new Error(`the daemon did not become healthy; see ${log}`);
      await sleep(100);
    }
    const res = await fetch(`${API}/metrics`);
    assert.equal(res.status, 200);
    text = await res.text();
  });
  after(async () => {
    if (daemon) await stopDaemon(daemon);
    await sandboxDown(tt.topology);
    tt.cleanup();
  });

  test("every metric the dashboard's queries name is exported", () => {
    const exported = exportedNames(text);
    const used = dashboardExprs().flatMap((e) => failoverdMetricNames(e.expr).map((m) => ({ ...e, metric: m })));
    assert.ok(used.length >= 20, `${used.length} metric uses`);
    const missing = used.filter((u) => !exported.has(u.metric)).map((u) => `${u.panel}: ${u.metric}`);
    assert.deepEqual(missing, []);
  });

  test("every metric the alerting rules name is exported", () => {
    const exported = exportedNames(text);
    const used = ruleExprs().flatMap((r) => failoverdMetricNames(r.expr).map((m) => ({ ...r, metric: m })));
    assert.ok(used.length >= 10, `${used.length} metric uses`);
    assert.deepEqual(used.filter((u) => !exported.has(u.metric)).map((u) => `${u.rule}: ${u.metric}`), []);
  });

  test("before any event: build_info, and the counters and statuses of the config at 0", () => {
    const lines = text.split("\n");
    assert.match(text, /^failoverd_build_info\{version="\d+\.\d+\.\d+[^"]*",node="v\d+\.\d+\.\d+"\} 1$/m);
    for (const line of [
      'failoverd_recoveries_total{playbook="failed_redis",outcome="failed",origin="diagnosis"} 0',
      'failoverd_recoveries_running{playbook="switchover"} 0',
      'failoverd_diagnoses_total{diagnosis="DeadPrimary",host="redis1",decision="recover"} 0',
      'failoverd_diagnosis_active{diagnosis="HaproxyDown",host="haproxy2"} 0',
      'failoverd_check_failures_total{target="redis2:9002",kind="timeout"} 0',
      'failoverd_drills_total{pair="redis1+redis2",outcome="failed"} 0',
      'failoverd_notifications_total{webhook="pager",result="dropped"} 0',
      'failoverd_target_status{target="redis1:9001",status="up"} 1',
      'failoverd_target_status{target="app",status="up"} 1',
    ]) {
      assert.ok(lines.includes(line), `metrics have: ${line}`);
    }
    assert.match(text, /^failoverd_checks_total\{target="haproxy1",type="haproxy"\} [1-9]\d*$/m);
    // Durations in seconds: no metric in milliseconds.
    assert.doesNotMatch(text, /^failoverd_\w*_ms(_\w+)?[{ ]/m);
  });
});
