/**
 * Notifications: webhooks (failoverd's JSON, Slack-compatible `{"text": ...}`, PagerDuty Events v2, Alertmanager v2
 * alerts; see notify-formats.ts) on a finding, its resolution, a recovery's start, a failed step, a recovery's end,
 * and a drill's result. Delivery never delays the daemon: an event is queued (per webhook, bounded, in order) and a
 * worker delivers it with a deadline, retrying with backoff on network errors, 5xx, 408 and 429; a 4xx is final. An
 * active, unacknowledged finding is sent again every `notifications.repeatMs`. A webhook's URL and a routing key
 * may be secrets: they are never logged (the webhook's name is).
 *
 * PagerDuty and Alertmanager get alerts, not events: a finding opens one (keyed by the finding), the recovery it
 * starts updates it, and it is resolved when the finding clears or the recovery succeeds; a failed recovery leaves
 * it open. A planned switchover or a drill opens one only when it goes wrong. A notification of severity info never
 * opens an alert, only updates or resolves one; a resolve is always sent (an alert opened before a restart is
 * resolved too; resolving an unknown one is harmless to both). Alertmanager forgets a firing alert at its `endsAt`,
 * so an alert is posted again every minute while its finding or recovery lasts; one that ended without a resolve (a
 * failed recovery, a failed drill) lapses 5 minutes after its last post.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { DaemonEvents } from "../daemon/events.ts";
import { ConfigError, errorMessage } from "../errors.ts";
import type { Logger } from "../log.ts";
import { DIAGNOSES, type DiagnosisName } from "../checks/detector.ts";
import { PAGERDUTY_EVENTS_URL, type WebhookConfig, type WebhookEvent, type WebhookFormat, webhookUrlProblem } from "../topology/schema.ts";
import { resolveSecret } from "../topology/secrets.ts";
import type { Topology } from "../topology/topology.ts";
import type { Metrics } from "./metrics.ts";
import { type AlertRef, alertmanagerBody, jsonBody, type Notification, pagerdutyBody, type Severity, slackBody } from "./notify-formats.ts";

export type { AlertRef, Notification } from "./notify-formats.ts";

/** Alertmanager: a firing alert is posted again this often while it lasts... */
export const ALERTMANAGER_REFRESH_MS = 60_000;
/** ...each post saying it ends this long after, unless posted again. */
export const ALERTMANAGER_HOLD_MS = 300_000;

interface OpenAlert {
  readonly startsAt: number;
  notification: Notification & { alert: AlertRef };
  postedAt: number;
}

interface Delivery {
  readonly event: WebhookEvent;
  readonly body: string;
}

interface Hook {
  readonly name: string;
  readonly url: string;
  readonly format: WebhookFormat;
  /** pagerduty: the routing key (a secret). */
  readonly routingKey: string;
  readonly events: ReadonlySet<WebhookEvent> | null;
  readonly queue: Delivery[];
  worker: Promise<void> | null;
  /** pagerduty, alertmanager: the alerts this webhook was told are firing, by key. */
  readonly open: Map<string, OpenAlert>;
}

export interface NotifierOptions {
  readonly log: Logger;
  readonly metrics?: Metrics;
  readonly now?: () => number;
  /** Bound of each webhook's queue: past it the oldest waiting notification is dropped. */
  readonly maxQueue?: number;
  /** First retry delay; doubled each attempt (capped at 30 s). */
  readonly backoffMs?: number;
}

type EventSource = { on<K extends keyof DaemonEvents>(name: K, fn: (e: DaemonEvents[K]) => void): () => void };

export class Notifier {
  private hooks: Hook[] = [];
  private topologyName = "";
  private timeoutMs = 5000;
  private attempts = 5;
  private repeatMs = 3_600_000;
  private readonly active = new Map<string, { notification: Notification; lastSentAt: number; acknowledged: boolean }>();
  /** The alert keys of the recoveries under way. */
  private readonly running = new Set<string>();
  private readonly unsubscribe: (() => void)[] = [];
  private readonly closing = new AbortController();
  private repeatTimer: NodeJS.Timeout | null = null;
  private readonly now: () => number;

