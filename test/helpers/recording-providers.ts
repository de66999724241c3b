/**
 * An in-memory world for playbook tests: machines, Redis servers, HAProxy runtime state, DNS records and proxy
 * configs, behind the `Providers` interface. Every call (reads and writes) is appended to `calls` as one line
 * ("haproxy.setState 127.0.2.1:9999 be_redis_9001 redis1 maint"), so a test asserts on the order of the effects.
 *
 * Faults: `kill(host)` makes the host's current machine dead (its Redis and HAProxy admin calls are refused);
 * `failOn` makes matching calls throw; `ignoreOn` makes matching writes resolve without effect (a provider that
 * lies), which only a step's own verification can catch.
 *
 * `RecordingMonitor` is the daemon's MonitorControl for these tests: it records into the same `calls` (so the
 * runbook's first and last lines take part in ordering and fault injection) and reports killed hosts as down.
 */
import type { ServerCommand, ServerState } from "../../src/admin/haproxy.ts";
import { renderForHost } from "../../src/admin/haproxy-config.ts";
import type { Endpoint, RoleReply } from "../../src/admin/redis.ts";
import type { CheckRules, TargetStatus } from "../../src/checks/detector.ts";
import type { Observation, RedisObservation } from "../../src/checks/observation.ts";
import { HaproxyCommandError, ProbeError, ProviderError } from "../../src/errors.ts";
import type { KeepMode, KeptMachine, LaunchRequest, Machine, MachineRole, Providers, Spare, SpareState } from "../../src/providers/types.ts";
import type { MonitorControl } from "../../src/recovery/types.ts";
import { Inventory } from "../../src/topology/inventory.ts";
import { parseTopology } from "../../src/topology/load.ts";
import type { Topology } from "../../src/topology/topology.ts";

// ---------------------------------------------------------------------------------------------------------------
// Topologies
// ---------------------------------------------------------------------------------------------------------------

export interface TestRecoveryOptions {
  readonly enabled?: boolean;
  readonly cooldownMs?: number;
  readonly stepTimeoutMs?: number;
  readonly syncTimeoutMs?: number;
  readonly stepAttempts?: number;
  readonly maxFailingFraction?: number;
  readonly maxDataLossBytes?: number;
  readonly maxDataLossMs?: number;
  /** recovery.failedMachine; `terminate` here (the tables below were written for it), the config's default is stop. */
  readonly failedMachine?: "terminate" | "stop" | "quarantine";
  /** provider.spares.redis.count (stopped spares). */
  readonly redisSpares?: number;
}

/** The sandbox topology (config/sandbox.yaml's shape) with short recovery deadlines, so a failing wait fails fast. */
export function sandboxYaml(r: TestRecoveryOptions = {}): string {
  const recovery = {
    enabled: r.enabled ?? true,
    cooldownMs: r.cooldownMs ?? 60000,
    stepTimeoutMs: r.stepTimeoutMs ?? 400,
    syncTimeoutMs: r.syncTimeoutMs ?? 400,
    stepAttempts: r.stepAttempts ?? 3,
    maxFailingFraction: r.maxFailingFraction ?? 0.5,
    ...(r.maxDataLossBytes !== undefined ? { maxDataLossBytes: r.maxDataLossBytes } : {}),
    ...(r.maxDataLossMs !== undefined ? { maxDataLossMs: r.maxDataLossMs } : {}),
    failedMachine: r.failedMachine ?? "terminate",
  };
  return `topology: unit
hosts:
  redis1:   { role: redis, address: 127.0.1.1, ports: [9001, 9002] }
  redis2:   { role: redis, address: 127.0.1.2, ports: [9001, 9002] }
  haproxy1: { role: haproxy, address: 127.0.2.1, frontends: { 8001: 9001, 8002: 9002 }, adminPort: 9999, dnsName: haproxy1.unit.internal }
  haproxy2: { role: haproxy, address: 127.0.2.2, frontends: { 8001: 9001, 8002: 9002 }, adminPort: 9999, dnsName: haproxy2.unit.internal }
  app:      { role: app, address: 127.0.3.1, frontends: { 7001: 8001, 7002: 8002 }, upstreams: [haproxy1, haproxy2], adminPort: 9999 }
pairs:
  - [redis1, redis2]
checks: { intervalMs: 200, timeoutMs: 150, fall: 3, rise: 2 }
recovery: ${JSON.stringify(recovery)}
provider: { kind: local, runDir: .failoverd/unit${r.redisSpares ? `, addressPool: { redis: [127.0.1.11], haproxy: [127.0.2.11] }, spares: { redis: { count: ${r.redisSpares} } }` : ""} }
stateDir: .failoverd/unit-state
`;
}

