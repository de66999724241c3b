/**
 * Host size: a host holding the primaries of 1, 4 or 16 Redis servers crashes; how long until every server is
 * promoted and routed?
 *
 * Each trial is `simulate()` on the sandbox topology with ports 9001.. (HAProxy frontends 8001.., app frontends
 * 7001..) on 127.63.x.y. At the fault, one poller per app frontend starts writing through it (a fresh connection per
 * attempt, 1 s deadline, 25 ms apart) and stops at its first acknowledged write. The figure, `allRoutedMs`, is the
 * last of those first writes after the fault: the time until every application port takes writes again, as clients
 * see it. The journal's end of the `promote` step (promoted by ROLE and routed on every HAProxy) is reported too.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { createConnection } from "node:net";
import { declaredListeners } from "../src/providers/local/up.ts";
import { simulate } from "../src/simulate/scenario.ts";
import { loopbackTopology } from "../src/simulate/topologies.ts";
import { assertFree, say, stopRequested } from "./common.ts";
import { round, type Summary, summarize } from "./stats.ts";

export interface HostSizeTrial {
  readonly servers: number;
  readonly ok: boolean;
  readonly why?: string;
  readonly detectMs: number | null;
  readonly promotedMs: number | null;
  readonly allRoutedMs: number | null;
  /** From detection to every frontend taking writes. */
  readonly confirmedToAllRoutedMs: number | null;
}

export interface HostSizeResults {
  readonly sizes: Record<string, { allRoutedMs: Summary; promotedMs: Summary; detectMs: Summary; confirmedToAllRoutedMs: Summary; failedTrials: number }>;
  /** allRoutedMs median of 16 servers / of 1 server (target: at most 1.5). */
  readonly ratio16to1: number | null;
  /** The same ratio on the time from confirmed failure to every frontend routed (detection removed). */
  readonly ratio16to1AfterDetection: number | null;
  readonly trials: HostSizeTrial[];
}

export async function runHostSize(o: { trials: number; sizes?: readonly number[] }): Promise<HostSizeResults> {
  const sizes = o.sizes ?? [1, 4, 16];
  const trials: HostSizeTrial[] = [];
  for (let i = 1; i <= o.trials; i++) {
    for (const n of sizes) {
      if (stopRequested()) break;
      say(`host-size: ${n} server(s), trial ${i}/${o.trials}`);
      const t = await trial(n).catch((e: unknown) => ({
        servers: n,
        ok: false,
        why: (e as Error).message,
        detectMs: null,
        promotedMs: null,
        allRoutedMs: null,
        confirmedToAllRoutedMs: null,
      }));
      say(`  detect ${t.detectMs} ms, promoted ${t.promotedMs} ms, all routed ${t.allRoutedMs} ms${t.ok ? "" : `; FAILED: ${t.why}`}`);
      trials.push(t);
    }
  }
  const out: HostSizeResults["sizes"] = {};
  for (const n of sizes) {
    const ok = trials.filter((t) => t.servers === n && t.ok);
    out[String(n)] = {
      allRoutedMs: summarize(ok.map((t) => t.allRoutedMs)),
      promotedMs: summarize(ok.map((t) => t.promotedMs)),
      detectMs: summarize(ok.map((t) => t.detectMs)),
      confirmedToAllRoutedMs: summarize(ok.map((t) => t.confirmedToAllRoutedMs)),
      failedTrials: trials.filter((t) => t.servers === n).length - ok.length,
    };
  }
  const r = (f: "allRoutedMs" | "confirmedToAllRoutedMs") => {
    const a = out["16"]?.[f].median;
    const b = out["1"]?.[f].median;
    return a != null && b != null && b > 0 ? round(a / b, 2) : null;
  };
  return { sizes: out, ratio16to1: r("allRoutedMs"), ratio16to1AfterDetection: r("confirmedToAllRoutedMs"), trials };
}

