/** Builds the provider set a config asks for. */
import { readFileSync } from "node:fs";
import type { RedisAuth } from "../admin/redis.ts";
import { ConfigError } from "../errors.ts";
import type { Topology } from "../topology/topology.ts";
import { resolveSecret } from "../topology/secrets.ts";
import { LocalCompute, LocalDns, LocalProxies } from "./local/index.ts";
import { Sandbox } from "./local/sandbox.ts";
import { NetHaproxyAdmin, NetRedisAdmin } from "./net-admin.ts";
import { chaosFailuresFromEnv, withChaos } from "./chaos.ts";
import type { Providers } from "./types.ts";

export function redisAuthOf(t: Topology): RedisAuth {
  const r = t.config.redis;
  const read = (path: string | undefined, field: string) => {
    if (path === undefined) return undefined;
    try {
      return readFileSync(path, "utf8");
    } catch (e) {
      throw new ConfigError(t.source, [`${field}: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? "error"}`]);
    }
  };
  return {
    username: r.username,
    password: resolveSecret(r.password, "redis.password", t.source),
    tls: r.tls
      ? {
          ca: read(r.tls.ca, "redis.tls.ca"),
          cert: read(r.tls.cert, "redis.tls.cert"),
          key: read(r.tls.key, "redis.tls.key"),
          servername: r.tls.serverName,
        }
      : undefined,
  };
}

/**
 * The provider set of the config. The AWS SDK is loaded only for `provider.kind: aws` (it is most of a daemon's
 * memory otherwise).
 */
export async function createProviders(t: Topology): Promise<Providers> {
  const auth = redisAuthOf(t);
  const timeoutMs = Math.max(t.config.checks.timeoutMs, 1000);
  const redis = new NetRedisAdmin(timeoutMs, auth);
  const haproxy = new NetHaproxyAdmin(timeoutMs);
  const p = t.config.provider;
  if (p.kind === "local") {
    const sandbox = new Sandbox(t.name, p);
    return withChaos({
      compute: new LocalCompute(sandbox, { password: auth.password, username: auth.username }, p.latency),
      dns: new LocalDns(sandbox, p.latency),
      proxies: new LocalProxies(sandbox),
      redis,
      haproxy,
      close: async () => redis.close(),
    }, chaosFailuresFromEnv());
  }
  if (p.kind === "aws") {
    const { createAwsProviders } = await import("./aws/index.ts");
    const aws = createAwsProviders(t, auth);
    return withChaos({
      compute: aws.compute,
      dns: aws.dns,
      proxies: aws.proxies,
      redis,
      haproxy,
      close: async () => {
        redis.close();
        aws.close();
      },
    }, chaosFailuresFromEnv());
  }
  throw new ConfigError(t.source, [`provider.kind: '${(p as { kind: string }).kind}' is not available in this build`]);
}
