/**
 * The alerting files in the repository (config/prometheus, config/grafana) as the tests read them: the PromQL
 * expressions of the rules and of the dashboard's panels, and the metric names each one uses.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { PACKAGE_ROOT } from "../../src/package-root.ts";

export const ROOT = PACKAGE_ROOT;
export const RULES = join(ROOT, "config/prometheus/failoverd.rules.yml");
export const RULE_TESTS = join(ROOT, "test/prometheus/failoverd.rules.test.yml");
export const DASHBOARD = join(ROOT, "config/grafana/failoverd.json");

export interface DashboardTarget {
  readonly refId: string;
  readonly expr: string;
  readonly datasource?: { readonly uid?: string };
}
export interface DashboardPanel {
  readonly id: number;
  readonly type: string;
  readonly title: string;
  readonly gridPos: { readonly x: number; readonly y: number; readonly w: number; readonly h: number };
  readonly datasource?: { readonly type?: string; readonly uid?: string };
  readonly targets?: readonly DashboardTarget[];
  readonly panels?: readonly DashboardPanel[];
}
export interface Dashboard {
  readonly uid: string;
  readonly title: string;
  readonly panels: readonly DashboardPanel[];
  readonly templating: { readonly list: readonly { readonly name: string; readonly type: string; readonly query?: unknown; readonly definition?: string }[] };
}

export function readDashboard(): Dashboard {
  return JSON.parse(readFileSync(DASHBOARD, "utf8")) as Dashboard;
}

/** Every panel, rows' nested ones included. */
export function allPanels(d: Dashboard): DashboardPanel[] {
  return d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

/** Each query of the dashboard: its panel, and its expression as written (Grafana variables and all). */
export function dashboardExprs(d: Dashboard = readDashboard()): { panel: string; refId: string; expr: string }[] {
  const out = allPanels(d).flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, refId: t.refId, expr: t.expr })));
  for (const v of d.templating.list) if (v.definition) out.push({ panel: `variable $${v.name}`, refId: v.name, expr: v.definition });
  return out;
}

/** Each alerting or recording rule's expression. */
export function ruleExprs(): { rule: string; expr: string }[] {
  const doc = parse(readFileSync(RULES, "utf8")) as { groups: { rules: { alert?: string; record?: string; expr: string }[] }[] };
  return doc.groups.flatMap((g) => g.rules.map((r) => ({ rule: r.alert ?? r.record ?? "?", expr: r.expr })));
}

/** Grafana's variables replaced by values Prometheus accepts, so an expression can be checked as PromQL. */
export function withoutGrafanaVariables(expr: string): string {
  return expr
    .replace(/\$__rate_interval|\$__interval|\$__range/g, "5m")
    .replace(/\$\{?instance\}?/g, ".*")
    .replace(/^label_values\((\w+), \w+\)$/, "$1");
}

/** The failoverd_* metric names an expression uses (outside its quoted label values). */
export function failoverdMetricNames(expr: string): string[] {
  const unquoted = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  return [...new Set(unquoted.match(/\bfailoverd_[a-zA-Z0-9_:]*/g) ?? [])];
}

/**
 * The metric names a /metrics text exports: every sample's name, and every declared family's (a histogram's
 * `_bucket`, `_sum` and `_count` too, so one without observations yet counts).
 */
export function exportedNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split("\n")) {
    const type = /^# TYPE (\S+) (\w+)$/.exec(line);
    if (type) {
      const [, name, kind] = type as unknown as [string, string, string];
      names.add(name);
      if (kind === "histogram") for (const s of ["_bucket", "_sum", "_count"]) names.add(name + s);
      if (kind === "summary") for (const s of ["_sum", "_count"]) names.add(name + s);
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/.exec(line);
    if (sample) names.add(sample[1] as string);
  }
  return names;
}
