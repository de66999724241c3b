/**
 * Replication health, pure: what each pair's replica has of its primary's data. From the observations failoverd
 * already makes (INFO replication: offsets, link state, replication ids) and a short history of each primary's
 * offsets, it tells how far behind a replica is in bytes and in time, how long its link has been down, whether it
 * ever completed a sync, and what promoting it would lose.
 *
 * Offsets are bytes of the replication stream. A primary's offset also grows by its periodic PINGs to its replicas
 * (14 bytes every repl-ping-replica-period, 10 s by default) without any write: time estimates ignore a gap smaller
 * than `PING_NOISE_BYTES`, so an idle pair is never said to miss seconds of writes.
 */
import type { RedisObservation } from "./observation.ts";

export const PING_NOISE_BYTES = 1024;

/** One primary's recent offsets: when it reached what. Samples are kept for `keepMs`, at most `max` of them. */
export class OffsetHistory {
  private readonly samples = new Map<string, { replid: string | undefined; points: { at: number; offset: number }[] }>();

  constructor(
    private readonly keepMs = 600_000,
    private readonly max = 4096,
  ) {}

  /** Records a primary's offset. A new replication history (another replid, an offset that went back) starts afresh. */
  record(target: string, at: number, offset: number, replid: string | undefined): void {
    let h = this.samples.get(target);
    const last = h?.points[h.points.length - 1];
    if (!h || (replid !== undefined && h.replid !== undefined && replid !== h.replid && offset < (last?.offset ?? 0)) || (last && offset < last.offset)) {
      h = { replid, points: [] };
      this.samples.set(target, h);
    }
    h.replid = replid ?? h.replid;
    if (last && last.offset === offset && h.points.length > 1) {
      // Unchanged: only the time of the latest sample moves (the earliest time it held this offset stays).
      return;
    }
    h.points.push({ at, offset });
    const cut = at - this.keepMs;
    while (h.points.length > this.max || (h.points.length > 1 && h.points[0]!.at < cut && h.points[1]!.at <= cut)) h.points.shift();
  }

  /**
   * The earliest time the primary's offset was known to exceed `offset`; `beforeHistory` when even the oldest sample
   * did (the time is then a lower bound), undefined when it never did.
   */
  firstAbove(target: string, offset: number): { at: number; beforeHistory: boolean } | undefined {
    const points = this.samples.get(target)?.points ?? [];
    for (let i = 0; i < points.length; i++) {
      if (points[i]!.offset > offset) return { at: points[i]!.at, beforeHistory: i === 0 };
    }
    return undefined;
  }

  /** The primary's offset at time `at` (its last sample at or before then), undefined before the history begins. */
  offsetAt(target: string, at: number): number | undefined {
    const points = this.samples.get(target)?.points ?? [];
    let found: number | undefined;
    for (const p of points) {
      if (p.at > at) break;
      found = p.offset;
    }
    return found;
  }

  forget(target: string): void {
    this.samples.delete(target);
  }
}

/** What promoting a replica would lose of what its failed primary had acknowledged. */
export interface DataLossEstimate {
  /** Replication bytes the candidate misses (0 when it has at least what the primary had at its last check). */
  readonly bytes: number;
  /** How much time of writes that is: from when the primary first went past the candidate's offset to its last check. */
  readonly ms: number;
  /** `ms` is only a lower bound (the history does not reach back far enough). */
  readonly atLeast: boolean;
  /** The failed primary's offset at the last check that reached it, and when. */
  readonly lastAckOffset: number;
  readonly lastAckAt: number;
  readonly candidateOffset: number;
}

export function estimateDataLoss(
  lastAck: { readonly offset: number; readonly at: number },
  candidateOffset: number,
  firstAbove: (offset: number) => { at: number; beforeHistory: boolean } | undefined,
): DataLossEstimate {
  const bytes = Math.max(0, lastAck.offset - candidateOffset);
  let ms = 0;
  let atLeast = false;
  if (bytes > PING_NOISE_BYTES) {
    const first = firstAbove(candidateOffset + PING_NOISE_BYTES);
    if (first) {
      ms = Math.max(0, lastAck.at - first.at);
      atLeast = first.beforeHistory;
    }
  }
  return { bytes, ms, atLeast, lastAckOffset: lastAck.offset, lastAckAt: lastAck.at, candidateOffset };
}

export interface DataLossBounds {
  readonly maxDataLossBytes: number;
  readonly maxDataLossMs: number;
}

/** Null when the estimate is within the bounds; else the refusal, naming the bound and the estimate. */
export function whyRefusePromotion(candidate: string, failed: string, e: DataLossEstimate, b: DataLossBounds): string | null {
  const over: string[] = [];
  if (e.bytes > b.maxDataLossBytes) over.push(`recovery.maxDataLossBytes ${formatBytes(b.maxDataLossBytes)}`);
  if (e.ms > b.maxDataLossMs) over.push(`recovery.maxDataLossMs ${b.maxDataLossMs} ms`);
  if (over.length === 0) return null;
  return `${candidate} misses ${describeLoss(e)} of what ${failed} had acknowledged at ${new Date(e.lastAckAt).toISOString()}: over ${over.join(" and ")}`;
}

