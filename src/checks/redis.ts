/**
 * The Redis check: PING, ROLE and INFO (replication, persistence) pipelined on one connection, all under the check
 * timeout. An error reply (LOADING, MISCONF, MASTERDOWN, NOAUTH), a dataset still loading, or a role other than
 * primary/replica is an incorrect response, not health.
 */
import { parseInfo, parseRole, type RedisAdminClient, withDeadline } from "../admin/redis.ts";
import { ProbeError } from "../errors.ts";
import type { RedisObservation } from "./observation.ts";

export interface RedisTarget {
  readonly host: string;
  readonly port: number;
  readonly address: string;
}

export async function checkRedis(
  target: RedisTarget,
  client: RedisAdminClient,
  timeoutMs: number,
  now: () => number = Date.now,
): Promise<RedisObservation> {
  const at = now();
  const base = { type: "redis" as const, target: `${target.host}:${target.port}`, ...target, at };
  try {
    const [pong, roleReply, infoText] = await withDeadline(
      Promise.all([client.call("PING"), client.call("ROLE"), client.call("INFO", "replication", "persistence")]),
      timeoutMs,
      `check of ${target.address}:${target.port}`,
    );
    if (pong !== "PONG") throw new ProbeError("error-reply", `PING answered ${JSON.stringify(pong)}`);
    const role = parseRole(roleReply, target);
    if (typeof infoText !== "string") throw new ProbeError("protocol", "INFO did not answer text");
    const info = parseInfo(infoText);
    if (info["loading"] === "1") throw new ProbeError("loading", `${target.address}:${target.port} is loading its dataset`);
    const latencyMs = now() - at;
    if (role.role === "primary") {
      return {
        ...base,
        ok: true,
        latencyMs,
        role: "primary",
        offset: Number(info["master_repl_offset"] ?? role.offset),
        replicas: parseReplicas(info),
      };
    }
    return {
      ...base,
      ok: true,
      latencyMs,
      role: "replica",
      offset: Number(info["slave_repl_offset"] ?? role.offset),
      primaryAddress: role.primary.address,
      primaryPort: role.primary.port,
      linkUp: info["master_link_status"] === "up",
      syncing: info["master_sync_in_progress"] === "1",
    };
  } catch (e) {
    const err = e instanceof ProbeError ? e : new ProbeError("protocol", (e as Error).message);
    if (err.kind === "timeout") client.close();
    return { ...base, ok: false, latencyMs: now() - at, failure: { kind: err.kind, message: err.message } };
  }
}

/** `slaveN:ip=127.0.1.2,port=9001,state=online,offset=123,lag=0` lines of INFO replication. */
export function parseReplicas(info: Record<string, string>): NonNullable<RedisObservation["replicas"]> {
  const out: { address: string; port: number; offset: number; online: boolean; lag: number }[] = [];
  for (const [k, v] of Object.entries(info)) {
    if (!/^slave\d+$/.test(k)) continue;
    const f = Object.fromEntries(v.split(",").map((kv) => kv.split("=") as [string, string]));
    out.push({
      address: f["ip"] ?? "",
      port: Number(f["port"]),
      offset: Number(f["offset"] ?? 0),
      online: f["state"] === "online",
      lag: Number(f["lag"] ?? 0),
    });
  }
  return out;
}
