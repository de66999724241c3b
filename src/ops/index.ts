/**
 * Operations around a running daemon, each a subscriber of its events: Prometheus metrics, webhook notifications,
 * the HTTP API and status page, scheduled drills, and systemd's notify/watchdog protocol. `attach` subscribes
 * before the daemon starts (so nothing of its first round or a resumed recovery is missed); `start` opens the HTTP
 * API, arms the drills and tells systemd the daemon is ready.
 */
import type { Daemon } from "../daemon/daemon.ts";
import { errorMessage } from "../errors.ts";
import type { Logger } from "../log.ts";
import { resolveSecret } from "../topology/secrets.ts";
import type { Topology } from "../topology/topology.ts";
import { type DrillClock, Drills, realClock } from "./drills.ts";
import { HttpApi, parseListen } from "./http.ts";
import { Metrics } from "./metrics.ts";
import { Notifier } from "./notify.ts";
import { SystemdNotifier } from "./systemd.ts";
import { WriteVerdicts } from "./verdicts.ts";

export interface OpsOptions {
  readonly log: Logger;
  /** `run --http ADDR:PORT`: overrides http.listen (and turns the API on without an http: section). */
  readonly http?: string | undefined;
  readonly drillClock?: DrillClock;
  readonly env?: NodeJS.ProcessEnv;
}

export class Ops {
  readonly metrics: Metrics;
  readonly notifier: Notifier;
  readonly drills: Drills;
  readonly systemd: SystemdNotifier;
  readonly verdicts: WriteVerdicts;
  private http: HttpApi | null = null;
  private drillsClosed: Promise<void> | null = null;
  private readonly listen: { address: string; port: number } | null;
  private readonly token: string | undefined;
  /** Where the HTTP API listens, once started. */
  listening: { address: string; port: number } | null = null;

  private constructor(
    private readonly daemon: Daemon,
    private readonly o: OpsOptions,
  ) {
    const t = daemon.config;
    // Resolved first, so a wrong --http or a missing token secret stops the start before anything runs.
    const listen = o.http ?? t.config.http?.listen;
    this.listen = listen === undefined ? null : parseListen(listen, o.http ? "--http" : "http.listen");
    this.token = resolveSecret(t.config.http?.token, "http.token", t.source);
    this.metrics = new Metrics(daemon);
    this.notifier = new Notifier(t, { log: o.log.child({ component: "notify" }), metrics: this.metrics });
    this.notifier.attach(daemon.events);
    this.verdicts = new WriteVerdicts(daemon, () => daemon.config);
    this.drills = new Drills(daemon, o.log.child({ component: "drills" }), o.drillClock ?? realClock);
    const c = t.config.checks;
    this.systemd = new SystemdNotifier({
      log: o.log.child({ component: "systemd" }),
      ...(o.env ? { env: o.env } : {}),
      lastCycleAt: () => daemon.lastCycleAt(),
      staleAfterMs: 3 * (c.intervalMs + c.timeoutMs) + 1000,
    });
  }

  /** Subscribes the metrics and notifications to the daemon. Throws ConfigError for a missing secret. */
  static attach(daemon: Daemon, o: OpsOptions): Ops {
    return new Ops(daemon, o);
  }

  /** After the daemon has started: the HTTP API listens, the drills are armed, systemd hears READY=1. */
  async start(): Promise<void> {
    const t = this.daemon.config;
    if (this.listen) {
      this.http = new HttpApi({
        daemon: this.daemon,
        listen: this.listen,
        token: this.token,
        metrics: this.metrics,
        drills: this.drills,
        verdicts: this.verdicts,
        log: this.o.log.child({ component: "http" }),
      });
      this.listening = await this.http.start();
    }
    this.drills.configure(t.config.drills);
    await this.systemd.ready(`watching ${t.name}${this.listening ? `; HTTP on ${this.listening.address}:${this.listening.port}` : ""}`);
  }

  /** SIGHUP: webhooks and drills follow the new config (the HTTP address and token need a restart). */
  reload(t: Topology): void {
    this.metrics.configure(t);
    try {
      this.notifier.configure(t);
      this.drills.configure(t.config.drills);
    } catch (e) {
      this.o.log.error(`notifications and drills keep their old config: ${errorMessage(e)}`);
    }
  }

  /** Before the daemon stops: no new intents, no new drills. */
  async stopping(): Promise<void> {
    this.drillsClosed = this.drills.close();
    await this.systemd.stopping();
    await this.http?.close();
    this.http = null;
  }

  /** After the daemon has stopped: the drill under way is told, queued notifications get a moment to go out. */
  async stop(): Promise<void> {
    await (this.drillsClosed ?? this.drills.close());
    await this.notifier.close();
    this.metrics.close();
    this.verdicts.close();
  }
}
