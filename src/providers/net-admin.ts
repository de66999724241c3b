/** RedisAdmin and HaproxyAdmin over the network: the real implementations that every provider set uses. */
import { randomBytes } from "node:crypto";
import { HaproxyAdminClient } from "../admin/haproxy.ts";
import type { ServerCommand, ServerState } from "../admin/haproxy.ts";
import { type Endpoint, type RedisAuth, RedisClientPool, type RoleReply } from "../admin/redis.ts";
import type { HaproxyAdmin, RedisAdmin } from "./types.ts";

export class NetRedisAdmin implements RedisAdmin {
  private readonly pool: RedisClientPool;
  constructor(
    timeoutMs: number,
    private readonly auth: RedisAuth = {},
  ) {
    this.pool = new RedisClientPool(timeoutMs, auth);
  }
  role(ep: Endpoint): Promise<RoleReply> {
    return this.pool.get(ep).role();
  }
  info(ep: Endpoint, section: string): Promise<Record<string, string>> {
    return this.pool.get(ep).info(section);
  }
  async promote(ep: Endpoint): Promise<void> {
    const reply = await this.pool.get(ep).call("REPLICAOF", "NO", "ONE");
    if (reply !== "OK") throw new Error(`REPLICAOF NO ONE on ${ep.address}:${ep.port} answered ${String(reply)}`);
  }
  async replicate(ep: Endpoint, primary: Endpoint): Promise<void> {
    const reply = await this.pool.get(ep).call("REPLICAOF", primary.address, primary.port);
    if (typeof reply !== "string" || !reply.startsWith("OK")) {
      throw new Error(`REPLICAOF on ${ep.address}:${ep.port} answered ${String(reply)}`);
    }
  }
  async failover(ep: Endpoint, to: Endpoint, timeoutMs: number): Promise<void> {
    const reply = await this.pool.get(ep).call("FAILOVER", "TO", to.address, to.port, "TIMEOUT", timeoutMs);
    if (reply !== "OK") throw new Error(`FAILOVER TO ${to.address} ${to.port} on ${ep.address}:${ep.port} answered ${String(reply)}`);
  }
  async abortFailover(ep: Endpoint): Promise<void> {
    try {
      await this.pool.get(ep).call("FAILOVER", "ABORT");
    } catch (e) {
      if (!/No failover in progress/i.test((e as Error).message)) throw e;
    }
  }
  async holdSync(ep: Endpoint): Promise<void> {
    const reply = await this.pool.get(ep).call("CONFIG", "SET", "masterauth", `failoverd-hold-${randomBytes(16).toString("hex")}`);
    if (reply !== "OK") throw new Error(`CONFIG SET masterauth on ${ep.address}:${ep.port} answered ${String(reply)}`);
  }
  async syncHeld(ep: Endpoint): Promise<boolean> {
    const reply = await this.pool.get(ep).call("CONFIG", "GET", "masterauth");
    return Array.isArray(reply) && typeof reply[1] === "string" && reply[1].startsWith("failoverd-hold-");
  }
  async releaseSync(ep: Endpoint): Promise<void> {
    const reply = await this.pool.get(ep).call("CONFIG", "SET", "masterauth", this.auth.password ?? "");
    if (reply !== "OK") throw new Error(`CONFIG SET masterauth on ${ep.address}:${ep.port} answered ${String(reply)}`);
  }
  close(): void {
    this.pool.closeAll();
  }
}

export class NetHaproxyAdmin implements HaproxyAdmin {
  constructor(private readonly timeoutMs: number) {}
  private client(h: Endpoint) {
    return new HaproxyAdminClient({ address: h.address, port: h.port }, this.timeoutMs);
  }
  serversState(h: Endpoint, backend?: string): Promise<ServerState[]> {
    return this.client(h).showServersState(backend);
  }
  apply(h: Endpoint, commands: readonly ServerCommand[]): Promise<void> {
    return this.client(h).apply(commands);
  }
}