  constructor(
    topology: Topology,
    private readonly o: NotifierOptions,
  ) {
    this.now = o.now ?? Date.now;
    this.configure(topology);
  }

  /** (Re)reads the webhooks from the config (start, SIGHUP). Resolves URL secrets; throws ConfigError when one is missing. */
  configure(t: Topology): void {
    const n = t.config.notifications;
    const hooks = n.webhooks.map((w: WebhookConfig, i: number): Hook => {
      const field = `notifications.webhooks[${i}].url`;
      const url = w.url === undefined ? PAGERDUTY_EVENTS_URL : typeof w.url === "string" ? w.url : (resolveSecret(w.url, field, t.source) ?? "");
      // A URL from {env}/{file} was not seen by the schema. The problem is told without the URL: it is a secret.
      const problem = webhookUrlProblem(url);
      if (problem) throw new ConfigError(t.source, [`${field}: ${problem}`]);
      const routingKey = resolveSecret(w.routingKey, `notifications.webhooks[${i}].routingKey`, t.source) ?? "";
      const name = w.name ?? `webhooks[${i}]`;
      // A reload keeps what a webhook was told is firing, so the resolves still follow.
      const open = this.hooks.find((h) => h.name === name && h.format === w.format)?.open ?? new Map<string, OpenAlert>();
      return { name, url, format: w.format, routingKey, events: w.events ? new Set(w.events) : null, queue: [], worker: null, open };
    });
    this.hooks = hooks;
    for (const h of hooks) for (const result of ["sent", "retried", "dropped"]) this.o.metrics?.notifications.inc({ webhook: h.name, result }, 0);
    this.topologyName = t.name;
    this.timeoutMs = n.timeoutMs;
    this.attempts = n.attempts;
    this.repeatMs = n.repeatMs;
    if (this.repeatTimer) clearInterval(this.repeatTimer);
    this.repeatTimer = null;
    if (hooks.length > 0) {
      const tick = () => {
        this.repeatDue();
        this.refreshDue();
      };
      this.repeatTimer = setInterval(tick, Math.min(ALERTMANAGER_REFRESH_MS / 4, Math.max(1000, Math.floor(this.repeatMs / 4))));
      this.repeatTimer.unref();
    }
  }

  /** Subscribes to the daemon's events. */
  attach(events: EventSource): void {
    const on = <K extends keyof DaemonEvents>(k: K, fn: (e: DaemonEvents[K]) => void) => this.unsubscribe.push(events.on(k, fn));
    on("diagnosis", (d) => {
      const n = describeDiagnosis(d);
      this.active.set(d.key, { notification: n, lastSentAt: this.now(), acknowledged: d.acknowledged });
      this.send(n);
    });
    on("resolved", (r) => {
      this.active.delete(r.key);
      // A finding that went under recovery is told by the recovery's own events.
      if (r.why === "cleared") this.send(describeResolved(r));
    });
    on("ack", (a) => {
      for (const k of a.keys) {
        const f = this.active.get(k);
        if (f) f.acknowledged = true;
      }
    });
    on("recovery-start", (e) => {
      this.running.add(recoveryAlert(e, "firing").key);
      this.send(describeStart(e));
    });
    on("step-end", (e) => {
      if (!e.ok) this.send(describeStepFailed(e));
    });
    on("recovery-end", (e) => {
      this.running.delete(recoveryAlert(e, "firing").key);
      this.send(describeEnd(e));
    });
    on("drill", (d) => this.send(describeDrill(d)));
  }

  /** Queues a notification for every webhook that wants its event. Returns at once. */
  send(n: Notification): void {
    if (this.closing.signal.aborted) return;
    for (const h of this.hooks) {
      if (h.events && !h.events.has(n.event)) continue;
      const body = this.bodyFor(h, n);
      if (body !== null) this.enqueue(h, { event: n.event, body });
    }
  }

