/**
 * The baseline users run today: Redis Sentinel (3 sentinels, quorum 2) watching the same Redis pair failoverd's
 * sandbox runs, with the same HAProxy tier in front (two HAProxies with the `role:master` check, an app-side HAProxy
 * relaying to the first, the second as backup). Everything is a real process on 127.<net>.x.y, started through the
 * same Sandbox code as failoverd's (same redis-server options, same HAProxy check settings) and stopped by PID.
 *
 * Layout (ports 9001 and 9002 on each Redis host, as in the sandbox):
 *   redis1 127.N.1.1 (primary), redis2 127.N.1.2 (replica)
 *   haproxy1 127.N.2.1, haproxy2 127.N.2.2: 8001 -> 9001, 8002 -> 9002, both servers checked for role:master
 *   app 127.N.3.1: 7001 -> 8001, 7002 -> 8002 on haproxy1 (haproxy2 backup)
 *   sentinels 127.N.4.1-3:26379, masters `m9001`, `m9002`
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { renderHaproxyConfig } from "../src/admin/haproxy-config.ts";
import type { Endpoint } from "../src/admin/redis.ts";
import { isRunning, signal, startDetached, type StartedProcess, stop } from "../src/providers/local/processes.ts";
import { type MachineRecord, Sandbox } from "../src/providers/local/sandbox.ts";
import { assertFree } from "./common.ts";

export const PORTS = [9001, 9002] as const;

export interface SentinelWorldOptions {
  readonly net: number;
  readonly dir: string;
  /** Sentinel's down-after-milliseconds: failoverd's interval x fall. */
  readonly downAfterMs: number;
  /** HAProxy's check interval, as failoverd renders it for the same config. */
  readonly checkIntervalMs: number;
}

export interface SentinelEvent {
  readonly at: number;
  readonly sentinel: number;
  readonly channel: string;
  readonly message: string;
}

export class SentinelWorld {
  readonly events: SentinelEvent[] = [];
  private readonly sandbox: Sandbox;
  private readonly sentinels: StartedProcess[] = [];
  private readonly subscribers: Redis[] = [];
  private redis1: MachineRecord | null = null;
  readonly addr: {
    readonly redis1: string;
    readonly redis2: string;
    readonly haproxy: readonly [string, string];
    readonly app: string;
    readonly sentinels: readonly string[];
  };

  constructor(private readonly o: SentinelWorldOptions) {
    const n = o.net;
    this.addr = {
      redis1: `127.${n}.1.1`,
      redis2: `127.${n}.1.2`,
      haproxy: [`127.${n}.2.1`, `127.${n}.2.2`],
      app: `127.${n}.3.1`,
      sentinels: [1, 2, 3].map((i) => `127.${n}.4.${i}`),
    };
    this.sandbox = new Sandbox(`sentinel-${n}`, { kind: "local", runDir: join(o.dir, "run"), redisServer: "redis-server", haproxy: "haproxy", spares: {} });
  }

  get sentinelEndpoints(): Endpoint[] {
    return this.addr.sentinels.map((address) => ({ address, port: 26379 }));
  }

  /** The app-side frontend the traffic goes through (-> 9001). */
  get appFrontend(): Endpoint {
    return { address: this.addr.app, port: 7001 };
  }

  listeners(): Endpoint[] {
    const a = this.addr;
    return [
      ...PORTS.flatMap((port) => [a.redis1, a.redis2].map((address) => ({ address, port }))),
      ...a.haproxy.flatMap((address) => [8001, 8002, 9999].map((port) => ({ address, port }))),
      ...[7001, 7002, 9999].map((port) => ({ address: a.app, port })),
      ...this.sentinelEndpoints,
    ];
  }