export function describeLoss(e: DataLossEstimate): string {
  if (e.bytes === 0) return "nothing";
  const time = e.ms > 0 ? ` (${e.atLeast ? "at least " : "about "}${(e.ms / 1000).toFixed(1)} s of writes)` : "";
  return `about ${formatBytes(e.bytes)}${time}`;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/**
 * A replica that has not completed a sync since it was (re)started or re-pointed: Redis reports its link down since
 * "-1". Its dataset is empty or partial: never a promotion candidate, never a witness.
 */
export function isNeverSynced(o: RedisObservation | undefined): boolean {
  return o?.ok === true && o.role === "replica" && o.linkUp !== true && o.linkDownSeconds === -1;
}

/** One port of a pair: who is primary, and how its replica stands. */
export interface PortReplication {
  readonly port: number;
  readonly primary?: string;
  readonly replica?: string;
  readonly linkUp?: boolean;
  /** How long the replica's link has been down (Redis's own count when it has one, else since failoverd saw it). */
  readonly linkDownMs?: number;
  readonly neverSynced?: boolean;
  readonly lagBytes?: number;
  readonly lagMs?: number;
  readonly lagAtLeast?: boolean;
  /** Replicas the primary lists as online. */
  readonly connectedReplicas?: number;
}

export interface ReplicationInput {
  readonly pairs: readonly { readonly hosts: readonly [string, string]; readonly ports: readonly number[] }[];
  readonly addressOf: (host: string) => string;
  /** The latest observation of each server (`redis1:9001`). */
  readonly latest: (target: string) => RedisObservation | undefined;
  readonly history: OffsetHistory;
  /** When failoverd first saw each replica's link down (for servers that do not say themselves). */
  readonly linkDownSince: ReadonlyMap<string, number>;
  readonly now: number;
}

/** Every port of every pair whose servers answer: the replica's link, lag and sync state. */
export function replicationOf(input: ReplicationInput): PortReplication[] {
  const out: PortReplication[] = [];
  for (const pair of input.pairs) {
    for (const port of pair.ports) {
      const obs = pair.hosts.map((h) => ({ host: h, o: input.latest(`${h}:${port}`) }));
      const primary = obs.find((x) => x.o?.ok && x.o.role === "primary");
      const replica = obs.find((x) => x.o?.ok && x.o.role === "replica" && x !== primary);
      if (!primary && !replica) continue;
      const p = primary?.o;
      const r = replica?.o;
      const row: Record<string, unknown> = { port, ...(primary ? { primary: primary.host } : {}), ...(replica ? { replica: replica.host } : {}) };
      if (p) row["connectedReplicas"] = (p.replicas ?? []).filter((x) => x.online).length;
      if (r) {
        const target = `${replica!.host}:${port}`;
        row["linkUp"] = r.linkUp === true;
        row["neverSynced"] = isNeverSynced(r);
        if (r.linkUp !== true) {
          row["linkDownMs"] =
            r.linkDownSeconds !== undefined && r.linkDownSeconds >= 0 ? r.linkDownSeconds * 1000 : input.now - (input.linkDownSince.get(target) ?? input.now);
        }
        const follows = p && primary && r.primaryAddress === input.addressOf(primary.host) && r.primaryPort === port;
        if (follows && p.offset !== undefined && r.offset !== undefined && r.offset >= 0) {
          // The primary's offset when the replica was read (not at the primary's own, later or earlier, check): two
          // checks a few ms apart under heavy writes must not read as lag.
          const ptarget = `${primary.host}:${port}`;
          const pOffset = input.history.offsetAt(ptarget, r.at) ?? (p.at <= r.at ? p.offset : r.offset);
          const e = estimateDataLoss({ offset: pOffset, at: r.at }, r.offset, (o) => input.history.firstAbove(ptarget, o));
          row["lagBytes"] = e.bytes;
          row["lagMs"] = e.ms;
          row["lagAtLeast"] = e.atLeast;
        }
      }
      out.push(row as unknown as PortReplication);
    }
  }
  return out;
}

/** A server that answered with another identity than the last time it was healthy. */
export interface RestartEvidence {
  readonly target: string;
  readonly at: number;
  /** The restarted process's run_id, when known. */
  readonly runId?: string | undefined;
  /** The dataset went back: far fewer keys than before (an empty restart, or an old snapshot). */
  readonly datasetLost: boolean;
  readonly text: string;
  /** What it was before the restart (its last healthy observation): the reference for what was acknowledged. */
  readonly before: RedisObservation;
}

/**
 * Null when `next` is the process `before` was (or nothing tells otherwise); else what changed. A primary restarted
 * without its data answers as a healthy, empty primary: its replica would fully resync from it and wipe its own
 * copy. Keys are the witness of the dataset (a restart from a snapshot also gets a new replication id and offset 0);
 * without a key count a restart is only reported, never acted on.
 */
export function classifyRestart(before: RedisObservation, next: RedisObservation): Omit<RestartEvidence, "before"> | null {
  if (!before.ok || !next.ok || before.role !== "primary" || next.role !== "primary") return null;
  const runChanged = before.runId !== undefined && next.runId !== undefined && before.runId !== next.runId;
  const historyBroken = before.replid !== undefined && next.replid !== undefined && next.replid !== before.replid && next.replid2 !== before.replid;
  const offsetBack = before.offset !== undefined && next.offset !== undefined && next.offset < before.offset;
  if (!runChanged && !(historyBroken && offsetBack)) return null;
  const keysKnown = before.keys !== undefined && next.keys !== undefined;
  const datasetLost = keysKnown && before.keys! > 0 && (next.keys === 0 || next.keys! < before.keys! / 2);
  const parts = [
    runChanged ? `run_id ${before.runId!.slice(0, 8)} -> ${next.runId!.slice(0, 8)}` : "",
    offsetBack ? `offset ${before.offset} -> ${next.offset}` : "",
    historyBroken ? "a new replication history" : "",
    keysKnown ? `${before.keys} -> ${next.keys} keys` : "key count unknown",
  ].filter(Boolean);
  const text = `${next.target} restarted${datasetLost ? " with its dataset gone" : ""} (${parts.join(", ")})`;
  return { target: next.target, at: next.at, runId: next.runId, datasetLost, text };
}
