/**
 * The alerting files in the repository, checked without a daemon: the Prometheus rules pass `promtool check rules`
 * and their unit tests (`promtool test rules`), and the Grafana dashboard is a well-formed dashboard whose every
 * query is valid PromQL. (That each metric they name is one the daemon exports: test/scenario/alerting.test.ts.)
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, test } from "node:test";
import { stringify } from "yaml";
import { allPanels, dashboardExprs, readDashboard, RULE_TESTS, RULES, withoutGrafanaVariables } from "../helpers/alerting.ts";

const execFileP = promisify(execFile);
/** Grafana's reference to the dashboard's data source variable. */
const DATASOURCE = ["$", "{datasource}"].join("");

async function promtool(...args: string[]): Promise<{ code: number; out: string }> {
  try {
    const r = await execFileP("promtool", args, { timeout: 60_000 });
    return { code: 0, out: r.stdout + r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof x.code === "number" ? x.code : -1, out: `${x.stdout ?? ""}${x.stderr ?? ""}` };
  }
}

describe("Prometheus rules", () => {
  test("pass promtool check rules", async () => {
    const r = await promtool("check", "rules", RULES);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /SUCCESS: \d+ rules found/);
  });

  test("pass their unit tests (promtool test rules)", async () => {
    const r = await promtool("test", "rules", RULE_TESTS);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /SUCCESS/);
  });
});

describe("Grafana dashboard", () => {
  const d = readDashboard();

  test("is a dashboard: a uid, a title, unique panel ids, panels on the 24-column grid without overlaps", () => {
    assert.equal(d.uid, "failoverd");
    assert.equal(d.title, "failoverd");
    const panels = allPanels(d);
    assert.ok(panels.length >= 10, `${panels.length} panels`);
    const ids = panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, `duplicate panel ids: ${ids.join(", ")}`);
    const cells = new Map<string, string>();
    for (const p of panels) {
      const g = p.gridPos;
      assert.ok(Number.isInteger(g.x) && Number.isInteger(g.y) && g.w > 0 && g.h > 0 && g.x + g.w <= 24, `${p.title}: gridPos ${JSON.stringify(g)}`);
      for (let x = g.x; x < g.x + g.w; x++) {
        for (let y = g.y; y < g.y + g.h; y++) {
          const other = cells.get(`${x},${y}`);
          assert.equal(other, undefined, `${p.title} overlaps ${other}`);
          cells.set(`${x},${y}`, p.title);
        }
      }
    }
  });

  test("every panel queries the chosen Prometheus, each query with its own refId", () => {
    const vars = new Map(d.templating.list.map((v) => [v.name, v]));
    assert.equal(vars.get("datasource")?.type, "datasource");
    assert.equal(vars.get("datasource")?.query, "prometheus");
    assert.equal(vars.get("instance")?.type, "query");
    for (const p of allPanels(d)) {
      if (p.type === "row") continue;
      assert.ok(p.title.length > 0, `panel ${p.id} has a title`);
      assert.deepEqual(p.datasource, { type: "prometheus", uid: DATASOURCE }, `${p.title}: datasource`);
      assert.ok((p.targets ?? []).length > 0, `${p.title} has a query`);
      const refs = (p.targets ?? []).map((t) => t.refId);
      assert.equal(new Set(refs).size, refs.length, `${p.title}: refIds ${refs.join(", ")}`);
      for (const t of p.targets ?? []) {
        assert.equal(t.datasource?.uid, DATASOURCE, `${p.title} ${t.refId}: datasource`);
        // Only the variables the dashboard defines, and Grafana's own.
        for (const v of t.expr.match(/\$\{?(\w+)\}?/g) ?? []) {
          const name = v.replace(/[${}]/g, "");
          assert.ok(vars.has(name) || ["__rate_interval", "__interval", "__range"].includes(name), `${p.title}: unknown variable ${v}`);
        }
        assert.match(t.expr, /failoverd_|up\{/, `${p.title}: ${t.expr}`);
      }
    }
  });

  test("every query is valid PromQL (promtool checks them as recording rules)", async () => {
    const exprs = dashboardExprs(d);
    const dir = mkdtempSync(join(tmpdir(), "failoverd-dashboard-"));
    try {
      const file = join(dir, "dashboard.rules.yml");
      const rules = exprs.map((e, i) => ({ record: `dashboard:query_${i}`, expr: withoutGrafanaVariables(e.expr) }));
      writeFileSync(file, stringify({ groups: [{ name: "dashboard", rules }] }));
      const r = await promtool("check", "rules", file);
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, new RegExp(`SUCCESS: ${exprs.length} rules found`));
      // And the check does catch a broken query.
      writeFileSync(file, stringify({ groups: [{ name: "dashboard", rules: [...rules, { record: "dashboard:broken", expr: "sum by (le (failoverd_checks_total)" }] }] }));
      assert.notEqual((await promtool("check", "rules", file)).code, 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
