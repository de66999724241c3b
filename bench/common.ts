/**
 * What every benchmark shares: progress lines, address checks, the machine's load, and the read-back of a Traffic's
 * acknowledged writes from the final primary (the same code for failoverd and Sentinel, so the figures compare).
 */
import { loadavg } from "node:os";
import { RedisAdminClient, type Endpoint, type RedisAuth } from "../src/admin/redis.ts";
import { whyNotFree } from "../src/providers/local/processes.ts";
import { longestGap, type Traffic } from "../src/simulate/traffic.ts";

let interrupted = false;

/** After Ctrl-C: the trial under way finishes (and stops its processes), no new trial starts. */
export function stopRequested(): boolean {
  return interrupted;
}

export function requestStop(): void {
  interrupted = true;
}

export function say(line: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

export function load1(): number {
  return Math.round(loadavg()[0]! * 100) / 100;
}

/** Throws when any address:port is in use (a run left behind, or another user of the range). */
export async function assertFree(listeners: readonly Endpoint[]): Promise<void> {
  const busy = (await Promise.all(listeners.map((l) => whyNotFree(l.address, l.port)))).filter((w): w is string => w !== null);
  if (busy.length > 0) throw new Error(`benchmark addresses are busy: ${busy.slice(0, 5).join("; ")}${busy.length > 5 ? ` (+${busy.length - 5})` : ""}`);
}

/** The endpoint among `candidates` that answers ROLE master, or null. */
export async function findPrimary(candidates: readonly Endpoint[], auth: RedisAuth = {}): Promise<Endpoint | null> {
  for (const ep of candidates) {
    const c = new RedisAdminClient(ep, 2000, auth);
    try {
      if ((await c.role()).role === "primary") return ep;
    } catch {
      // not reachable: not the primary
    } finally {
      c.close();
    }
  }
  return null;
}

export interface ReadBack {
  /** Writer acks whose key does not hold its value on the final primary. */
  readonly lostWrites: number;
  /** Probe writes acknowledged and missing on the final primary. */
  readonly lostProbes: number;
  /** The final primary's run_id. */
  readonly finalServer: string;
}

/** Reads every acknowledged key (writer and prober) back from `primary`. */
export async function readBack(traffic: Traffic, primary: Endpoint, auth: RedisAuth = {}): Promise<ReadBack> {
  const c = new RedisAdminClient(primary, 5000, auth);
  try {
    const info = await c.info("server");
    const check = async (pairs: readonly (readonly [string, string])[]) => {
      let lost = 0;
      for (let i = 0; i < pairs.length; i += 1000) {
        const chunk = pairs.slice(i, i + 1000);
        const values = (await c.call("MGET", ...chunk.map((p) => p[0]))) as (string | null)[];
        values.forEach((v, j) => {
          if (v !== chunk[j]![1]) lost += 1;
        });
      }
      return lost;
    };
    const lostWrites = await check(traffic.acks.map((a) => [traffic.key(a.seq), String(a.seq)] as const));
    const lostProbes = await check(traffic.probes.filter((p) => p.ok).map((p) => [p.key, "1"] as const));
    return { lostWrites, lostProbes, finalServer: info["run_id"] ?? "" };
  } finally {
    c.close();
  }
}

/**
 * Writes (writer and probes) acknowledged by a server that was no longer primary: by a server other than the final
 * primary, after the final primary had acknowledged its first write following the fault (from then on two servers
 * were taking writes). A reply in flight at the moment of the fault is not counted.
 */
export function staleAcks(traffic: Traffic, from: number, finalServer: string): number {
  // A probe's time is when it started; when it was acknowledged is what orders it against the writer's acks.
  const oks = [...traffic.acks, ...traffic.probes.filter((p) => p.ok).map((p) => ({ at: p.at + p.latencyMs, server: p.server }))];
  const takeover = oks.reduce((m, x) => (x.at > from && x.server === finalServer && x.at < m ? x.at : m), Number.POSITIVE_INFINITY);
  return oks.filter((x) => x.at > takeover && x.server !== undefined && x.server !== finalServer).length;
}

export interface FailoverFigures {
  readonly ok: boolean;
  readonly why?: string;
  readonly detectMs: number | null;
  readonly outageMs: number;
  /** End of the longest gap minus detection: from confirmed failure to writes flowing again. */
  readonly confirmedToWritesMs: number | null;
  readonly failedOps: number;
  readonly ackedWrites: number;
  readonly lostAckedWrites: number;
  readonly lostWrites: number;
  readonly lostProbes: number;
  readonly staleAcks: number;
  readonly probes: { readonly total: number; readonly failed: number };
  readonly firstWriteAfterFaultMs: number | null;
}

/** The figures of one failover trial, computed the same way for every system. */
export function failoverFigures(
  traffic: Traffic,
  faultAt: number,
  endAt: number,
  detectAt: number | null,
  back: ReadBack | null,
  why: string | null,
): FailoverFigures {
  const gap = longestGap(traffic.acks, faultAt, endAt);
  const first = traffic.acks.find((a) => a.at > faultAt);
  return {
    ok: why === null && back !== null,
    ...(why !== null ? { why } : {}),
    detectMs: detectAt === null ? null : detectAt - faultAt,
    outageMs: gap.ms,
    confirmedToWritesMs: detectAt === null ? null : Math.max(0, gap.end - detectAt),
    failedOps: traffic.failures.filter((f) => f.at >= faultAt).length,
    ackedWrites: traffic.acks.length,
    lostAckedWrites: back ? back.lostWrites + back.lostProbes : Number.NaN,
    lostWrites: back?.lostWrites ?? Number.NaN,
    lostProbes: back?.lostProbes ?? Number.NaN,
    staleAcks: back ? staleAcks(traffic, faultAt, back.finalServer) : Number.NaN,
    probes: { total: traffic.probes.length, failed: traffic.probes.filter((p) => p.at >= faultAt && !p.ok).length },
    firstWriteAfterFaultMs: first ? first.at - faultAt : null,
  };
}

/** Runs `fn` with a deadline; the benchmark never waits forever on one trial. */
export async function withDeadline<T>(what: string, ms: number, fn: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      fn(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
