/**
 * The narrow interfaces through which failoverd touches the world. Every implementation (local sandbox, AWS,
 * dry-run) passes the same contract suite (test/contract/). Each method takes an AbortSignal: nothing waits forever.
 */
import type { Endpoint, RoleReply } from "../admin/redis.ts";
import type { ServerCommand, ServerState } from "../admin/haproxy.ts";

export type MachineRole = "redis" | "haproxy" | "app";

/** One machine: a cloud instance, or in the sandbox a set of processes bound to one loopback address. */
export interface Machine {
  readonly id: string;
  readonly host: string;
  readonly role: MachineRole;
  readonly address: string;
}

export interface LaunchRequest {
  readonly host: string;
  readonly role: MachineRole;
  /** Redis ports the machine must serve (redis role). */
  readonly ports?: readonly number[];
}

/** What becomes of a failed machine that is kept for the post-mortem (recovery.failedMachine). */
export type KeepMode = "stop" | "quarantine";

/** A failed machine kept (stopped, or quarantined) by a recovery; released by `failoverd cleanup`. */
export interface KeptMachine extends Machine {
  readonly mode: KeepMode;
  readonly recoveryId: string;
  /** When it was kept (ms since the epoch). */
  readonly keptAt: number;
}

/** The state a warm spare is kept in. */
export type SpareState = "stopped" | "running";

/** A warm spare: a machine of `role` launched from the image and prepared, serving no host yet. */
export interface Spare {
  readonly id: string;
  readonly role: MachineRole;
  readonly address: string;
  /** Where it is now: `pending` covers a spare being launched, started or stopped. */
  readonly state: SpareState | "pending";
}

export interface ComputeProvider {
  readonly kind: string;
  /**
   * Starts a replacement machine for `host` from the image and resolves once it runs and its role's ports accept
   * connections: a Redis machine serves empty Redis servers; an HAProxy machine is reachable but unconfigured.
   * Not idempotent by itself: the runner journals the returned machine so a resumed recovery never launches twice.
   * Interrupted (the step's deadline, a crash), it may leave a machine behind that `find` returns: `ready` finishes it.
   * Throws ProviderError (retryable or not).
   */
  launch(req: LaunchRequest, signal: AbortSignal): Promise<Machine>;
  /**
   * Brings a machine launched for `req` by an interrupted earlier attempt to what `launch` promises: running, its
   * address attached, a Redis machine prepared and serving. Idempotent: what is done already is not done again.
   * Resolves with the machine (its address may only be known now).
   */
  ready(machine: Machine, req: LaunchRequest, signal: AbortSignal): Promise<Machine>;
  /**
   * Stops a machine for good. Idempotent: a machine already gone resolves. Refuses (ProviderError, not retryable)
   * a machine that is not managed by this topology: a config typo must never terminate a stranger's machine.
   */
  terminate(machine: Machine, signal: AbortSignal): Promise<void>;
  /** The machine currently serving `host`, if the provider knows one. */
  find(host: string, signal: AbortSignal): Promise<Machine | null>;
  /**
   * Keeps a failed machine for the post-mortem instead of terminating it: `stop` stops it (its volumes stay);
   * `quarantine` also cuts it off (no ingress) and tags it with `recoveryId`. Either way it no longer holds the
   * host's address (an Elastic IP moves to the replacement), `find` no longer returns it, and failoverd never starts
   * it again. Guarded like `terminate` (refuses a machine that is not this topology's host). Idempotent.
   */
  keep(machine: Machine, how: { readonly mode: KeepMode; readonly recoveryId: string }, signal: AbortSignal): Promise<void>;
  /** The machines kept by recoveries and not released yet, oldest first. */
  kept(signal: AbortSignal): Promise<KeptMachine[]>;
  /** The warm spares of `role` (not claimed by a host). */
  spares(role: MachineRole, signal: AbortSignal): Promise<Spare[]>;
  /**
   * Launches one warm spare of `role` from the image, prepares it like `launch` does (a Redis spare serves `ports`),
   * and leaves it in `state`. It belongs to the pool from its first moment: an interrupted call leaves a spare that
   * `claim` finishes. Throws ProviderError.
   */
  addSpare(role: MachineRole, state: SpareState, ports: readonly number[], signal: AbortSignal): Promise<Spare>;
  /**
   * Takes a warm spare for `req.host`: the spare becomes the host's machine (tagged for it), started when stopped,
   * with the host's Elastic IP, prepared and serving like `launch` promises. A spare claimed for this host by an
   * interrupted earlier attempt is taken first. Null when the pool is empty (the caller launches from the image).
   * Throws ProviderError (a spare that cannot be started is left claimed, stopped, and kept out of the pool).
   */
  claim(req: LaunchRequest, signal: AbortSignal): Promise<Machine | null>;
  /** For dry-run: every request `launch` would make, with its parameters. Pure (no I/O). */
  describeLaunch?(req: LaunchRequest): readonly string[];
  /** For dry-run: every request `terminate` would make. Pure. */
  describeTerminate?(machine: Machine): readonly string[];
  /** For dry-run: every request `keep` would make. Pure. */
  describeKeep?(machine: Machine, how: { readonly mode: KeepMode; readonly recoveryId: string }): readonly string[];
  /** For dry-run: every request `claim` of `spare` would make. Pure. */
  describeClaim?(spare: Spare, req: LaunchRequest): readonly string[];
}