export function testTopology(r: TestRecoveryOptions = {}): Topology {
  return parseTopology(sandboxYaml(r), "test");
}

// ---------------------------------------------------------------------------------------------------------------
// Calls
// ---------------------------------------------------------------------------------------------------------------

const WRITES = new Set([
  "compute.launch",
  "compute.ready",
  "compute.terminate",
  "compute.keep",
  "compute.claim",
  "compute.addSpare",
  "dns.upsert",
  "proxies.applyConfig",
  "redis.promote",
  "redis.replicate",
  "redis.failover",
  "redis.abortFailover",
  "redis.holdSync",
  "redis.releaseSync",
  "haproxy.setState",
  "haproxy.setHealth",
  "haproxy.shutdownSessions",
  "haproxy.setAddr",
]);

/** The method of a recorded call: "haproxy.setState". */
export const methodOf = (call: string): string => call.split(" ")[0] ?? "";

/** A provider call that changes the world. */
export const isWrite = (call: string): boolean => WRITES.has(methodOf(call));

/** A call of the monitoring switches (`monitor.unmonitor redis1`). */
export const isMonitorCall = (call: string): boolean => call.startsWith("monitor.");

export interface FaultHook {
  /** How many calls the hook acted on. */
  hits: number;
}

interface Hook extends FaultHook {
  readonly predicate: (call: string) => boolean;
  remaining: number;
  readonly error?: (call: string) => Error;
}

// ---------------------------------------------------------------------------------------------------------------
// The world
// ---------------------------------------------------------------------------------------------------------------

interface FakeMachine {
  readonly id: string;
  readonly role: MachineRole;
  readonly address: string;
  host: string;
  readonly seq: number;
  running: boolean;
  dead: boolean;
  spare?: SpareState | undefined;
  kept?: { mode: KeepMode; recoveryId: string } | undefined;
}

interface FakeRedis {
  readonly machineId: string;
  role: "primary" | "replica";
  primary: Endpoint | null;
  offset: number;
}

interface FakeRow {
  readonly backend: string;
  readonly server: string;
  address: string;
  port: number;
  inMaint: boolean;
  inDrain: boolean;
  isUp: boolean;
}

interface FakeHaproxy {
  readonly machineId: string;
  rows: FakeRow[];
}

export interface WorldOptions {
  /** Which host of its pair is primary for each port; the pair's first host by default. */
  readonly primaries?: Readonly<Record<number, string>>;
  /** Replication offset of the starting servers. */
  readonly offset?: number;
}

const epId = (e: Endpoint) => `${e.address}:${e.port}`;
const refused = (what: string) => new ProbeError("refused", `connect ECONNREFUSED ${what}`);

export class RecordingProviders implements Providers {
  /** Every call, reads and writes, in order. */
  readonly calls: string[] = [];
  private readonly machines = new Map<string, FakeMachine>();
  private readonly servers = new Map<string, FakeRedis>();
  /** Replicas whose resync is held (redis.holdSync). */
  readonly held = new Set<string>();
  private readonly haproxies = new Map<string, FakeHaproxy>();
  private readonly records = new Map<string, string>();
  private readonly configs = new Map<string, string>();
  private readonly hooks: Hook[] = [];
  private seq = 0;
  private launched = 0;

  constructor(
    readonly topology: Topology,
    options: WorldOptions = {},
  ) {
    for (const h of topology.hosts.values()) this.addMachine(h.name, h.role, h.address, `i-${h.name}-0`);
    const offset = options.offset ?? 1000;
    for (const pair of topology.pairs) {
      for (const port of pair.ports) {
        const primary = options.primaries?.[port] ?? pair.hosts[0];
        const replica = pair.hosts[0] === primary ? pair.hosts[1] : pair.hosts[0];
        const pAddr = this.declared(primary);
        this.servers.set(epId({ address: pAddr, port }), { machineId: `i-${primary}-0`, role: "primary", primary: null, offset });
        this.servers.set(epId({ address: this.declared(replica), port }), {
          machineId: `i-${replica}-0`,
          role: "replica",
          primary: { address: pAddr, port },
          offset,
        });
      }
    }
    for (const h of topology.haproxyHosts) if (h.dnsName) this.records.set(h.dnsName, h.address);
    const inventory = new Inventory(topology);
    const primaryOf = (port: number) => {
      const pair = topology.pairs.find((p) => p.ports.includes(port));
      return pair ? (options.primaries?.[port] ?? pair.hosts[0]) : undefined;
    };
    for (const h of [...topology.haproxyHosts, ...topology.appHosts]) {
      const text = renderForHost(topology, inventory, h.name, h.role === "haproxy" ? { primaryOf } : {});
      this.configs.set(`i-${h.name}-0`, text);
      this.start(`i-${h.name}-0`, text);
    }
  }

