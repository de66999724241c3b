/** The human form of a simulate report: a timeline of the recovery, then the figures. */
import type { MonitorsReport, SimulateReport } from "./scenario.ts";

export function formatReport(r: SimulateReport): string {
  const ms = (v: number | null) => (v === null ? "-" : `${v} ms`);
  const lines: string[] = [];
  const m = r.monitors;
  const hostFault = r.fault === "monitor-leader" || r.fault === "monitor-partition" ? "crash" : r.fault;
  lines.push("", `timeline (ms after the fault: ${hostFault} of ${r.target}${m ? `; ${m.instances.length} instances, ${m.instances.join(", ")}` : ""})`);
  const timeline: [number, string][] = [[0, "fault injected"]];
  if (r.detectMs !== null) timeline.push([r.detectMs, `${r.diagnosis} confirmed: ${r.playbook} started`]);
  for (const s of r.steps) {
    timeline.push([s.startMs, `${s.name}${s.attempts > 1 ? ` (attempt ${s.attempts})` : ""} -> ${s.outcome}${s.endMs !== null ? ` at ${s.endMs}` : ""}`]);
  }
  // The monitors' events among the steps, in time order (single-instance: the timeline as it always was).
  if (m) timeline.push(...monitorEvents(m));
  if (m) timeline.sort((a, b) => a[0] - b[0]);
  for (const [at, what] of timeline) lines.push(`  ${String(at).padStart(6)}  ${what}`);
  lines.push("");
  const rows: [string, string][] = [
    ["recovered", r.recovered ? "yes" : `NO${r.why ? ` (${r.why})` : ""}`],
    ["detection budget (interval x fall)", ms(r.budgetMs)],
    ["time to detect", ms(r.detectMs)],
    ["client-visible write outage", ms(r.outageMs)],
    ["first write after the fault", ms(r.firstWriteAfterFaultMs)],
    ["failed operations", String(r.failedOps)],
    ["acknowledged writes", String(r.ackedWrites)],
    ["acknowledged writes lost", String(r.lostAckedWrites)],
    ["fresh-connection probes failed", `${r.probes.failed} of ${r.probes.total}`],
    ["redundancy restored", ms(r.redundancyRestoredMs)],
  ];
  if (m) rows.push(...monitorRows(m));
  const w = Math.max(...rows.map(([k]) => k.length));
  for (const [k, v] of rows) lines.push(`  ${k.padEnd(w)}  ${v}`);
  return lines.join("\n");
}

function monitorEvents(m: MonitorsReport): [number, string][] {
  const events: [number, string][] = [];
  m.leaders.forEach((l, i) => {
    // The leader at the start is in the figures below; the timeline shows changes.
    if (i > 0) events.push([l.atMs, l.leader ? `leader: ${l.leader}` : "no leader"]);
  });
  const f = m.fault;
  if (f) {
    events.push([f.atMs, f.kind === "monitor-leader" ? `${f.instance}, the acting instance, killed before ${f.step}` : `${f.instance} cut off from etcd and the topology${f.step ? ` before ${f.step}` : ""}`]);
    if (f.healedMs !== null) events.push([f.healedMs, `${f.instance} reconnected`]);
  }
  for (const a of m.acts) events.push([a.atMs, `${a.instance} ${a.what === "started" ? "started the recovery" : "resumed the recovery"}`]);
  if (m.resumedMs !== null) events.push([m.resumedMs, `recovery resumed${m.resumedBy ? ` by ${m.resumedBy}` : ""}`]);
  return events;
}

function monitorRows(m: MonitorsReport): [string, string][] {
  const f = m.fault;
  const first = m.leaders[0]?.leader ?? "none";
  const changes = m.leaders.slice(1).map((l) => `${l.leader ?? "none"} at ${l.atMs} ms`);
  return [
    ["leader at the start", first],
    ["leader changes", changes.length === 0 ? "none" : changes.join(", ")],
    [
      "monitor fault",
      f === null
        ? "none"
        : `${f.kind === "monitor-leader" ? "killed" : "cut off"}: ${f.instance}${f.step ? ` before ${f.step}` : " before the crash"} at ${f.atMs} ms${f.kind === "monitor-partition" ? `, reconnected ${f.healedMs !== null ? `at ${f.healedMs} ms` : "at the end"}` : ""}`,
    ],
    [
      "recovery resumed",
      m.resumedMs === null ? "-" : `at ${m.resumedMs} ms${m.resumedBy ? ` by ${m.resumedBy}` : ""}${f ? ` (${m.resumedMs - f.atMs} ms after the monitor fault)` : ""}`,
    ],
    ["monitor problems", m.problems.length === 0 ? "none" : m.problems.join("; ")],
  ];
}