  /**
   * The body a webhook gets for a notification, or null when its format has nothing to say (pagerduty and
   * alertmanager: a notification of no alert, or of severity info about an alert that is not open). Records the
   * alerts the webhook was told are open.
   */
  private bodyFor(h: Hook, n: Notification): string | null {
    if (h.format === "json") return JSON.stringify(jsonBody(this.topologyName, n));
    if (h.format === "slack") return JSON.stringify(slackBody(this.topologyName, n));
    if (!n.alert) return null;
    const alerted = n as Notification & { alert: AlertRef };
    const now = this.now();
    const open = h.open.get(alerted.alert.key);
    const startsAt = open?.startsAt ?? n.at;
    if (alerted.alert.state === "firing") {
      if (!open && n.severity === "info") return null;
      h.open.set(alerted.alert.key, { startsAt, notification: alerted, postedAt: now });
    } else {
      h.open.delete(alerted.alert.key);
    }
    if (h.format === "pagerduty") return JSON.stringify(pagerdutyBody(this.topologyName, h.routingKey, alerted));
    const endsAt = alerted.alert.state === "firing" ? now + ALERTMANAGER_HOLD_MS : n.at;
    return JSON.stringify(alertmanagerBody(this.topologyName, alerted, startsAt, endsAt));
  }

  /**
   * Alertmanager: posts again each firing alert whose finding or recovery lasts, last posted a minute ago; forgets
   * the others once Alertmanager has let them lapse (run by a timer; public for tests).
   */
  refreshDue(): void {
    if (this.closing.signal.aborted) return;
    const now = this.now();
    for (const h of this.hooks) {
      if (h.format !== "alertmanager") continue;
      for (const [key, o] of h.open) {
        if (this.active.has(key) || this.running.has(key)) {
          if (now - o.postedAt < ALERTMANAGER_REFRESH_MS) continue;
          o.postedAt = now;
          this.enqueue(h, { event: o.notification.event, body: JSON.stringify(alertmanagerBody(this.topologyName, o.notification, o.startsAt, now + ALERTMANAGER_HOLD_MS)) });
        } else if (now - o.postedAt >= ALERTMANAGER_HOLD_MS) {
          h.open.delete(key);
        }
      }
    }
  }

  private enqueue(h: Hook, d: Delivery): void {
    h.queue.push(d);
    if (h.queue.length > (this.o.maxQueue ?? 1000)) {
      h.queue.shift();
      this.o.metrics?.notifications.inc({ webhook: h.name, result: "dropped" });
      this.o.log.warn({ webhook: h.name }, `notification queue of ${h.name} is full: dropped the oldest`);
    }
    h.worker ??= this.drain(h);
  }

  /** Stops taking notifications; waits up to `graceMs` for queued ones to be delivered. */
  async close(graceMs = 2000): Promise<void> {
    for (const u of this.unsubscribe.splice(0)) u();
    if (this.repeatTimer) clearInterval(this.repeatTimer);
    const workers = this.hooks.map((h) => h.worker).filter((w): w is Promise<void> => w !== null);
    const timer = sleep(graceMs, undefined, { ref: false }).then(() => this.closing.abort());
    await Promise.race([Promise.allSettled(workers), timer]);
    this.closing.abort();
  }

  /** Sends again every active, unacknowledged finding last sent `repeatMs` ago (run by a timer; public for tests). */
  repeatDue(): void {
    const now = this.now();
    for (const f of this.active.values()) {
      if (f.acknowledged || now - f.lastSentAt < this.repeatMs) continue;
      f.lastSentAt = now;
      this.send({ ...f.notification, at: now, repeat: true, title: `still: ${f.notification.title}` });
    }
  }

  /**
   * Delivers the queue in order. The worker is cleared in the same turn as the queue is seen empty: cleared a microtask
   * later (a `.finally` on the promise), a notification queued in between found a worker that had already finished,
   * and waited for the next one; the last of a recovery's, for ever.
   */
  private async drain(h: Hook): Promise<void> {
    try {
      for (let n = h.queue.shift(); n !== undefined; n = h.queue.shift()) {
        await this.deliver(h, n);
        if (this.closing.signal.aborted) return;
      }
    } finally {
      h.worker = null;
    }
  }