export interface DnsProvider {
  /** Creates or replaces the A record `name` -> `address` and resolves once the change is in sync. Idempotent. */
  upsert(name: string, address: string, signal: AbortSignal): Promise<void>;
  /** The address the record points at now, or null. */
  resolve(name: string, signal: AbortSignal): Promise<string | null>;
  /** For dry-run: every request `upsert` would make, with its parameters. Pure. */
  describeUpsert?(name: string, address: string): readonly string[];
}

/**
 * Configures HAProxy machines (HAProxy and app hosts): failoverd's own file, loaded after the host's main config, and
 * the reload (locally, or over SSH). Nothing else of the host's configuration is ever written.
 */
export interface ProxyConfigurator {
  /**
   * Writes failoverd's file after validating it beside the host's main config (`haproxy -c -f <main> -f <new>`),
   * then starts HAProxy or reloads it. With `reload: false`
   * the file is only written (a runtime change was already made; the file keeps it across a later reload), unless
   * HAProxy is not running, in which case it is started. Idempotent.
   */
  applyConfig(machine: Machine, text: string, signal: AbortSignal, options?: { reload?: boolean }): Promise<void>;
  /** For dry-run: what `applyConfig` would do, command by command. Pure. */
  describeApply?(machine: Machine, text: string, options?: { reload?: boolean }): readonly string[];
}

export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs commands on a machine (over SSH). Every call has a deadline (the signal and the shell's own timeout). */
export interface RemoteShell {
  /**
   * Runs `command` (a shell command line) and resolves with its exit status, whatever it is. Throws ProviderError
   * when the machine cannot be reached, its host key is not trusted, or the deadline passes.
   */
  run(machine: Machine, command: string, signal: AbortSignal, options?: { stdin?: string }): Promise<CommandResult>;
}

/** Redis administration. Reads are probes; writes change replication. Every call has a deadline. */
export interface RedisAdmin {
  role(ep: Endpoint): Promise<RoleReply>;
  info(ep: Endpoint, section: string): Promise<Record<string, string>>;
  /** `REPLICAOF NO ONE`. Resolves when Redis accepted it; the caller confirms with `role()`. */
  promote(ep: Endpoint): Promise<void>;
  /** `REPLICAOF host port`. Resolves when accepted; sync happens in the background. */
  replicate(ep: Endpoint, primary: Endpoint): Promise<void>;
  /**
   * `FAILOVER TO host port TIMEOUT ms` on a primary: a planned switchover to its replica `to`, without losing an
   * acknowledged write (the primary pauses writes until `to` has caught up). Resolves when Redis accepted it; the
   * switch happens in the background: the caller watches ROLE of both and aborts when it does not complete.
   */
  failover(ep: Endpoint, to: Endpoint, timeoutMs: number): Promise<void>;
  /** `FAILOVER ABORT`: the primary returns to normal. Idempotent: with no failover in progress it resolves. */
  abortFailover(ep: Endpoint): Promise<void>;
  /**
   * Holds a replica's resync: `CONFIG SET masterauth` to a random value, so it cannot complete a handshake with its
   * primary. A primary that restarts empty would otherwise be fully resynced from within a second, and the replica
   * would wipe its own copy. The data and the replica's offset are kept. Idempotent.
   */
  holdSync(ep: Endpoint): Promise<void>;
  /** Releases a hold: masterauth back to the topology's password (or none). Idempotent. */
  releaseSync(ep: Endpoint): Promise<void>;
  /** True while a hold is in place (a read: the value itself is never returned or logged). */
  syncHeld(ep: Endpoint): Promise<boolean>;
  close(): void;
}

/** HAProxy Runtime API administration, addressed by the HAProxy's admin endpoint. */
export interface HaproxyAdmin {
  serversState(haproxy: Endpoint, backend?: string): Promise<ServerState[]>;
  /**
   * Applies the changes in order, on one connection where they fit, and checks every reply: the first change HAProxy
   * refused is thrown (after it has run all of them). Each change is idempotent, so a retry is safe.
   */
  apply(haproxy: Endpoint, commands: readonly ServerCommand[]): Promise<void>;
}

/** Everything a playbook may touch. */
export interface Providers {
  readonly compute: ComputeProvider;
  readonly dns: DnsProvider;
  readonly proxies: ProxyConfigurator;
  readonly redis: RedisAdmin;
  readonly haproxy: HaproxyAdmin;
  /** Stops background resources (connections). */
  close(): Promise<void>;
}