  async start(): Promise<void> {
    await assertFree(this.listeners());
    const a = this.addr;
    await this.sandbox.update((s) => {
      s.machines = [];
    });
    this.redis1 = await this.sandbox.createMachine("redis1", "redis", a.redis1);
    for (const port of PORTS) await this.sandbox.startRedis(this.redis1, port);
    const redis2 = await this.sandbox.createMachine("redis2", "redis", a.redis2);
    for (const port of PORTS) await this.sandbox.startRedis(redis2, port, { replicaOf: { address: a.redis1, port } });

    // The common Sentinel + HAProxy setup: both servers checked, whichever answers role:master takes the traffic.
    for (const [i, address] of a.haproxy.entries()) {
      const m = await this.sandbox.createMachine(`haproxy${i + 1}`, "haproxy", address);
      const cfg = renderHaproxyConfig({
        bindAddress: address,
        adminPort: 9999,
        checkIntervalMs: this.o.checkIntervalMs,
        redis: PORTS.map((port, j) => ({
          listenPort: 8001 + j,
          redisPort: port,
          servers: [
            { name: "redis1", address: a.redis1, port },
            { name: "redis2", address: a.redis2, port },
          ],
        })),
      });
      await this.sandbox.applyHaproxy(m, cfg);
    }
    const app = await this.sandbox.createMachine("app", "app", a.app);
    await this.sandbox.applyHaproxy(
      app,
      renderHaproxyConfig({
        bindAddress: a.app,
        adminPort: 9999,
        checkIntervalMs: this.o.checkIntervalMs,
        relays: PORTS.map((_, j) => ({
          listenPort: 7001 + j,
          // Checked on the upstream's Runtime API, as failoverd renders the app-side relays.
          servers: a.haproxy.map((address, i) => ({ name: `haproxy${i + 1}`, address, port: 8001 + j, backup: i > 0, checkPort: 9999 })),
        })),
      }),
    );

    const dir = join(this.o.dir, "sentinels");
    mkdirSync(dir, { recursive: true });
    for (const [i, address] of a.sentinels.entries()) {
      const conf = join(dir, `sentinel-${i + 1}.conf`);
      const lines = [
        `bind ${address}`,
        "port 26379",
        "protected-mode no",
        "daemonize no",
        `logfile ${join(dir, `sentinel-${i + 1}.log`)}`,
        `dir ${dir}`,
        // Loopback aliases: without it every sentinel would announce 127.0.0.1 to the others.
        `sentinel announce-ip ${address}`,
        ...PORTS.flatMap((port) => [
          `sentinel monitor m${port} ${a.redis1} ${port} 2`,
          `sentinel down-after-milliseconds m${port} ${this.o.downAfterMs}`,
          `sentinel parallel-syncs m${port} 1`,
        ]),
      ];
      writeFileSync(conf, `${lines.join("\n")}\n`);
      const pid = startDetached("redis-sentinel", [conf], join(dir, `sentinel-${i + 1}.log`));
      this.sentinels.push({ pid, marker: "sentinel" });
    }
    await this.waitUntilReady(30_000);
    for (const [i, ep] of this.sentinelEndpoints.entries()) {
      const sub = new Redis({ host: ep.address, port: ep.port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      sub.on("error", () => {});
      sub.on("pmessage", (_p: string, channel: string, message: string) =>
        this.events.push({ at: Date.now(), sentinel: i + 1, channel, message }),
      );
      await sub.connect();
      await sub.psubscribe("*");
      this.subscribers.push(sub);
    }
  }

  /** Every sentinel knows the two others and the replica of each master, and the app frontend reaches a primary. */
  private async waitUntilReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let why = "";
    while (Date.now() < deadline) {
      why = (await this.whyNotReady().catch((e: unknown) => (e as Error).message)) ?? "";
      if (why === "") return;
      await sleep(100);
    }
    throw new Error(`the Sentinel world did not become ready within ${timeoutMs} ms: ${why}`);
  }

  private async whyNotReady(): Promise<string | null> {
    for (const ep of this.sentinelEndpoints) {
      const c = oneShot(ep);
      try {
        for (const port of PORTS) {
          const m = fields((await c.call("SENTINEL", "MASTER", `m${port}`)) as string[]);
          if (m["num-other-sentinels"] !== "2") return `sentinel ${ep.address} knows ${m["num-other-sentinels"]} other sentinels`;
          if (m["num-slaves"] !== "1") return `sentinel ${ep.address} knows ${m["num-slaves"]} replicas of m${port}`;
          if (m["flags"] !== "master") return `sentinel ${ep.address} flags m${port} ${m["flags"]}`;
        }
      } finally {
        c.disconnect();
      }
    }
    const app = oneShot(this.appFrontend);
    try {
      const role = (await app.call("ROLE")) as unknown[];
      if (role[0] !== "master") return "the app frontend does not reach a primary yet";
    } finally {
      app.disconnect();
    }
    return null;
  }

  /** SIGKILL (crash) or SIGSTOP (hang) of every Redis server of the primary's host, as failoverd's simulate does. */
  fault(kind: "crash" | "hang"): void {
    for (const p of this.redis1?.processes ?? []) signal(p, kind === "crash" ? "SIGKILL" : "SIGSTOP");
  }

  resume(): void {
    for (const p of this.redis1?.processes ?? []) signal(p, "SIGCONT");
  }

  /** What the sentinels answer for m9001 now (asked of the first that answers). */
  async primaryOf(name = "m9001"): Promise<Endpoint | null> {
    for (const ep of this.sentinelEndpoints) {
      const c = oneShot(ep);
      try {
        const r = (await c.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", name)) as [string, string] | null;
        if (r) return { address: r[0], port: Number(r[1]) };
      } catch {
        // the next sentinel
      } finally {
        c.disconnect();
      }
    }
    return null;
  }

  /** INFO replication of a Redis server, or null when it does not answer. */
  async replication(ep: Endpoint): Promise<Record<string, string> | null> {
    const c = oneShot(ep);
    try {
      const text = (await c.call("INFO", "replication")) as string;
      return Object.fromEntries(
        text
          .split("\r\n")
          .filter((l) => l.includes(":"))
          .map((l) => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 1)]),
      );
    } catch {
      return null;
    } finally {
      c.disconnect();
    }
  }

  firstEvent(channel: string, after: number, match = "m9001"): SentinelEvent | undefined {
    return this.events.find((e) => e.at >= after && e.channel === channel && e.message.includes(match));
  }

  /** Stops every process started, by PID (SIGCONT first: a stopped process would not exit on SIGTERM). */
  async stop(): Promise<void> {
    for (const s of this.subscribers) s.disconnect();
    this.resume();
    await Promise.all(this.sentinels.filter(isRunning).map((p) => stop(p, "SIGTERM", 3000)));
    await this.sandbox.down();
  }
}

function oneShot(ep: Endpoint): Redis {
  const c = new Redis({
    host: ep.address,
    port: ep.port,
    lazyConnect: false,
    connectTimeout: 1000,
    commandTimeout: 1000,
    enableOfflineQueue: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    disconnectTimeout: 0,
  });
  c.on("error", () => {});
  return c;
}

/** SENTINEL MASTER replies a flat list of name, value, name, value... */
function fields(flat: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i]!] = flat[i + 1]!;
  return out;
}