  private async deliver(h: Hook, n: Delivery): Promise<void> {
    const body = n.body;
    for (let attempt = 1; attempt <= this.attempts; attempt++) {
      let why: string;
      let final = false;
      try {
        const res = await fetch(h.url, {
          method: "POST",
          headers: { "content-type": "application/json", "user-agent": "failoverd" },
          body,
          signal: AbortSignal.any([AbortSignal.timeout(this.timeoutMs), this.closing.signal]),
          redirect: "error",
        });
        await res.body?.cancel();
        if (res.ok) {
          this.o.metrics?.notifications.inc({ webhook: h.name, result: "sent" });
          return;
        }
        why = `HTTP ${res.status}`;
        final = res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429;
      } catch (e) {
        // fetch's message says which network error, never the URL.
        why = withoutUrl(errorMessage((e as { cause?: unknown }).cause ?? e), h.url);
      }
      if (this.closing.signal.aborted) return;
      if (final || attempt === this.attempts) {
        this.o.metrics?.notifications.inc({ webhook: h.name, result: "dropped" });
        this.o.log.warn({ webhook: h.name, event: n.event, attempts: attempt }, `notification to ${h.name} dropped: ${why}`);
        return;
      }
      this.o.metrics?.notifications.inc({ webhook: h.name, result: "retried" });
      this.o.log.debug({ webhook: h.name, event: n.event, attempt }, `notification to ${h.name} failed (${why}); retrying`);
      const delay = Math.min(30_000, (this.o.backoffMs ?? 500) * 2 ** (attempt - 1));
      await sleep(delay, undefined, { signal: this.closing.signal }).catch(() => {});
    }
  }
}

/** fetch's messages may quote the URL (a secret, for Slack's): never in a log line. */
function withoutUrl(message: string, url: string): string {
  return message.split(url).join("<the webhook's URL>").replace(/\/\/[^\s/@]+@/g, "//<credentials>@");
}

