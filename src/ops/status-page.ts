/**
 * The status page served at `/`: one self-contained HTML document (no external assets) that polls `/status` and
 * draws the topology with roles and states at a glance, the current findings, and the recent recoveries with their
 * step timelines. Everything from the daemon is inserted as text (never as HTML). The page's script and style are
 * allowed by their hashes in the Content-Security-Policy.
 */
import { createHash } from "node:crypto";

const STYLE = `
:root { --bg:#f6f7f9; --card:#fff; --ink:#1d2330; --mute:#667085; --line:#e4e7ec; --up:#12805c; --down:#c4320a;
  --unknown:#98a2b3; --primary:#1849a9; --replica:#475467; --warn:#b54708; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background:var(--bg); color:var(--ink); }
header { display:flex; align-items:center; gap:16px; padding:14px 24px; background:#101828; color:#fff; flex-wrap:wrap; }
header h1 { font-size:18px; margin:0; font-weight:600; }
header .meta { color:#d0d5dd; font-size:13px; }
.badge { display:inline-block; padding:1px 8px; border-radius:999px; font-size:12px; font-weight:600; letter-spacing:.02em; }
.b-up { background:#d1fadf; color:var(--up); } .b-down { background:#fee4e2; color:var(--down); }
.b-unknown, .b-unmonitored { background:#f2f4f7; color:var(--mute); } .b-paused { background:#fef0c7; color:var(--warn); }
.b-running { background:#d1e9ff; color:var(--primary); } .b-ok { background:#d1fadf; color:var(--up); }
.b-primary { background:#d1e9ff; color:var(--primary); } .b-replica { background:#f2f4f7; color:var(--replica); }
main { padding:20px 24px; display:grid; gap:20px; max-width:1200px; }
section h2 { font-size:13px; text-transform:uppercase; letter-spacing:.06em; color:var(--mute); margin:0 0 8px; }
.grid { display:grid; grid-template-columns:repeat(auto-fill, minmax(260px, 1fr)); gap:12px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:12px 14px; }
.card.down { border-color:#fda29b; box-shadow:0 0 0 2px #fee4e2; }
.card h3 { margin:0 0 6px; font-size:15px; display:flex; justify-content:space-between; align-items:center; gap:8px; }
.card .addr { color:var(--mute); font-size:12px; font-family:ui-monospace, Menlo, monospace; }
.target { display:flex; justify-content:space-between; align-items:center; padding:5px 0; border-top:1px solid var(--line); gap:6px; }
.target:first-of-type { border-top:0; }
.target .name { font-family:ui-monospace, Menlo, monospace; font-size:13px; }
.target .detail { color:var(--mute); font-size:12px; }
.pairs td, .pairs th { padding:6px 10px; text-align:left; border-bottom:1px solid var(--line); }
table { border-collapse:collapse; background:var(--card); border:1px solid var(--line); border-radius:10px; overflow:hidden; width:100%; }
th { font-size:12px; color:var(--mute); font-weight:600; background:#f9fafb; }
.finding { border-left:4px solid var(--warn); }
.finding.critical { border-left-color:var(--down); }
.finding ul { margin:6px 0 0; padding-left:18px; color:var(--mute); font-size:12px; }
.recovery { margin-bottom:10px; }
.recovery .head { display:flex; gap:8px; align-items:center; flex-wrap:wrap; }
.timeline { margin-top:8px; display:grid; grid-template-columns:150px 1fr 70px; gap:3px 10px; align-items:center; font-size:12px; }
.timeline .bar { height:10px; border-radius:3px; background:var(--up); min-width:2px; }
.timeline .bar.fail { background:var(--down); } .timeline .bar.open { background:var(--primary); }
.timeline .track { position:relative; height:10px; background:#f2f4f7; border-radius:3px; }
.timeline .track .bar { position:absolute; top:0; }
.muted { color:var(--mute); } .err { color:var(--down); }
#error, #journal { display:none; background:#fee4e2; color:var(--down); padding:8px 24px; }
`;