  // ----- fault injection --------------------------------------------------------------------------------------

  /** The host's current machine dies: its Redis servers and HAProxy refuse connections. The machine still "runs". */
  kill(host: string): void {
    const m = this.current(host);
    if (!m) throw new Error(`no machine serves ${host}`);
    m.dead = true;
  }

  /** Matching calls throw `error` (at most `times` of them). The call is recorded, and has no effect. */
  failOn(predicate: (call: string) => boolean, error: Error | ((call: string) => Error), times = Number.POSITIVE_INFINITY): FaultHook {
    const hook: Hook = { predicate, remaining: times, hits: 0, error: typeof error === "function" ? error : () => error };
    this.hooks.push(hook);
    return hook;
  }

  /** Matching writes resolve but change nothing (at most `times` of them). */
  ignoreOn(predicate: (call: string) => boolean, times = Number.POSITIVE_INFINITY): FaultHook {
    const hook: Hook = { predicate: (c) => isWrite(c) && predicate(c), remaining: times, hits: 0 };
    this.hooks.push(hook);
    return hook;
  }

  clearFaults(): void {
    this.hooks.length = 0;
  }

  /** Records a call and applies the fault hooks: throws, or returns true when the call must have no effect. */
  record(call: string): boolean {
    this.calls.push(call);
    for (const h of this.hooks) {
      if (h.remaining <= 0 || !h.predicate(call)) continue;
      h.remaining--;
      h.hits++;
      if (h.error) throw h.error(call);
      return true;
    }
    return false;
  }

  // ----- inspection -------------------------------------------------------------------------------------------

  /** The provider calls that change the world, in order. */
  writes(): string[] {
    return this.calls.filter(isWrite);
  }

  /** The machine currently serving `host` (the newest running one). */
  machineOf(host: string): Machine | null {
    const m = this.current(host);
    return m ? { id: m.id, host: m.host, role: m.role, address: m.address } : null;
  }

  isMachineRunning(id: string): boolean {
    return this.machines.get(id)?.running === true;
  }

  /** True when the host has no live machine: none running, or the running one was killed. */
  isDown(host: string): boolean {
    const m = this.current(host);
    return !m || m.dead;
  }

  /** A Redis server's state, whether or not it is reachable. */
  redisAt(address: string, port: number): { role: "primary" | "replica"; primary: string | null; offset: number } | undefined {
    const s = this.servers.get(epId({ address, port }));
    return s ? { role: s.role, primary: s.primary ? epId(s.primary) : null, offset: s.offset } : undefined;
  }

  /** The runtime server rows of the HAProxy whose admin endpoint is `address:port`. */
  rowsAt(address: string, port: number): ServerState[] {
    return (this.haproxies.get(epId({ address, port }))?.rows ?? []).map(toServerState);
  }

  dnsRecord(name: string): string | null {
    return this.records.get(name) ?? null;
  }

  configOf(machineId: string): string | null {
    return this.configs.get(machineId) ?? null;
  }

  /** Everything that makes up the world (not the calls), as plain data: equal snapshots mean the same world. */
  snapshot(): unknown {
    const sorted = <T>(m: Map<string, T>) => [...m.entries()].sort(([a], [b]) => a.localeCompare(b));
    return JSON.parse(
      JSON.stringify({
        machines: sorted(this.machines).map(([, m]) => ({ ...m })),
        redis: sorted(this.servers),
        haproxies: sorted(this.haproxies).map(([k, h]) => [
          k,
          h.machineId,
          [...h.rows].sort((a, b) => `${a.backend}/${a.server}`.localeCompare(`${b.backend}/${b.server}`)),
        ]),
        dns: sorted(this.records),
        configs: sorted(this.configs),
      }),
    );
  }

