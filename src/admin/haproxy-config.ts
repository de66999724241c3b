/**
 * Renders failoverd's own HAProxy file from the topology and the current runtime view, so that a reload never loses a
 * runtime change (a reload forgets runtime address changes; see shared/notes/haproxy-redis.md). The same text serves
 * the local sandbox and a remote host over SSH.
 *
 * It is never the host's whole configuration: HAProxy loads it after the host's main config (`haproxy -f
 * /etc/haproxy/haproxy.cfg -f /etc/haproxy/failoverd.cfg`), which keeps its `global` settings (user, group, chroot,
 * log, maxconn, its own stats socket) and every other frontend it serves. Verified with HAProxy 2.6: a second `global`
 * section in a later file adds to the first (failoverd's adds only its Runtime API socket); a `defaults` section
 * resets every default, so failoverd's proxies inherit nothing from the host's `defaults` and the host's inherit
 * nothing from failoverd's (its file comes last).
 *
 * Redis tier: one frontend per listen port, one backend per Redis port, one server per Redis host of the pair. The
 * health check asks `info replication` and pipelines QUIT so a replica fails the `role:master` check at once instead
 * of by timeout. A fenced server is rendered `disabled` (maint), so it stays out even across a reload.
 */
import type { Inventory } from "../topology/inventory.ts";
import { resolveSecret } from "../topology/secrets.ts";
import { getHost, type Topology } from "../topology/topology.ts";

export interface RenderedServer {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  /** Rendered in maintenance: a fenced or not-yet-synced server. */
  readonly disabled?: boolean;
  readonly backup?: boolean;
  /** Health-check port when it is not the traffic port (an upstream HAProxy's Runtime API). */
  readonly checkPort?: number;
}

export interface RedisBackend {
  readonly listenPort: number;
  readonly redisPort: number;
  readonly servers: readonly RenderedServer[];
}

export interface RelayBackend {
  readonly listenPort: number;
  readonly servers: readonly RenderedServer[];
}

export interface HaproxyRenderInput {
  /** The address this HAProxy binds its frontends and admin socket to. */
  readonly bindAddress: string;
  readonly adminPort: number;
  /** Unix admin socket (mode 600): the local, safer way in; optional. */
  readonly adminSocketPath?: string;
  readonly checkIntervalMs?: number;
  /** failoverd's `checks.fall`: with the interval, how long a failure takes to confirm (3 by default). */
  readonly checkFall?: number;
  /**
   * failoverd's `checks.timeoutMs`: how long a health check waits for an answer. HAProxy's `timeout check` is the same
   * bound (at most the interval), so a hung server, which accepts the connection and never answers, is marked down by
   * the HAProxies as soon as failoverd itself sees it failing, and their view confirms the hang within the budget.
   */
  readonly checkTimeoutMs?: number;
  readonly redis?: readonly RedisBackend[];
  /** App-side relays: listen port -> an upstream HAProxy, the others as backups. */
  readonly relays?: readonly RelayBackend[];
  /** Redis AUTH for the health check, when the servers require it. */
  readonly checkPassword?: string;
  readonly checkUsername?: string;
}

export function redisBackendName(redisPort: number): string {
  return `be_redis_${redisPort}`;
}

export function relayBackendName(listenPort: number): string {
  return `be_relay_${listenPort}`;
}

export function renderHaproxyConfig(input: HaproxyRenderInput): string {
  const inter = input.checkIntervalMs ?? 1000;
  const fast = Math.max(50, Math.floor(inter / 2));
  // HAProxy retries a refused connection after min(timeout connect, 1 s), on another server (redispatch). A short
  // turn-around hands a client that reached a dead primary to the promoted one soon after the routing changes; the
  // retries span the detection budget (interval x fall) plus one interval for the recovery, so such a client is held
  // through the failover instead of refused. Connects on a LAN take well under a millisecond.
  const connect = Math.max(25, Math.min(250, Math.floor(inter / 4)));
  const retries = Math.max(3, Math.min(20, Math.ceil((inter * ((input.checkFall ?? 3) + 1)) / connect)));
  const checkTimeout = Math.max(50, Math.min(1000, inter, input.checkTimeoutMs ?? inter));
  const lines = [
    "# failoverd's own HAProxy configuration, loaded after the host's main config (haproxy -f <main> -f <this file>).",
    "# Rendered by failoverd: edits are overwritten at the next change of the topology. The host's config is not.",
    "global",
    ...(input.adminSocketPath ? [`    stats socket ${input.adminSocketPath} mode 600 level admin`] : []),
    `    stats socket ipv4@${input.bindAddress}:${input.adminPort} level admin`,
    "defaults",
    "    mode tcp",
    // Server state changes and connection errors go to the host's loggers (its `global` log lines), if it has any.
    "    log global",
    `    retries ${retries}`,
    "    option redispatch 1",
    `    timeout connect ${connect}ms`,
    "    timeout client 1h",
    "    timeout server 1h",
    "    timeout tunnel 1h",
    "    timeout client-fin 30s",
    "    timeout server-fin 30s",
    `    timeout check ${checkTimeout}ms`,
    "    option clitcpka",
    "    option srvtcpka",
    `    default-server inter ${inter}ms fastinter ${fast}ms downinter ${inter}ms fall 2 rise 2 on-marked-down shutdown-sessions`,
  ];
  for (const b of input.redis ?? []) {
    const be = redisBackendName(b.redisPort);
    lines.push(
      `frontend fe_redis_${b.listenPort}`,
      `    bind ${input.bindAddress}:${b.listenPort}`,
      `    default_backend ${be}`,
      `backend ${be}`,
      "    balance first",
      "    option tcp-check",
      "    tcp-check connect",
      ...(input.checkPassword
        ? [
            `    tcp-check send AUTH\\ ${input.checkUsername ? `${escapeCheck(input.checkUsername)}\\ ` : ""}${escapeCheck(input.checkPassword)}\\r\\n`,
            "    tcp-check expect string +OK",
          ]
        : []),
      "    tcp-check send PING\\r\\n",
      "    tcp-check expect string +PONG",
      "    tcp-check send info\\ replication\\r\\nQUIT\\r\\n",
      "    tcp-check expect string role:master",
      ...b.servers.map(serverLine),
    );
  }
  for (const r of input.relays ?? []) {
    const be = relayBackendName(r.listenPort);
    lines.push(
      `frontend fe_relay_${r.listenPort}`,
      `    bind ${input.bindAddress}:${r.listenPort}`,
      `    default_backend ${be}`,
      `backend ${be}`,
      "    balance first",
      // The upstream HAProxy must answer its Runtime API: a hung HAProxy still accepts TCP connections (the kernel
      // does), so a plain connect check would keep sending traffic into it. Redis' health is not this check's
      // business: a Redis failover must not take every upstream down.
      "    option tcp-check",
      "    tcp-check connect",
      "    tcp-check send show\\ info\\n",
      "    tcp-check expect string Name:",
      ...r.servers.map(serverLine),
    );
  }
  return `${lines.join("\n")}\n`;
}

