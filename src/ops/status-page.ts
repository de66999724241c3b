/**
 * The status page served at `/`: one self-contained HTML document (no external assets) that polls `/status` and
 * `/history` every 2 s and draws, in the order someone paged at 3 a.m. reads it: one verdict per pair and per port
 * ("writes OK" / "writes DOWN since 03:12:07"), the alerts (a reason several findings share is said once), the
 * recovery under way with its step timeline, what each HAProxy routes where, every host with its targets, and the
 * history. Every age counts on in the browser; the moment the daemon stops answering (an error, or no answer within
 * 4 s) or its checks stall, the page says so and everything on it turns grey, with its age. Everything from the
 * daemon is inserted as text (never as HTML). The page's script and style are allowed by their hashes in the
 * Content-Security-Policy.
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
#journal { display:none; background:#fee4e2; color:var(--down); padding:8px 24px; }
#stale { display:none; background:#eaecf0; color:#344054; padding:8px 24px; font-weight:600; border-bottom:2px solid var(--unknown); }
body[data-stale="true"] main { filter:grayscale(1); opacity:.55; }
body[data-stale="true"] header { background:#475467; }
.verdict .big { font-size:15px; font-weight:700; }
.verdict.v-ok { border-left:4px solid var(--up); } .verdict.v-ok .big { color:var(--up); }
.verdict.v-down { border-left:4px solid var(--down); } .verdict.v-down .big { color:var(--down); }
.finding .decision { font-weight:600; margin-bottom:6px; }
.finding [data-finding] { border-top:1px solid var(--line); padding-top:6px; margin-top:6px; }
.finding [data-finding] h3 { font-size:14px; }
.hold { color:var(--warn); font-size:12px; margin:4px 0; }
.srv { margin-right:10px; white-space:nowrap; }
.detail { color:var(--mute); font-size:12px; }
#holds .badge { margin-right:6px; }
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
  for (const k of kids.flat()) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}
const badge = (text, kind) => el("span", { class: "badge b-" + (kind || text) }, text);
const ms = (n) => n < 1000 ? n + " ms" : n < 120000 ? (n / 1000).toFixed(n < 10000 ? 2 : 0) + " s" : Math.round(n / 60000) + " min";
const time = (t) => new Date(t).toLocaleTimeString("en-GB", { hour12: false });
const stamp = (t) => new Date(t).toLocaleString("en-GB", { hour12: false });

/** The last answer, and when (this browser's clock) it came: every age on the page counts from it. */
let last = null;
let lastOkAt = 0;
let failure = null;
/** Ages the daemon gave, plus how long ago it gave them. */
const age = (t) => t ? ms(Math.max(0, last.at - t + (Date.now() - lastOkAt))) + " ago" : "never";