  // ----- Providers ----------------------------------------------------------------------------------------------

  readonly compute = {
    kind: "recording",
    launch: async (req: LaunchRequest): Promise<Machine> => {
      if (this.record(`compute.launch ${req.host} ${req.role}${req.ports ? ` ${req.ports.join(",")}` : ""}`)) {
        return { id: "i-ignored", host: req.host, role: req.role, address: "0.0.0.0" };
      }
      this.launched++;
      const m = this.addMachine(req.host, req.role, `127.0.9.${this.launched}`, `i-${req.host}-${this.launched}`);
      for (const port of req.ports ?? []) {
        this.servers.set(epId({ address: m.address, port }), { machineId: m.id, role: "primary", primary: null, offset: 0 });
      }
      return { id: m.id, host: m.host, role: m.role, address: m.address };
    },
    /** Finishes a machine an interrupted launch left: its Redis servers that do not exist yet are started. */
    ready: async (machine: Machine, req: LaunchRequest): Promise<Machine> => {
      if (this.record(`compute.ready ${machine.id} ${machine.host}`)) return machine;
      const m = this.machines.get(machine.id);
      if (!m || !this.isAlive(m.id)) throw new ProviderError(`machine ${machine.id} (${machine.host}) is not running`, true);
      for (const port of req.ports ?? []) {
        const id = epId({ address: m.address, port });
        if (!this.servers.has(id)) this.servers.set(id, { machineId: m.id, role: "primary", primary: null, offset: 0 });
      }
      return { id: m.id, host: m.host, role: m.role, address: m.address };
    },
    terminate: async (machine: Machine): Promise<void> => {
      if (this.record(`compute.terminate ${machine.id} ${machine.host} ${machine.address}`)) return;
      const m = this.machines.get(machine.id);
      if (!m || m.host !== machine.host) {
        throw new ProviderError(`refusing to terminate ${machine.id} (${machine.host}): not a machine of this topology`, false);
      }
      m.running = false;
    },
    find: async (host: string): Promise<Machine | null> => {
      this.record(`compute.find ${host}`);
      return this.machineOf(host);
    },
    keep: async (machine: Machine, how: { mode: KeepMode; recoveryId: string }): Promise<void> => {
      if (this.record(`compute.keep ${machine.id} ${machine.host} ${machine.address} ${how.mode}`)) return;
      const m = this.machines.get(machine.id);
      if (!m || m.host !== machine.host) throw new ProviderError(`refusing to ${how.mode} ${machine.id} (${machine.host}): not a machine of this topology`, false);
      m.running = false;
      m.kept = { ...how };
    },
    kept: async (): Promise<KeptMachine[]> =>
      [...this.machines.values()]
        .filter((m) => m.kept)
        .map((m) => ({ id: m.id, host: m.host, role: m.role, address: m.address, mode: m.kept!.mode, recoveryId: m.kept!.recoveryId, keptAt: m.seq })),
    spares: async (role: MachineRole): Promise<Spare[]> => {
      this.record(`compute.spares ${role}`);
      return [...this.machines.values()].filter((m) => m.spare && m.role === role).map((m) => ({ id: m.id, role, address: m.address, state: m.spare! }));
    },
    addSpare: async (role: MachineRole, state: SpareState): Promise<Spare> => {
      if (this.record(`compute.addSpare ${role} ${state}`)) return { id: "i-ignored", role, address: "0.0.0.0", state };
      return this.addSpare(role, state);
    },
    claim: async (req: LaunchRequest): Promise<Machine | null> => {
      const spare = [...this.machines.values()].find((m) => m.spare && m.role === req.role);
      if (this.record(`compute.claim ${req.host}${spare ? ` ${spare.id}` : " (none)"}`) || !spare) return null;
      spare.spare = undefined;
      spare.host = req.host;
      spare.running = true;
      for (const port of req.ports ?? []) this.servers.set(epId({ address: spare.address, port }), { machineId: spare.id, role: "primary", primary: null, offset: 0 });
      return { id: spare.id, host: spare.host, role: spare.role, address: spare.address };
    },
  };

  /** A warm spare in the pool (`running` false for a stopped one). */
  addSpare(role: MachineRole, state: SpareState): Spare {
    this.launched++;
    const m = this.addMachine("(spare)", role, `127.0.8.${this.launched}`, `i-spare-${this.launched}`);
    m.spare = state;
    m.running = state === "running";
    return { id: m.id, role, address: m.address, state };
  }

