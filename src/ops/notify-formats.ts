/**
 * What a notification looks like on the wire, per webhook format: failoverd's JSON, Slack's `{"text": ...}`,
 * PagerDuty's Events API v2, and Alertmanager's v2 alerts. The last two are stateful: each notification names an
 * alert (`AlertRef`: a stable key, firing or resolved), so an incident opens with a finding, follows its recovery,
 * and is resolved when the finding clears or the recovery succeeds.
 */

import type { WebhookEvent } from "../topology/schema.ts";

export type Severity = "info" | "warning" | "critical";

/** The alert a notification opens, updates or resolves (PagerDuty's dedup_key, Alertmanager's label set). */
export interface AlertRef {
  /** Stable while the problem lasts: `DeadPrimary:redis1` (a finding and the recovery it started), `recovery:<id>`, `drill:<pair>`. */
  readonly key: string;
  readonly state: "firing" | "resolved";
  /** Alertmanager's identity of the alert: the same for every notification of one key (severity included). */
  readonly labels: Readonly<Record<string, string>> & { readonly alertname: string; readonly severity: Severity };
}

export interface Notification {
  readonly event: WebhookEvent;
  readonly at: number;
  readonly severity: Severity;
  /** One line: what happened. */
  readonly title: string;
  /** Details, a line each (evidence, steps, errors). */
  readonly details: readonly string[];
  /** The event's own fields. */
  readonly data: Readonly<Record<string, unknown>>;
  /** Sent again because the finding lasts and nobody acknowledged it. */
  readonly repeat?: boolean;
  /** The alert it concerns; none: the stateful formats (pagerduty, alertmanager) do not send it. */
  readonly alert?: AlertRef;
}

export function jsonBody(topology: string, n: Notification): Record<string, unknown> {
  return {
    source: "failoverd",
    topology,
    event: n.event,
    at: new Date(n.at).toISOString(),
    severity: n.severity,
    title: n.title,
    details: n.details,
    ...(n.repeat ? { repeat: true } : {}),
    data: n.data,
  };
}

export function slackBody(topology: string, n: Notification): Record<string, unknown> {
  const icon = n.severity === "critical" ? ":red_circle:" : n.severity === "warning" ? ":warning:" : ":large_green_circle:";
  const details = n.details.map((d) => `• ${slackEscape(d)}`).join("\n");
  return { text: `${icon} *[${slackEscape(topology)}]* ${slackEscape(n.title)}${details ? `\n${details}` : ""}` };
}

/** Slack's three control characters. */
function slackEscape(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** PagerDuty's dedup_key of an alert: one per topology and key (at most 255 characters). */
export function dedupKey(topology: string, alert: AlertRef): string {
  return `failoverd/${topology}/${alert.key}`.slice(0, 255);
}

/**
 * PagerDuty Events API v2: a trigger (opens the incident, or adds to the open one with the same dedup_key) or a
 * resolve. The routing key is a secret: it is in the body only, never in a log line.
 */
export function pagerdutyBody(topology: string, routingKey: string, n: Notification & { alert: AlertRef }): Record<string, unknown> {
  const dedup_key = dedupKey(topology, n.alert);
  if (n.alert.state === "resolved") return { routing_key: routingKey, event_action: "resolve", dedup_key };
  const { alertname, severity: _, ...labels } = n.alert.labels;
  return {
    routing_key: routingKey,
    event_action: "trigger",
    dedup_key,
    client: "failoverd",
    payload: {
      summary: `[${topology}] ${n.title}`.slice(0, 1024),
      source: labels["host"] ?? labels["pair"] ?? topology,
      severity: n.severity,
      timestamp: new Date(n.at).toISOString(),
      group: topology,
      class: alertname,
      ...(labels["host"] ? { component: labels["host"] } : {}),
      custom_details: { event: n.event, details: n.details, ...(n.repeat ? { repeat: true } : {}), ...n.data },
    },
  };
}

/**
 * Alertmanager's `POST /api/v2/alerts`: one alert, identified by its labels. A firing one says until when
 * (`endsAt`): Alertmanager resolves it then unless it is posted again, so failoverd posts it again while it lasts.
 */
export function alertmanagerBody(
  topology: string,
  n: Notification & { alert: AlertRef },
  startsAt: number,
  endsAt: number,
): Record<string, unknown>[] {
  return [
    {
      labels: { ...n.alert.labels, topology, source: "failoverd" },
      annotations: { summary: n.title, ...(n.details.length > 0 ? { description: n.details.join("\n") } : {}), event: n.event },
      startsAt: new Date(startsAt).toISOString(),
      endsAt: new Date(endsAt).toISOString(),
    },
  ];
}