function hostCard(h) {
  const down = h.targets.some((t) => t.status === "down");
  const card = el("div", { class: "card" + (down ? " down" : ""), "data-host": h.name });
  const overall = !h.monitored ? "unmonitored" : down ? "down" : h.targets.every((t) => t.status === "up") ? "up" : "unknown";
  card.append(el("h3", {}, el("span", {}, h.name, " ", el("span", { class: "muted" }, h.role)), el("span", {}, h.maintenance ? badge("maintenance", "paused") : null, " ", badge(overall))));
  card.append(el("div", { class: "addr" }, h.address));
  if (h.maintenance) card.append(el("div", { class: "hold", "data-maintenance": h.name }, "in maintenance until " + stamp(h.maintenance.until) + (h.maintenance.reason ? " (" + h.maintenance.reason + ")" : "") + ", set by " + h.maintenance.by));
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

/** One verdict per pair, and one per port: writes OK / DOWN since when. */
function verdicts(s) {
  if (!s.verdicts || s.verdicts.length === 0) return [el("div", { class: "muted" }, "No pairs.")];
  return s.verdicts.map((p) => {
    const ok = p.writes === "OK";
    const c = el("div", { class: "card verdict " + (ok ? "v-ok" : "v-down"), "data-verdict": p.hosts.join("+"), "data-writes": p.writes },
      el("h3", {}, el("span", {}, p.hosts.join(" + ")), el("span", { class: "big" }, "writes " + p.writes + (p.since ? " since " + time(p.since) : ""))));
    for (const port of p.ports) {
      c.append(el("div", { class: "target", "data-verdict-port": String(port.port), "data-writes": port.writes },
        el("div", {}, el("div", { class: "name" }, ":" + port.port), el("div", { class: "detail" }, port.primary ? "primary " + port.primary : "", port.detail ? (port.primary ? " · " : "") + port.detail : "")),
        el("div", {}, badge("writes " + port.writes + (port.since ? " since " + time(port.since) : ""), port.writes === "OK" ? "ok" : "down"))));
    }
    return c;
  });
}

/** Each HAProxy, each backend: which server it routes to, and every server's state. */
function routing(s) {
  const t = el("table", { class: "pairs" });
  t.append(el("tr", {}, el("th", {}, "proxy"), el("th", {}, "backend"), el("th", {}, "routes to"), el("th", {}, "servers")));
  for (const r of s.routing || []) {
    if (r.backends.length === 0) t.append(el("tr", { "data-route": r.host }, el("td", {}, r.host, " ", badge(r.ok ? "up" : "down")), el("td", { class: "muted", colspan: "3" }, r.ok ? "no backends" : "not answering")));
    r.backends.forEach((b, i) => {
      t.append(el("tr", { "data-route": r.host + ":" + b.backend, "data-to": b.to || "" },
        el("td", {}, i === 0 ? [r.host, " ", badge(r.ok ? "up" : "down")] : null),
        el("td", {}, b.backend + " (:" + b.port + ")"),
        el("td", {}, b.to ? el("strong", {}, b.to) : badge("none", "down")),
        el("td", {}, b.servers.map((x) => el("span", { class: "srv", "data-route-server": x.server, "data-state": x.state }, x.server + " ", badge(x.state, x.state === "maint" ? "paused" : x.state))))));
    });
  }
  return t;
}

/** Findings grouped by their decision: a reason shared by several (the monitor's network, a pause) is said once. */
function alerts(s) {
  if (s.diagnoses.length === 0) return [el("div", { class: "muted" }, "No findings: every target is healthy.")];
  const groups = new Map();
  for (const d of s.diagnoses) {
    const decision = d.decision.kind === "recover" ? "running " + d.decision.playbook : d.decision.reason;
    if (!groups.has(decision)) groups.set(decision, []);
    groups.get(decision).push(d);
  }
  return [...groups].map(([decision, ds]) => {
    const critical = ds.some((d) => d.actionable || d.diagnosis.name === "TwoPrimaries" || d.diagnosis.name === "PairDown");
    const c = el("div", { class: "card finding" + (critical ? " critical" : ""), "data-alert": decision }, el("div", { class: "decision" }, decision));
    for (const d of ds) {
      const ul = el("ul", {});
      for (const e of d.diagnosis.evidence) ul.append(el("li", {}, e));
      c.append(el("div", { "data-finding": d.key }, el("h3", {}, el("span", {}, d.diagnosis.name + " on " + d.diagnosis.host),
        el("span", { class: "muted" }, "since " + time(d.since), " ", d.acknowledged ? badge("acknowledged", "unknown") : null)), ul));
    }
    return c;
  });
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

const CONTROL = { pause: "paused", resume: "resumed", "pause-expired": "pause expired", maintenance: "maintenance of", "maintenance-end": "maintenance ended of", "maintenance-expired": "maintenance expired of" };
function lossText(v) {
  if (Array.isArray(v) && v.length > 0 && v.every((x) => x && typeof x.text === "string")) return v.map((x) => x.text).join("; ");
  if (typeof v === "number") return v + " bytes";
  if (typeof v !== "object" || v === null) return String(v);
  return Object.entries(v).map(([k, x]) => typeof x === "object" && x !== null ? k + ": " + lossText(x) : k + " " + x).join(", ");
}
function who(r) {
  if (r.origin === "diagnosis") return "failoverd (" + r.diagnosis + ")";
  if (r.origin === "drill") return "drill";
  return (r.by || "an operator") + (r.reason ? " (" + r.reason + ")" : "");
}

/** The history: every recovery (diagnosis, trigger, steps and durations, outcome, data loss) and every control. */
function history(h) {
  const rows = [...h.recoveries.map((r) => ({ at: r.startedAt, r })), ...h.controls.map((c) => ({ at: c.at, c }))].sort((a, b) => b.at - a.at);
  if (rows.length === 0) return el("div", { class: "muted" }, "No recoveries yet.");
  const t = el("table", { class: "pairs history" });
  t.append(el("tr", {}, el("th", {}, "when"), el("th", {}, "what"), el("th", {}, "triggered by"), el("th", {}, "outcome"), el("th", {}, "steps")));
  for (const x of rows.slice(0, 50)) {
    if (x.r) {
      const r = x.r;
      t.append(el("tr", { "data-history": r.id, "data-outcome": r.outcome || "unfinished" },
        el("td", {}, stamp(r.startedAt)),
        el("td", {}, el("strong", {}, r.playbook + " for " + r.host), el("div", { class: "detail" }, r.diagnosis)),
        el("td", {}, who(r)),
        el("td", {}, badge(r.outcome || "unfinished", r.outcome === "succeeded" ? "ok" : r.outcome ? "down" : "running"), r.durationMs !== undefined ? " " + ms(r.durationMs) : "",
          r.dataLoss !== undefined ? el("div", { class: "detail", "data-loss": "" }, "data loss: " + lossText(r.dataLoss)) : null, r.error ? el("div", { class: "err" }, r.error) : null),
        el("td", { class: "detail" }, r.steps.map((s) => s.step + " " + (s.durationMs !== undefined ? ms(s.durationMs) : "…") + (s.ok === false ? " ✗" : "")).join(" · "))));
    } else {
      const c = x.c;
      t.append(el("tr", { "data-control": c.action },
        el("td", {}, stamp(c.at)),
        el("td", {}, CONTROL[c.action] + (c.host ? " " + c.host : ""), c.until ? el("div", { class: "detail" }, "until " + stamp(c.until)) : null),
        el("td", {}, c.by + (c.reason ? " (" + c.reason + ")" : "")), el("td", {}), el("td", {})));
    }
  }
  return t;
}

/** Several instances: who leads, whether this one acts (or why not), the lease, who observes, the others' non-up verdicts. */
function instances(v) {
  const c = el("div", { class: "card", "data-instances": v.instance });
  const acting = v.acting ? badge("acting", "ok") : badge("observing", "unknown");
  c.append(el("h3", {}, el("span", {}, "this instance: " + v.instance), acting));
  c.append(el("div", { "data-leader": v.leader || "" }, "leader: ", v.leader ? el("strong", {}, v.leader) : badge("none", "down"), " · leader changes seen: " + v.leaderChanges));
  if (!v.acting && v.notActing) c.append(el("div", { class: "hold", "data-not-acting": "" }, v.notActing));
  c.append(el("div", { class: "detail" }, "etcd " + (v.connected ? "answers" : "does not answer") + " · lease TTL " + v.lease.ttlSeconds + " s" + (v.lease.msLeft !== null ? ", " + ms(Math.max(0, v.lease.msLeft)) + " left" : "")));
  const t = el("table", { class: "pairs" });
  t.append(el("tr", {}, el("th", {}, "observer"), el("th", {}, "role"), el("th", {}, "verdicts not up")));
  for (const o of v.observers) {
    const vs = Object.entries((v.verdicts || {})[o] || {}).map(([target, x]) => target + " " + x.status + (x.kind ? " (" + x.kind + ")" : "") + " since " + time(x.since));
    t.append(el("tr", { "data-observer": o }, el("td", {}, o + (o === v.instance ? " (this one)" : "")), el("td", {}, o === v.leader ? badge("leader", "primary") : badge("observer", "replica")),
      el("td", { class: "detail" }, o === v.instance ? "see the hosts below" : vs.length ? vs.join(" · ") : "all up")));
  }
  c.append(el("div", { class: "detail" }, v.observers.length + " of " + v.configured + " instances observe; " + v.quorum + " must agree to confirm a failure"), t);
  return c;
}

/** Ages and staleness, every second: the data on screen says how old it is, and goes grey once it is stale. */
function tick() {
  if (!last) return;
  const old = Date.now() - lastOkAt;
  const cycleAge = last.lastCycleAt ? last.at - last.lastCycleAt + old : null;
  const stalled = cycleAge !== null && last.staleAfterMs && cycleAge > last.staleAfterMs;
  const stale = failure !== null || old > 5000 || stalled;
  document.body.dataset.stale = stale ? "true" : "false";
  $("#age").textContent = "data from " + time(lastOkAt) + " (" + ms(old) + " old) · last complete cycle " + age(last.lastCycleAt);
  const box = $("#stale");
  if (stale) {
    const why = failure !== null ? "The daemon is not answering (" + failure + ")" : stalled ? "The daemon answers, but its checks stopped " + ms(cycleAge) + " ago" : "No answer from the daemon for " + ms(old);
    box.textContent = why + ": everything below is stale, as of " + time(lastOkAt) + " (" + ms(old) + " old).";
    box.style.display = "block";
  } else box.style.display = "none";
}

function render(s, h) {
  last = s;
  lastOkAt = Date.now();
  failure = null;
  $("#topology").textContent = s.topology;
  const hold = s.pause ? badge("paused " + (s.pause.until ? "until " + time(s.pause.until) : "until resumed") + (s.pause.reason ? " · " + s.pause.reason : "") + " · by " + s.pause.by, "paused") : s.paused ? badge("paused") : null;
  if (hold) hold.setAttribute("data-pause", "");
  $("#holds").replaceChildren(...[hold, ...(s.maintenance || []).map((m) => badge("maintenance " + m.host + " until " + time(m.until), "paused")), s.dryRun ? badge("dry-run", "unknown") : null,
    s.journal ? badge("journal unwritable", "down") : null,
    s.config && s.config.reloadPendingSince ? badge("reload pending", "paused") : null].filter((x) => x !== null));
  $("#verdicts").replaceChildren(...verdicts(s));
  $("#instances-section").hidden = !s.instances;
  $("#instances").replaceChildren(...(s.instances ? [instances(s.instances)] : []));
  $("#alerts").replaceChildren(...alerts(s));
  $("#routing").replaceChildren(routing(s));
  $("#hosts").replaceChildren(...s.hosts.map((x) => hostCard(x)));
  $("#current").replaceChildren(...(s.recoveries.current.length ? s.recoveries.current.map((r) => recovery(r, s.at)) : [el("div", { class: "muted" }, "None under way.")]));
  if (h) $("#history").replaceChildren(history(h));
  const recent = s.recoveries.recent[0];
  $("#last").replaceChildren(...(recent ? [recovery(recent, s.at)] : []));
  const journal = $("#journal");
  journal.textContent = s.journal ? s.journal.error + " (since " + time(s.journal.since) + "): failoverd observes but starts no recovery until it can write its journal." : "";
  journal.style.display = s.journal ? "block" : "none";
  document.body.dataset.loaded = "true";
  tick();
}

async function get(path, signal) {
  const res = await fetch(path, { cache: "no-store", signal });
  if (!res.ok) throw new Error("GET /" + path + " answered " + res.status);
  return res.json();
}

async function poll() {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), 4000);
  try {
    const [s, h] = await Promise.all([get("status", ctl.signal), get("history", ctl.signal).catch(() => null)]);
    render(s, h);
  } catch (e) {
    failure = ctl.signal.aborted ? "no answer within 4 s" : e.message;
    tick();
  } finally {
    clearTimeout(timer);
  }
  setTimeout(poll, 2000);
}
setInterval(tick, 1000);
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
<body data-stale="false">
<header><h1>failoverd · <span id="topology">…</span></h1><span class="meta" id="age">loading</span><span id="holds"></span></header>
<div id="stale"></div>
<div id="journal" data-journal="unwritable"></div>
<main>
<section><h2>Writes</h2><div class="grid" id="verdicts"></div></section>
<section><h2>Alerts</h2><div class="grid" id="alerts"></div></section>
<section><h2>Recovery under way</h2><div id="current"></div><div id="last"></div></section>
<section id="instances-section" hidden><h2>Instances</h2><div id="instances"></div></section>
<section><h2>Routing</h2><div id="routing"></div></section>
<section><h2>Hosts</h2><div class="grid" id="hosts"></div></section>
<section><h2>History</h2><div id="history"></div></section>
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