  readonly dns = {
    upsert: async (name: string, address: string): Promise<void> => {
      if (this.record(`dns.upsert ${name} ${address}`)) return;
      this.records.set(name, address);
    },
    resolve: async (name: string): Promise<string | null> => {
      this.record(`dns.resolve ${name}`);
      return this.records.get(name) ?? null;
    },
  };

  readonly proxies = {
    applyConfig: async (machine: Machine, text: string, _signal: AbortSignal, options?: { reload?: boolean }): Promise<void> => {
      const reload = options?.reload ?? true;
      if (this.record(`proxies.applyConfig ${machine.id} ${machine.host} reload=${reload}`)) return;
      this.runningMachine(machine.id);
      this.configs.set(machine.id, text);
      const started = [...this.haproxies.values()].some((h) => h.machineId === machine.id);
      if (reload || !started) this.start(machine.id, text);
    },
  };

  readonly redis = {
    role: async (ep: Endpoint): Promise<RoleReply> => {
      this.record(`redis.role ${epId(ep)}`);
      const s = this.reachableRedis(ep);
      if (s.role === "primary") {
        const replicas = [...this.servers.entries()]
          .filter(([, r]) => r.role === "replica" && r.primary && epId(r.primary) === epId(ep))
          .map(([k, r]) => ({ address: k.slice(0, k.lastIndexOf(":")), port: Number(k.slice(k.lastIndexOf(":") + 1)), offset: r.offset }));
        return { role: "primary", offset: s.offset, replicas };
      }
      const primary = s.primary!;
      return { role: "replica", primary, linkState: this.linkUp(primary) ? "connected" : "connect", offset: s.offset };
    },
    info: async (ep: Endpoint, section: string): Promise<Record<string, string>> => {
      this.record(`redis.info ${epId(ep)} ${section}`);
      const s = this.reachableRedis(ep);
      if (s.role === "primary") {
        const replicas = [...this.servers.values()].filter((r) => r.role === "replica" && r.primary && epId(r.primary) === epId(ep));
        return { role: "master", connected_slaves: String(replicas.length), master_repl_offset: String(s.offset) };
      }
      const primary = s.primary!;
      return {
        role: "slave",
        master_host: primary.address,
        master_port: String(primary.port),
        master_link_status: this.linkUp(primary) ? "up" : "down",
        master_sync_in_progress: "0",
        slave_repl_offset: String(s.offset),
        master_repl_offset: String(s.offset),
      };
    },
    promote: async (ep: Endpoint): Promise<void> => {
      if (this.record(`redis.promote ${epId(ep)}`)) return;
      const s = this.reachableRedis(ep);
      s.role = "primary";
      s.primary = null;
    },
    replicate: async (ep: Endpoint, primary: Endpoint): Promise<void> => {
      if (this.record(`redis.replicate ${epId(ep)} ${epId(primary)}`)) return;
      const s = this.reachableRedis(ep);
      s.role = "replica";
      s.primary = { address: primary.address, port: primary.port };
      // Immediately in sync when the primary is reachable.
      const p = this.servers.get(epId(primary));
      if (p && this.linkUp(primary)) s.offset = p.offset;
    },
    /** A planned switchover completes at once when `to` replicates `ep`; ignoreOn() makes it never complete. */
    failover: async (ep: Endpoint, to: Endpoint, timeoutMs: number): Promise<void> => {
      if (this.record(`redis.failover ${epId(ep)} ${epId(to)} ${timeoutMs}`)) return;
      const s = this.reachableRedis(ep);
      const t = this.reachableRedis(to);
      if (s.role !== "primary") throw new Error("ERR FAILOVER is not valid when server is a replica.");
      if (t.role !== "replica" || !t.primary || epId(t.primary) !== epId(ep)) throw new Error("ERR FAILOVER target HOST and PORT is not a replica.");
      t.role = "primary";
      t.primary = null;
      t.offset = s.offset;
      s.role = "replica";
      s.primary = { address: to.address, port: to.port };
    },
    abortFailover: async (ep: Endpoint): Promise<void> => {
      if (this.record(`redis.abortFailover ${epId(ep)}`)) return;
      this.reachableRedis(ep);
    },
    holdSync: async (ep: Endpoint): Promise<void> => {
      if (this.record(`redis.holdSync ${epId(ep)}`)) return;
      this.reachableRedis(ep);
      this.held.add(epId(ep));
    },
    syncHeld: async (ep: Endpoint): Promise<boolean> => {
      this.record(`redis.syncHeld ${epId(ep)}`);
      this.reachableRedis(ep);
      return this.held.has(epId(ep));
    },
    releaseSync: async (ep: Endpoint): Promise<void> => {
      if (this.record(`redis.releaseSync ${epId(ep)}`)) return;
      this.reachableRedis(ep);
      this.held.delete(epId(ep));
    },
    close: (): void => {},
  };

