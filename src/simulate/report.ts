/** The human form of a simulate report: a timeline of the recovery, then the figures. */
import type { SimulateReport } from "./scenario.ts";

export function formatReport(r: SimulateReport): string {
  const ms = (v: number | null) => (v === null ? "-" : `${v} ms`);
  const lines: string[] = [];
  lines.push("", `timeline (ms after the fault: ${r.fault} of ${r.target})`);
  lines.push(`  ${"0".padStart(6)}  fault injected`);
  if (r.detectMs !== null) lines.push(`  ${String(r.detectMs).padStart(6)}  ${r.diagnosis} confirmed: ${r.playbook} started`);
  for (const s of r.steps) {
    lines.push(`  ${String(s.startMs).padStart(6)}  ${s.name}${s.attempts > 1 ? ` (attempt ${s.attempts})` : ""} -> ${s.outcome}${s.endMs !== null ? ` at ${s.endMs}` : ""}`);
  }
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
  const w = Math.max(...rows.map(([k]) => k.length));
  for (const [k, v] of rows) lines.push(`  ${k.padEnd(w)}  ${v}`);
  return lines.join("\n");
}