function serverLine(s: RenderedServer): string {
  const port = s.checkPort !== undefined ? ` port ${s.checkPort}` : "";
  return `    server ${s.name} ${s.address}:${s.port} check${port}${s.backup ? " backup" : ""}${s.disabled ? " disabled" : ""}`;
}

function checkAuth(t: Topology, o: { checkPassword?: string; checkUsername?: string }) {
  const password = o.checkPassword ?? resolveSecret(t.config.redis.password, "redis.password", t.source);
  const username = o.checkUsername ?? t.config.redis.username;
  return { ...(password ? { checkPassword: password } : {}), ...(password && username ? { checkUsername: username } : {}) };
}

/** Escapes a word of haproxy.cfg: backslash, space, quotes and `#` (which would start a comment). */
function escapeCheck(s: string): string {
  return s.replace(/[\\ "'#]/g, (c) => `\\${c}`);
}

/**
 * The config of one HAProxy or app host, from the topology and where every host lives now. `outOfService` hosts
 * are rendered disabled (fenced, or not yet a synced replica).
 */
export function renderForHost(
  t: Topology,
  inventory: Inventory,
  hostName: string,
  options: {
    outOfService?: ReadonlySet<string>;
    /** The current primary host per Redis port; the others are rendered `backup` so a reload routes right at once. */
    primaryOf?: (redisPort: number) => string | undefined;
    adminSocketPath?: string;
    /** The health check's AUTH; by default the topology's `redis` credentials. */
    checkPassword?: string;
    checkUsername?: string;
  } = {},
): string {
  const host = getHost(t, hostName);
  const out = options.outOfService ?? new Set<string>();
  const bindAddress = inventory.addressOf(hostName);
  const checkIntervalMs = Math.min(1000, Math.max(100, t.config.checks.intervalMs));
  if (host.role === "haproxy") {
    const redis = Object.entries(host.frontends).map(([listen, redisPort]) => {
      const pair = t.pairs.find((p) => p.ports.includes(redisPort));
      const servers = (pair?.hosts ?? []).map((h) => ({
        name: h,
        address: inventory.addressOf(h),
        port: redisPort,
        disabled: out.has(h),
        backup: options.primaryOf !== undefined && options.primaryOf(redisPort) !== h,
      }));
      return { listenPort: Number(listen), redisPort, servers };
    });
    return renderHaproxyConfig({
      bindAddress,
      adminPort: host.adminPort,
      checkIntervalMs,
      checkFall: t.config.checks.fall,
      checkTimeoutMs: t.config.checks.timeoutMs,
      redis,
      ...(options.adminSocketPath ? { adminSocketPath: options.adminSocketPath } : {}),
      ...checkAuth(t, options),
    });
  }
  if (host.role === "app") {
    const relays = Object.entries(host.frontends).map(([listen, haproxyPort]) => ({
      listenPort: Number(listen),
      servers: host.upstreams.map((u, i) => {
        const up = getHost(t, u);
        return {
          name: u,
          address: inventory.addressOf(u),
          port: haproxyPort,
          backup: i > 0,
          disabled: out.has(u),
          ...(up.role === "haproxy" ? { checkPort: up.adminPort } : {}),
        };
      }),
    }));
    return renderHaproxyConfig({
      bindAddress,
      adminPort: host.adminPort,
      checkIntervalMs,
      checkFall: t.config.checks.fall,
      checkTimeoutMs: t.config.checks.timeoutMs,
      relays,
      ...(options.adminSocketPath ? { adminSocketPath: options.adminSocketPath } : {}),
    });
  }
  throw new Error(`${hostName} is a Redis host; it has no HAProxy config`);
}