async function trial(n: number): Promise<HostSizeTrial> {
  const ports = Array.from({ length: n }, (_, i) => 9001 + i);
  const lt = loopbackTopology({ net: 63, name: `bench-host${n}`, ports });
  const firstWrite = new Map<number, number>();
  const stopping = new AbortController();
  let pollers: Promise<void>[] = [];
  let faultAt = 0;
  try {
    const t = lt.topology;
    await assertFree(declaredListeners(t));
    const app = t.appHosts[0]!;
    const report = await simulate(t, {
      target: "redis1",
      fault: "crash",
      // A random phase against the check schedule, as in the failover benchmark.
      warmupMs: 1000 + Math.floor(Math.random() * 200),
      timeoutMs: 40_000,
      hooks: {
        onFault: (at) => {
          faultAt = at;
          pollers = Object.keys(app.frontends).map((p) => poll(app.address, Number(p), stopping.signal, (ackAt) => firstWrite.set(Number(p), ackAt)));
        },
        beforeTeardown: async () => {
          // Every poller has its first write by now (or never will): the recovery is complete.
          stopping.abort();
          await Promise.all(pollers);
        },
      },
    });
    const missing = Object.keys(app.frontends).filter((p) => !firstWrite.has(Number(p)));
    const why = !report.recovered ? (report.why ?? "not recovered") : missing.length > 0 ? `no write through ${missing.join(", ")}` : null;
    const allRoutedMs = missing.length === 0 ? Math.max(...firstWrite.values()) - faultAt : null;
    return {
      servers: n,
      ok: why === null,
      ...(why ? { why } : {}),
      detectMs: report.detectMs,
      promotedMs: report.steps.find((s) => s.name === "promote")?.endMs ?? null,
      allRoutedMs,
      confirmedToAllRoutedMs: allRoutedMs !== null && report.detectMs !== null ? allRoutedMs - report.detectMs : null,
    };
  } finally {
    stopping.abort();
    await Promise.all(pollers);
    lt.cleanup();
  }
}

/**
 * Between two attempts of a poller. Every attempt crosses two HAProxies and a Redis server: 16 pollers at 10 ms took a
 * good part of the 2 cores from the daemon they were timing; 25 ms keeps the figure's resolution well under its size.
 */
const POLL_EVERY_MS = 25;

/**
 * Writes through address:port with a fresh connection per attempt until one is acknowledged (bounded by `stop`). A raw
 * socket rather than a client library: 16 pollers must not take the CPU the daemon needs on a 2-core machine.
 */
async function poll(address: string, port: number, stop: AbortSignal, done: (at: number) => void): Promise<void> {
  // The fault's SIGKILL was just sent: give the kernel a moment to close the dead server's sockets.
  await sleep(5);
  const cmd = `*3\r\n$3\r\nSET\r\n$${`bench:host-size:${port}`.length}\r\nbench:host-size:${port}\r\n$1\r\n1\r\n`;
  for (let n = 0; !stop.aborted && n < 10_000; n++) {
    if ((await setOnce(address, port, cmd, 1000)) === "+OK") {
      done(Date.now());
      return;
    }
    await sleep(POLL_EVERY_MS);
  }
}

/** One connection, one command; resolves with the reply's first line, or "" on any failure or after `ms`. */
function setOnce(address: string, port: number, cmd: string, ms: number): Promise<string> {
  return new Promise((resolve) => {
    const s = createConnection({ host: address, port });
    let got = "";
    const finish = (v: string) => {
      clearTimeout(timer);
      s.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => finish(""), ms);
    s.on("connect", () => s.write(cmd));
    s.on("data", (d: Buffer) => {
      got += d.toString("latin1");
      const eol = got.indexOf("\r\n");
      if (eol >= 0) finish(got.slice(0, eol));
    });
    s.on("error", () => finish(""));
    s.on("close", () => finish(got.split("\r\n")[0] ?? ""));
  });
}
