/**
 * The Redis check: PING and INFO replication pipelined in one write on a kept connection, under the check timeout.
 * An error reply (LOADING while a dataset loads, MISCONF, MASTERDOWN, NOAUTH: PING is refused in all of them), or a
 * role other than primary/replica is an incorrect response, not health. The role, a replica's primary and link, and
 * the offsets come from INFO replication (what ROLE says, in one reply fewer). Only the fields used are read out of
 * INFO's text: the check runs thousands of times a second on a large topology.
 */
import type { ProbeConnection } from "../admin/redis-probe.ts";
import { ProbeError } from "../errors.ts";
import type { RedisObservation } from "./observation.ts";

export interface RedisTarget {
  readonly host: string;
  readonly port: number;
  readonly address: string;
}

export async function checkRedis(
  target: RedisTarget,
  client: ProbeConnection,
  timeoutMs: number,
  now: () => number = Date.now,
): Promise<RedisObservation> {
  const at = now();
  const { host, port, address } = target;
  const id = `${host}:${port}`;
  try {
    const [pong, info, runId, keys] = await client.probe(timeoutMs);
    if (pong !== "PONG") throw new ProbeError("error-reply", `PING answered ${JSON.stringify(pong)}`);
    if (typeof info !== "string") throw new ProbeError("protocol", "INFO did not answer text");
    const latencyMs = now() - at;
    const role = infoField(info, ROLE);
    const replid = infoField(info, REPLID);
    const replid2 = infoField(info, REPLID2);
    const identity = {
      ...(runId ? { runId } : {}),
      ...(replid ? { replid } : {}),
      ...(replid2 ? { replid2 } : {}),
      ...(keys !== undefined ? { keys } : {}),
    };
    if (role === "master") {
      const offset = whole(info, MASTER_OFFSET, target);
      return { type: "redis", target: id, host, port, address, at, ok: true, latencyMs, role: "primary", offset, replicas: replicasOf(info), ...identity };
    }
    if (role !== "slave") {
      throw new ProbeError("wrong-role", `INFO on ${address}:${port} says role '${String(role).slice(0, 20)}', not master or slave`);
    }
    const primaryAddress = infoField(info, MASTER_HOST);
    const primaryPort = whole(info, MASTER_PORT, target);
    if (!primaryAddress || primaryPort < 1 || primaryPort > 65535) {
      throw new ProbeError("protocol", `INFO on ${address}:${port}: a replica without a valid master_host/master_port`);
    }
    const linkUp = infoField(info, LINK_STATUS) === "up";
    const downSince = linkUp ? undefined : infoField(info, LINK_DOWN_SINCE);
    return {
      type: "redis",
      target: id,
      host,
      port,
      address,
      at,
      ok: true,
      latencyMs,
      ...identity,
      role: "replica",
      offset: infoField(info, REPLICA_OFFSET) === undefined ? -1 : whole(info, REPLICA_OFFSET, target),
      primaryAddress,
      primaryPort,
      linkUp,
      syncing: infoField(info, SYNC_IN_PROGRESS) === "1",
      ...(downSince !== undefined && /^-?\d+$/.test(downSince) ? { linkDownSeconds: Number(downSince) } : {}),
    };
  } catch (e) {
    const err = e instanceof ProbeError ? e : new ProbeError("protocol", (e as Error).message);
    if (err.kind === "timeout") client.close();
    return { type: "redis", target: id, host, port, address, at, ok: false, latencyMs: now() - at, failure: { kind: err.kind, message: err.message } };
  }
}

// INFO keys, each as the needle infoField looks for.
const ROLE = "\nrole:";
const MASTER_OFFSET = "\nmaster_repl_offset:";
const REPLICA_OFFSET = "\nslave_repl_offset:";
const MASTER_HOST = "\nmaster_host:";
const MASTER_PORT = "\nmaster_port:";
const LINK_STATUS = "\nmaster_link_status:";
const SYNC_IN_PROGRESS = "\nmaster_sync_in_progress:";
const CONNECTED_REPLICAS = "\nconnected_slaves:";
const REPLID = "\nmaster_replid:";
const REPLID2 = "\nmaster_replid2:";
const LINK_DOWN_SINCE = "\nmaster_link_down_since_seconds:";

/**
 * The value of one `key:value` line of INFO's text, found by `needle` (`"\nkey:"`: every line after a section header
 * follows a newline), or undefined.
 */
export function infoField(text: string, needle: string): string | undefined {
  const i = text.indexOf(needle);
  if (i < 0) return undefined;
  const start = i + needle.length;
  const end = text.indexOf("\r", start);
  return text.slice(start, end < 0 ? text.length : end);
}

/** A whole number field of INFO; a missing or malformed one is a protocol error (never a silent 0 or NaN). */
function whole(text: string, needle: string, t: RedisTarget): number {
  const v = infoField(text, needle);
  if (v === undefined || !/^-?\d+$/.test(v)) {
    throw new ProbeError("protocol", `INFO on ${t.address}:${t.port}: ${needle.slice(1, -1)} is ${v === undefined ? "missing" : "not a number"}`);
  }
  return Number(v);
}

/** The `slaveN` lines a primary lists (`connected_slaves` of them). */
function replicasOf(text: string): NonNullable<RedisObservation["replicas"]> {
  const n = Number(infoField(text, CONNECTED_REPLICAS) ?? 0);
  const out: { address: string; port: number; offset: number; online: boolean; lag: number }[] = [];
  for (let i = 0; i < n && i < 1000; i++) {
    const line = infoField(text, `\nslave${i}:`);
    if (line !== undefined) out.push(parseReplicaLine(line));
  }
  return out;
}

/** `ip=127.0.1.2,port=9001,state=online,offset=123,lag=0`. */
function parseReplicaLine(line: string): { address: string; port: number; offset: number; online: boolean; lag: number } {
  const r = { address: "", port: Number.NaN, offset: 0, online: false, lag: 0 };
  for (const kv of line.split(",")) {
    const eq = kv.indexOf("=");
    const k = kv.slice(0, eq);
    const v = kv.slice(eq + 1);
    if (k === "ip") r.address = v;
    else if (k === "port") r.port = Number(v);
    else if (k === "offset") r.offset = Number(v);
    else if (k === "state") r.online = v === "online";
    else if (k === "lag") r.lag = Number(v);
  }
  return r;
}

/** `slaveN:ip=127.0.1.2,port=9001,state=online,offset=123,lag=0` lines of a parsed INFO replication. */
export function parseReplicas(info: Record<string, string>): NonNullable<RedisObservation["replicas"]> {
  return Object.entries(info)
    .filter(([k]) => /^slave\d+$/.test(k))
    .map(([, v]) => parseReplicaLine(v));
}