const secs = (ms: number) => `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;

/** A finding's severity: the same for every notification of it (Alertmanager's labels must not change). */
function findingSeverity(name: DiagnosisName): Severity {
  return DIAGNOSES[name].actionable || name === "TwoPrimaries" || name === "PairDown" ? "critical" : "warning";
}

/** The alert of a finding: `DeadPrimary:redis1`, as the daemon keys it. */
function findingAlert(name: DiagnosisName, host: string, state: AlertRef["state"]): AlertRef {
  return { key: `${name}:${host}`, state, labels: { alertname: `Failoverd${name}`, severity: findingSeverity(name), host } };
}

/** A recovery's alert: its finding's when a finding started it (or its resumed run), else its own. */
function recoveryAlert(e: DaemonEvents["recovery-start"], state: AlertRef["state"]): AlertRef {
  if (Object.hasOwn(DIAGNOSES, e.diagnosis)) return findingAlert(e.diagnosis as DiagnosisName, e.host, state);
  return {
    key: `recovery:${e.recoveryId}`,
    state,
    labels: { alertname: "FailoverdRecovery", severity: "critical", host: e.host, playbook: e.playbook, recovery_id: e.recoveryId },
  };
}

export function describeDiagnosis(d: DaemonEvents["diagnosis"]): Notification {
  const what = `${d.diagnosis.name} on ${d.diagnosis.host}`;
  const title = d.decision.kind === "recover" ? `${what}: running ${d.decision.playbook}` : `${what}: ${d.decision.reason}`;
  return {
    event: "diagnosis",
    at: d.at,
    severity: findingSeverity(d.diagnosis.name),
    title,
    details: d.diagnosis.evidence,
    data: { key: d.key, diagnosis: d.diagnosis.name, host: d.diagnosis.host, targets: d.diagnosis.targets, decision: d.decision, since: d.since },
    alert: { ...findingAlert(d.diagnosis.name, d.diagnosis.host, "firing"), key: d.key },
  };
}

function describeResolved(r: DaemonEvents["resolved"]): Notification {
  return {
    event: "resolved",
    at: r.at,
    severity: "info",
    title: `resolved: ${r.diagnosis.name} on ${r.diagnosis.host} (lasted ${secs(r.sinceMs)})`,
    details: [],
    data: { key: r.key, diagnosis: r.diagnosis.name, host: r.diagnosis.host, durationMs: r.sinceMs },
    alert: { ...findingAlert(r.diagnosis.name, r.diagnosis.host, "resolved"), key: r.key },
  };
}

function describeStart(e: DaemonEvents["recovery-start"]): Notification {
  return {
    event: "recovery-start",
    at: e.at,
    severity: e.playbook === "switchover" ? "info" : "warning",
    title: `${e.playbook} for ${e.host} started (${e.diagnosis})`,
    details: [`recovery ${e.recoveryId}`, `origin: ${e.origin}`],
    data: { recoveryId: e.recoveryId, playbook: e.playbook, host: e.host, diagnosis: e.diagnosis, origin: e.origin },
    alert: recoveryAlert(e, "firing"),
  };
}

function describeStepFailed(e: DaemonEvents["step-end"]): Notification {
  return {
    event: "step-failed",
    at: e.at,
    severity: "warning",
    title: `${e.playbook} for ${e.host}: step ${e.step} failed (attempt ${e.attempt})`,
    details: [e.title, e.error ?? "no error message"],
    data: { recoveryId: e.recoveryId, playbook: e.playbook, host: e.host, step: e.step, attempt: e.attempt, error: e.error ?? null },
    alert: recoveryAlert(e, "firing"),
  };
}

function describeEnd(e: DaemonEvents["recovery-end"]): Notification {
  const how =
    e.outcome === "interrupted" ? "interrupted by a shutdown; it resumes at the next start" : `${e.outcome} after ${secs(e.durationMs)}`;
  return {
    event: "recovery-end",
    at: e.at,
    severity: e.outcome === "succeeded" ? "info" : "critical",
    title: `${e.playbook} for ${e.host} ${how}`,
    details: [...(e.error ? [e.error] : []), ...(e.dataLoss ? [`data loss (estimated): ${e.dataLoss}`] : [])],
    data: {
      recoveryId: e.recoveryId,
      playbook: e.playbook,
      host: e.host,
      outcome: e.outcome,
      durationMs: e.durationMs,
      origin: e.origin,
      error: e.error ?? null,
      ...(e.dataLoss ? { dataLoss: e.dataLoss } : {}),
    },
    // Interrupted: it resumes at the next start, and tells its end then.
    ...(e.outcome === "interrupted" ? {} : { alert: recoveryAlert(e, e.outcome === "succeeded" ? "resolved" : "firing") }),
  };
}

function describeDrill(d: DaemonEvents["drill"]): Notification {
  const pair = d.pair.join("+");
  const title =
    d.outcome === "skipped"
      ? `drill of ${pair} skipped: ${d.reason ?? "no reason given"}`
      : `drill of ${pair}: switchover ${d.outcome} in ${secs(d.endedAt - d.startedAt)}${d.outcome === "succeeded" && d.to ? ` (${d.to} is primary now)` : ""}`;
  return {
    event: "drill",
    at: d.endedAt,
    severity: d.outcome === "succeeded" ? "info" : d.outcome === "skipped" ? "warning" : "critical",
    title,
    details: d.reason && d.outcome !== "skipped" ? [d.reason] : [],
    data: { ...d, pair },
    ...(d.outcome === "interrupted"
      ? {}
      : { alert: { key: `drill:${pair}`, state: d.outcome === "succeeded" ? "resolved" : "firing", labels: { alertname: "FailoverdDrill", severity: "warning", pair } } }),
  };
}