  readonly haproxy = {
    serversState: async (admin: Endpoint, backend?: string): Promise<ServerState[]> => {
      this.record(`haproxy.serversState ${epId(admin)}${backend ? ` ${backend}` : ""}`);
      const h = this.reachableHaproxy(admin);
      return h.rows.filter((r) => backend === undefined || r.backend === backend).map(toServerState);
    },
    /**
     * Records each command as its own call ("haproxy.setState 127.0.2.1:9999 be_redis_9001 redis1 maint"), so tests
     * see the order of the effects. Like HAProxy, every command of the batch runs; the first refusal is thrown.
     */
    apply: async (admin: Endpoint, commands: readonly ServerCommand[]): Promise<void> => {
      let first: unknown;
      let failed = false;
      for (const c of commands) {
        try {
          this.applyOne(admin, c);
        } catch (e) {
          // A connection that fails fails the whole batch: nothing after it is sent.
          if (e instanceof ProbeError) throw e;
          if (!failed) first = e;
          failed = true;
        }
      }
      if (failed) throw first;
    },
  };

  private applyOne(admin: Endpoint, c: ServerCommand): void {
    const at = `${epId(admin)} ${c.backend} ${c.server}`;
    switch (c.op) {
      case "state": {
        const call = `haproxy.setState ${at} ${c.state}`;
        if (this.record(call)) return;
        const row = this.row(admin, c.backend, c.server, call);
        row.inMaint = c.state === "maint";
        row.inDrain = c.state === "drain";
        return;
      }
      case "health": {
        const call = `haproxy.setHealth ${at} ${c.health}`;
        if (this.record(call)) return;
        this.row(admin, c.backend, c.server, call).isUp = c.health === "up";
        return;
      }
      case "shutdown-sessions": {
        const call = `haproxy.shutdownSessions ${at}`;
        if (this.record(call)) return;
        this.row(admin, c.backend, c.server, call);
        return;
      }
      case "addr": {
        const call = `haproxy.setAddr ${at} ${c.address} ${c.port}`;
        if (this.record(call)) return;
        const row = this.row(admin, c.backend, c.server, call);
        row.address = c.address;
        row.port = c.port;
        return;
      }
    }
  }

  async close(): Promise<void> {}

  // ----- internals ----------------------------------------------------------------------------------------------

  private declared(host: string): string {
    const h = this.topology.hosts.get(host);
    if (!h) throw new Error(`unknown host ${host}`);
    return h.address;
  }

  private addMachine(host: string, role: MachineRole, address: string, id: string): FakeMachine {
    const m: FakeMachine = { id, host, role, address, seq: this.seq++, running: true, dead: false };
    this.machines.set(id, m);
    return m;
  }

  private current(host: string): FakeMachine | undefined {
    return [...this.machines.values()].filter((m) => m.host === host && m.running).sort((a, b) => b.seq - a.seq)[0];
  }

  private runningMachine(id: string): FakeMachine {
    const m = this.machines.get(id);
    if (!m?.running) throw new ProviderError(`machine ${id} is not running`, false);
    return m;
  }

  private isAlive(machineId: string): boolean {
    const m = this.machines.get(machineId);
    return m?.running === true && !m.dead;
  }

  private reachableRedis(ep: Endpoint): FakeRedis {
    const s = this.servers.get(epId(ep));
    if (!s || !this.isAlive(s.machineId)) throw refused(epId(ep));
    return s;
  }

  private linkUp(primary: Endpoint): boolean {
    const p = this.servers.get(epId(primary));
    return p !== undefined && this.isAlive(p.machineId);
  }

  private reachableHaproxy(admin: Endpoint): FakeHaproxy {
    const h = this.haproxies.get(epId(admin));
    if (!h || !this.isAlive(h.machineId)) throw refused(epId(admin));
    return h;
  }