const SCRIPT = `
"use strict";
const $ = (sel) => document.querySelector(sel);
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === "class") e.className = v; else e.setAttribute(k, String(v));
  }
  for (const k of kids) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}
const badge = (text, kind) => el("span", { class: "badge b-" + (kind || text) }, text);
const ms = (n) => n < 1000 ? n + " ms" : (n / 1000).toFixed(n < 10000 ? 2 : 1) + " s";
const ago = (t, now) => t ? ms(Math.max(0, now - t)) + " ago" : "never";
const time = (t) => new Date(t).toLocaleTimeString();

function hostCard(h, now) {
  const down = h.targets.some((t) => t.status === "down");
  const card = el("div", { class: "card" + (down ? " down" : ""), "data-host": h.name });
  const overall = !h.monitored ? "unmonitored" : down ? "down" : h.targets.every((t) => t.status === "up") ? "up" : "unknown";
  card.append(el("h3", {}, el("span", {}, h.name, " ", el("span", { class: "muted" }, h.role)), badge(overall)));
  card.append(el("div", { class: "addr" }, h.address));
  for (const t of h.targets) {
    const detail = [];
    if (t.latencyMs !== undefined) detail.push(t.latencyMs + " ms");
    if (t.status !== "up" && t.failure) detail.push(t.failure);
    const row = el("div", { class: "target", "data-target": t.id, "data-status": t.status, title: t.failure || "" },
      el("div", {}, el("div", { class: "name" }, t.port !== undefined ? ":" + t.port : h.role), el("div", { class: "detail" }, detail.join(" · "))),
      el("div", {}, t.role ? badge(t.role) : null, " ", badge(t.status)));
    card.append(row);
  }
  return card;
}

function pairsTable(s) {
  const t = el("table", { class: "pairs" });
  t.append(el("tr", {}, el("th", {}, "pair"), el("th", {}, "port"), el("th", {}, "primary"), el("th", {}, "replica")));
  for (const p of s.pairs) for (const port of p.ports) {
    const prim = p.primaries[String(port)];
    const rep = p.hosts.find((h) => h !== prim);
    const status = (h) => { const host = s.hosts.find((x) => x.name === h); const tg = host && host.targets.find((x) => x.port === port); return tg ? tg.status : "unknown"; };
    t.append(el("tr", {}, el("td", {}, p.hosts.join(" + ")), el("td", {}, String(port)),
      el("td", {}, prim ? [prim, " "].join("") : "none", prim ? badge(status(prim)) : badge("unknown")),
      el("td", {}, prim ? (rep + " ") : p.hosts.join(", "), prim ? badge(status(rep)) : null)));
  }
  return t;
}

function finding(d) {
  const critical = d.actionable || d.diagnosis.name === "TwoPrimaries" || d.diagnosis.name === "PairDown";
  const decision = d.decision.kind === "recover" ? "running " + d.decision.playbook : d.decision.reason;
  const c = el("div", { class: "card finding" + (critical ? " critical" : ""), "data-finding": d.key },
    el("h3", {}, el("span", {}, d.diagnosis.name + " on " + d.diagnosis.host), d.acknowledged ? badge("acknowledged", "unknown") : null),
    el("div", {}, decision));
  const ul = el("ul", {});
  for (const e of d.diagnosis.evidence) ul.append(el("li", {}, e));
  c.append(ul);
  return c;
}

function recovery(r, now) {
  const state = r.running ? "running" : r.outcome || "unfinished";
  const kind = r.running ? "running" : r.outcome === "succeeded" ? "ok" : "down";
  const end = r.endedAt || now;
  const total = Math.max(1, end - r.startedAt);
  const c = el("div", { class: "card recovery", "data-recovery": r.id },
    el("div", { class: "head" }, el("strong", {}, r.playbook + " for " + r.host), badge(state, kind), r.dryRun ? badge("dry-run", "unknown") : null,
      el("span", { class: "muted" }, time(r.startedAt) + " · " + ms(end - r.startedAt) + " · " + r.diagnosis)));
  if (r.error) c.append(el("div", { class: "err" }, r.error));
  const tl = el("div", { class: "timeline" });
  for (const s of r.steps) {
    const sEnd = s.endedAt || end;
    const bar = el("div", { class: "bar" + (s.ok === false ? " fail" : s.endedAt === undefined ? " open" : "") });
    bar.style.left = ((s.startedAt - r.startedAt) / total * 100).toFixed(2) + "%";
    bar.style.width = Math.max(0.5, (sEnd - s.startedAt) / total * 100).toFixed(2) + "%";
    tl.append(el("div", { "data-step": s.step }, s.step + (s.attempts > 1 ? " ×" + s.attempts : "")), el("div", { class: "track", title: s.error || "" }, bar),
      el("div", { class: s.ok === false ? "err" : "muted" }, s.endedAt === undefined ? "…" : ms(s.endedAt - s.startedAt)));
  }
  c.append(tl);
  return c;
}

function render(s) {
  const now = s.at;
  $("#topology").textContent = s.topology;
  const meta = $("#meta");
  meta.replaceChildren(...["last complete cycle " + ago(s.lastCycleAt, now) + " · updated " + time(now) + " ",
    s.paused ? badge("paused") : null, s.dryRun ? badge("dry-run", "unknown") : null,
    s.journal ? badge("journal unwritable", "down") : null,
    s.config && s.config.reloadPendingSince ? badge("reload pending", "paused") : null].filter((x) => x !== null));
  const journal = $("#journal");
  journal.textContent = s.journal ? s.journal.error + " (since " + time(s.journal.since) + "): failoverd observes but starts no recovery until it can write its journal." : "";
  journal.style.display = s.journal ? "block" : "none";
  const hosts = $("#hosts");
  hosts.replaceChildren(...s.hosts.map((h) => hostCard(h, now)));
  $("#pairs").replaceChildren(pairsTable(s));
  const f = $("#findings");
  f.replaceChildren(...(s.diagnoses.length ? s.diagnoses.map(finding) : [el("div", { class: "muted" }, "No findings: every target is healthy.")]));
  const recs = [...s.recoveries.current, ...s.recoveries.recent];
  $("#recoveries").replaceChildren(...(recs.length ? recs.map((r) => recovery(r, now)) : [el("div", { class: "muted" }, "No recoveries yet.")]));
  document.body.dataset.loaded = "true";
}

async function poll() {
  try {
    const res = await fetch("status", { cache: "no-store" });
    if (!res.ok) throw new Error("GET /status answered " + res.status);
    render(await res.json());
    $("#error").style.display = "none";
  } catch (e) {
    const box = $("#error");
    box.textContent = "Cannot reach the daemon: " + e.message;
    box.style.display = "block";
  }
  setTimeout(poll, 2000);
}
poll();
`;

const sha256 = (s: string) => createHash("sha256").update(s).digest("base64");

export const STATUS_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>failoverd</title>
<style>${STYLE}</style>
</head>
<body>
<header><h1>failoverd · <span id="topology">…</span></h1><span class="meta" id="meta">loading</span></header>
<div id="error"></div>
<div id="journal" data-journal="unwritable"></div>
<main>
<section><h2>Hosts</h2><div class="grid" id="hosts"></div></section>
<section><h2>Pairs</h2><div id="pairs"></div></section>
<section><h2>Findings</h2><div class="grid" id="findings"></div></section>
<section><h2>Recoveries</h2><div id="recoveries"></div></section>
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;

/** Allows exactly the page's own script and style; nothing from elsewhere; fetches only to this origin. */
export const STATUS_PAGE_CSP = [
  "default-src 'none'",
  `script-src 'sha256-${sha256(SCRIPT)}'`,
  `style-src 'sha256-${sha256(STYLE)}'`,
  "connect-src 'self'",
  "img-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");