  private row(admin: Endpoint, backend: string, server: string, cmd: string): FakeRow {
    const row = this.reachableHaproxy(admin).rows.find((r) => r.backend === backend && r.server === server);
    if (!row) throw new HaproxyCommandError(cmd, "No such server.");
    return row;
  }

  /** (Re)starts HAProxy on a machine from a rendered config: its admin socket and servers come from the text. */
  private start(machineId: string, text: string): void {
    let admin: string | null = null;
    let backend = "";
    const rows: FakeRow[] = [];
    for (const line of text.split("\n")) {
      const sock = /stats socket ipv4@(\S+):(\d+)/.exec(line);
      if (sock) admin = `${sock[1]}:${sock[2]}`;
      const be = /^backend (\S+)/.exec(line);
      if (be) backend = be[1] ?? "";
      const srv = /^\s+server (\S+) (\S+):(\d+)(.*)$/.exec(line);
      if (srv) {
        const [, server = "", address = "", port = "0", flags = ""] = srv;
        const disabled = flags.includes(" disabled");
        rows.push({ backend, server, address, port: Number(port), inMaint: disabled, inDrain: false, isUp: !disabled && this.healthy(backend, address, Number(port)) });
      }
    }
    if (!admin) throw new ProviderError(`the config for ${machineId} has no admin socket`, false);
    for (const [k, h] of this.haproxies) if (h.machineId === machineId) this.haproxies.delete(k);
    this.haproxies.set(admin, { machineId, rows });
  }

  /** HAProxy's health check: a Redis backend wants an alive primary; a relay wants a live machine at the address. */
  private healthy(backend: string, address: string, port: number): boolean {
    if (backend.startsWith("be_redis_")) {
      const s = this.servers.get(epId({ address, port }));
      return s !== undefined && s.role === "primary" && this.isAlive(s.machineId);
    }
    return [...this.machines.values()].some((m) => m.address === address && m.running && !m.dead);
  }
}

function toServerState(r: FakeRow): ServerState {
  return {
    backend: r.backend,
    server: r.server,
    address: r.address,
    port: r.port,
    opState: r.isUp ? 2 : 0,
    adminState: (r.inMaint ? 1 : 0) | (r.inDrain ? 8 : 0),
    inMaint: r.inMaint,
    inDrain: r.inDrain,
    isUp: r.isUp,
  };
}

/** The daemon's monitoring switches: records into the world's calls (fault hooks apply) and tracks who is unmonitored. */
export class RecordingMonitor implements MonitorControl {
  readonly unmonitored = new Set<string>();

  constructor(private readonly world: RecordingProviders) {}

  async unmonitor(host: string): Promise<void> {
    if (this.world.record(`monitor.unmonitor ${host}`)) return;
    this.unmonitored.add(host);
  }

  async monitor(host: string): Promise<void> {
    if (this.world.record(`monitor.monitor ${host}`)) return;
    this.unmonitored.delete(host);
  }

  statusOf(target: string): TargetStatus {
    const host = target.split(":")[0] ?? target;
    return this.world.isDown(host) ? "down" : "up";
  }

  readonly rules: CheckRules = { fall: 3, rise: 2, intervalMs: 20, fastIntervalMs: 5 };
  /** What a re-check of a target finds (set to change it): by default a killed host refuses, any other answers. */
  recheckAnswer: (target: string) => Observation | undefined = () => undefined;
  readonly lastGoods = new Map<string, RedisObservation>();
  readonly noted = new Map<string, "primary" | "replica">();

  async recheck(target: string): Promise<Observation> {
    this.world.record(`monitor.recheck ${target}`);
    const host = target.split(":")[0] ?? target;
    const port = Number(target.split(":")[1] ?? 0);
    const base = { type: "redis" as const, target, host, port, address: "", at: Date.now(), latencyMs: 0 };
    return (
      this.recheckAnswer(target) ??
      (this.world.isDown(host) ? { ...base, ok: false, failure: { kind: "refused", message: "refused" } } : { ...base, ok: true })
    );
  }

  failuresOf(): number {
    return this.rules.fall;
  }

  lastGood(target: string): RedisObservation | undefined {
    return this.lastGoods.get(target);
  }

  firstAbove(): undefined {
    return undefined;
  }

  noteRole(target: string, role: "primary" | "replica"): void {
    this.noted.set(target, role);
  }
}
