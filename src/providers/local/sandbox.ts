/**
 * The local sandbox: a "machine" is a set of real processes bound to its own loopback address. A Redis machine runs
 * one redis-server per port; an HAProxy or app machine runs haproxy (master-worker, reloaded with SIGUSR2). All run
 * state (configs, logs, the machine table) lives under one run directory; processes are stopped only by PID.
 */
import { execFile } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { ProviderError } from "../../errors.ts";
import { writeFileAtomic } from "../../topology/inventory.ts";
import type { LocalProviderConfig } from "../../topology/schema.ts";
import type { KeepMode, Machine, MachineRole, SpareState } from "../types.ts";
import { chaosPoint } from "./chaos.ts";
import { isRunning, processesIn, type StartedProcess, startDetached, stop, waitForPort } from "./processes.ts";

const execFileP = promisify(execFile);

/**
 * The HAProxy config a sandbox machine's image ships, as /etc/haproxy/haproxy.cfg on a real host: the host's own
 * settings. failoverd's file (failoverd.cfg) is loaded after it, as on a real host (haproxy -f haproxy.cfg -f
 * failoverd.cfg), and never replaces it.
 */
export const SANDBOX_HOST_CONFIG = `# The machine's own HAProxy config (what its image ships). failoverd never writes it: its own file,
# failoverd.cfg, is loaded after this one (haproxy -f haproxy.cfg -f failoverd.cfg).
global
    maxconn 4000
    stats timeout 2m
`;

export interface ProcessRecord extends StartedProcess {
  readonly kind: "redis" | "haproxy";
  readonly port?: number;
}

export interface MachineRecord extends Machine {
  readonly topology: string;
  /** The host it serves; a warm spare's is SPARE_HOST until it is claimed. */
  host: string;
  readonly dir: string;
  readonly processes: ProcessRecord[];
  /** stopped: its processes are gone, its directory (data, configs, logs) is kept. */
  status: "running" | "stopped" | "terminated";
  readonly launchedAt: string;
  /** A warm spare in the pool, and the state it is kept in. */
  spare?: { readonly state: SpareState } | undefined;
  /** The host a spare was claimed for (kept after the claim: an interrupted claim is resumed). */
  claimedFor?: string | undefined;
  /** Kept for the post-mortem by a recovery: never started again by failoverd. */
  kept?: { readonly mode: KeepMode; readonly recoveryId: string; readonly at: number } | undefined;
}

/** The host of a warm spare in the sandbox's machine table: no declared host has this name. */
export const SPARE_HOST = "(spare)";

export interface SandboxState {
  topology: string;
  machines: MachineRecord[];
  /** The sandbox's DNS: record name -> address. */
  dns: Record<string, string>;
  launches: number;
}

export interface RedisStartOptions {
  readonly replicaOf?: { address: string; port: number };
  readonly password?: string | undefined;
  /** An ACL user (with `password`) that failoverd and replication use. */
  readonly username?: string | undefined;
}

export class Sandbox {
  readonly runDir: string;
  private readonly stateFile: string;

  constructor(
    readonly topologyName: string,
    readonly config: LocalProviderConfig,
  ) {
    this.runDir = resolve(config.runDir);
    this.stateFile = join(this.runDir, "sandbox.json");
  }

  read(): SandboxState {
    try {
      const s = JSON.parse(readFileSync(this.stateFile, "utf8")) as SandboxState;
      if (s.topology !== this.topologyName) {
        throw new ProviderError(
          `${this.runDir} holds a sandbox of topology '${s.topology}', not '${this.topologyName}'; stop it first (failoverd sandbox down with its config)`,
          false,
        );
      }
      return s;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") {
        return { topology: this.topologyName, machines: [], dns: {}, launches: 0 };
      }
      if (e instanceof ProviderError) throw e;
      throw new ProviderError(`cannot read ${this.stateFile}: ${(e as Error).message}`, false);
    }
  }

  /** Read-modify-write of the machine table under a lock file (the daemon and `simulate` share it). */
  async update<T>(fn: (s: SandboxState) => T): Promise<T> {
    mkdirSync(this.runDir, { recursive: true });
    const lock = join(this.runDir, "sandbox.lock");
    const start = Date.now();
    for (;;) {
      try {
        closeSync(openSync(lock, "wx"));
        break;
      } catch {
        // A lock older than 10 s belongs to a process that died holding it.
        try {
          if (Date.now() - statSync(lock).mtimeMs > 10_000) rmSync(lock, { force: true });
        } catch {}
        if (Date.now() - start > 15_000) throw new ProviderError(`cannot lock ${lock}`, true);
        await sleep(5);
      }
    }
    try {
      const s = this.read();
      const out = fn(s);
      writeFileAtomic(this.stateFile, `${JSON.stringify(s, null, 2)}\n`);
      return out;
    } finally {
      rmSync(lock, { force: true });
    }
  }

  running(): MachineRecord[] {
    return this.read().machines.filter((m) => m.status === "running");
  }

  machineOf(host: string): MachineRecord | undefined {
    return this.running().find((m) => m.host === host);
  }

  /** Registers a new machine directory at `address`; processes are added by the start* methods. */
  async createMachine(host: string, role: MachineRole, address: string, spare?: { state: SpareState }): Promise<MachineRecord> {
    return this.update((s) => {
      s.launches += 1;
      const id = `${this.topologyName}-${spare ? `spare-${role}` : host}-${s.launches}`;
      const dir = join(this.runDir, "machines", id);
      mkdirSync(dir, { recursive: true });
      const m: MachineRecord = {
        id,
        host,
        role,
        address,
        topology: this.topologyName,
        dir,
        processes: [],
        status: "running",
        launchedAt: new Date().toISOString(),
        ...(spare ? { spare } : {}),
      };
      s.machines.push(m);
      return m;
    });
  }

  async startRedis(m: MachineRecord, port: number, opts: RedisStartOptions = {}): Promise<ProcessRecord> {
    const logFile = join(m.dir, `redis-${port}.log`);
    const marker = `${m.address}:${port}`;
    // A server of this machine and port that a killed launch started but never recorded: adopted, never doubled
    // (a second one could not bind, and the first would be an orphan nobody stops).
    const orphan = unrecorded(m).find((p) => p.cmdline.includes(marker) || p.cmdline.includes(` --port ${port} `));
    if (orphan) {
      try {
        await waitForPort(m.address, port, 10_000);
        const adopted: ProcessRecord = { pid: orphan.pid, marker, kind: "redis", port };
        await this.addProcess(m, adopted);
        return adopted;
      } catch {
        await stop({ pid: orphan.pid, marker: m.dir }, "SIGKILL").catch(() => {});
      }
    }
    // Credentials go in a file only the owner reads, never on the command line (where `ps` shows them).
    const secretConf = join(m.dir, `redis-${port}.conf`);
    const secretLines = opts.password
      ? [
          `requirepass ${quoteRedis(opts.password)}`,
          `masterauth ${quoteRedis(opts.password)}`,
          ...(opts.username
            ? [`user ${opts.username} on ${quoteRedis(`>${opts.password}`)} ~* &* +@all`, `masteruser ${quoteRedis(opts.username)}`]
            : []),
        ]
      : [];
    writeFileSync(secretConf, `${secretLines.join("\n")}\n`, { mode: 0o600 });
    const args = [
      secretConf,
      "--bind", m.address,
      "--port", String(port),
      "--bind-source-addr", m.address,
      "--protected-mode", "no",
      "--daemonize", "no",
      "--dir", m.dir,
      "--dbfilename", `dump-${port}.rdb`,
      "--logfile", logFile,
      "--save", "",
      "--appendonly", "no",
      "--repl-diskless-sync", "yes",
      "--repl-diskless-sync-delay", "0",
      "--repl-timeout", "10",
      ...(opts.replicaOf ? ["--replicaof", opts.replicaOf.address, String(opts.replicaOf.port)] : []),
    ];
    const pid = startDetached(this.config.redisServer, args, logFile, m.dir);
    await chaosPoint("spawned", `redis-server ${marker}, pid ${pid}`);
    const rec: ProcessRecord = { pid, marker, kind: "redis", port };
    await this.addProcess(m, rec);
    await chaosPoint("started", `redis-server ${marker}, pid ${pid}`);
    await waitForPort(m.address, port, 10_000).catch((e: unknown) => {
      throw new ProviderError(`redis-server on ${m.address}:${port} did not start: ${tail(logFile)} (${(e as Error).message})`, true);
    });
    // Redis listens a moment before it sets its process title (which holds the marker): until then the process
    // would not be recognised as ours, and a stop right after the start would leave it running.
    for (const start = Date.now(); !isRunning(rec) && Date.now() - start < 5000; ) await sleep(5);
    return rec;
  }

  /**
   * Validates failoverd's file `cfg` beside the machine's own config (`haproxy -c -f haproxy.cfg -f <candidate>`),
   * then starts HAProxy on both files or reloads the running one. The machine's haproxy.cfg is what its image ships
   * (SANDBOX_HOST_CONFIG, written once at launch) and is never written again, as on a real host.
   */
  async applyHaproxy(m: MachineRecord, cfg: string, reload = true): Promise<void> {
    const hostFile = join(m.dir, "haproxy.cfg");
    if (!existsSync(hostFile)) writeFileSync(hostFile, SANDBOX_HOST_CONFIG, { mode: 0o644, flag: "wx" });
    const cfgFile = join(m.dir, "failoverd.cfg");
    const candidate = join(m.dir, "failoverd.cfg.new");
    writeFileSync(candidate, cfg, { mode: 0o600 });
    try {
      await execFileP(this.config.haproxy, ["-c", "-f", hostFile, "-f", candidate], { timeout: 10_000 });
    } catch (e) {
      const out = `${(e as { stderr?: string }).stderr ?? ""}`.trim().split("\n").filter((l) => l.includes("ALERT"))[0];
      throw new ProviderError(`haproxy -c rejects the config for ${m.host}: ${out ?? (e as Error).message}`, false);
    }
    writeFileAtomic(cfgFile, cfg);
    const current = this.read().machines.find((x) => x.id === m.id)?.processes.find((p) => p.kind === "haproxy");
    if (current && isRunning(current)) {
      if (reload) process.kill(current.pid, "SIGUSR2");
      return;
    }
    // The master of an HAProxy that a killed launch started but never recorded (its workers are its children):
    // adopted and reloaded, so it serves the file just written.
    const orphans = unrecorded(m).filter((p) => p.cmdline.includes(cfgFile));
    const master = orphans.find((p) => !orphans.some((o) => o.pid !== p.pid && isParentOf(o.pid, p.pid)));
    if (master) {
      await this.addProcess(m, { pid: master.pid, marker: cfgFile, kind: "haproxy" });
      process.kill(master.pid, "SIGUSR2");
      return;
    }
    const pid = startDetached(this.config.haproxy, ["-W", "-db", "-f", hostFile, "-f", cfgFile], join(m.dir, "haproxy.log"), m.dir);
    await chaosPoint("spawned", `haproxy ${m.address}, pid ${pid}`);
    await this.addProcess(m, { pid, marker: cfgFile, kind: "haproxy" });
  }

  /** Stops every process of a machine (SIGKILL: a machine that is terminated does not shut down cleanly). */
  async terminate(id: string, sig: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const m = this.read().machines.find((x) => x.id === id);
    if (!m) throw new ProviderError(`machine ${id} is not one of this sandbox's; refusing to terminate it`, false);
    await Promise.all([...m.processes, ...strays(m)].map((p) => stop(p, sig)));
    await this.update((s) => {
      const rec = s.machines.find((x) => x.id === id);
      if (rec) rec.status = "terminated";
    });
  }

  /**
   * Stops a machine and keeps its directory: its processes are killed (SIGKILL, like a machine that loses power:
   * a kept failed machine must never take another write) and it is marked stopped; `change` says why (a kept machine,
   * a stopped spare).
   */
  async stopMachine(id: string, change: (m: MachineRecord) => void): Promise<void> {
    const m = this.read().machines.find((x) => x.id === id);
    if (!m) throw new ProviderError(`machine ${id} is not one of this sandbox's; refusing to stop it`, false);
    await Promise.all(m.processes.map((p) => stop(p, "SIGKILL")));
    await this.update((s) => {
      const rec = s.machines.find((x) => x.id === id);
      if (rec && rec.status !== "terminated") {
        rec.status = "stopped";
        change(rec);
      }
    });
  }

  /**
   * Stops every process this sandbox started, recorded or not (a launch killed between starting a server and
   * recording it), and marks every machine terminated.
   */
  async down(): Promise<number> {
    const s = this.read();
    const procs = s.machines.flatMap((m) => [...m.processes.filter(isRunning), ...strays(m)]);
    await Promise.all(procs.map((p) => stop(p, "SIGTERM", 3000)));
    await this.update((st) => {
      for (const m of st.machines) m.status = "terminated";
    });
    return procs.length;
  }

  /** The next free address of the role's pool: never one a machine of this sandbox ever had. */
  async allocateAddress(role: "redis" | "haproxy"): Promise<string> {
    const pool = this.config.addressPool?.[role];
    if (!pool) throw new ProviderError(`provider.addressPool.${role} is not set: the sandbox has no address for a replacement`, false);
    const used = new Set(this.read().machines.map((m) => m.address));
    const free = pool.find((a) => !used.has(a));
    if (!free) throw new ProviderError(`provider.addressPool.${role} is exhausted (${pool.length} addresses used); run failoverd sandbox down and up`, false);
    return free;
  }

  async setDns(name: string, address: string): Promise<void> {
    await this.update((s) => {
      s.dns[name] = address;
    });
  }

  private async addProcess(m: MachineRecord, rec: ProcessRecord): Promise<void> {
    await this.update((s) => {
      const target = s.machines.find((x) => x.id === m.id);
      if (!target) throw new ProviderError(`machine ${m.id} vanished from the sandbox table`, false);
      const i = target.processes.findIndex((p) => p.kind === rec.kind && p.port === rec.port);
      if (i >= 0) target.processes.splice(i, 1);
      target.processes.push(rec);
    });
    m.processes.push(rec);
  }
}

/**
 * Processes running in the machine's directory that belong to it (a Redis server names the machine's address in its
 * title, or its config file in its arguments; HAProxy its config files) and that its record does not list.
 */
function unrecorded(m: MachineRecord): { pid: number; cmdline: string }[] {
  const recorded = new Set(m.processes.filter(isRunning).map((p) => p.pid));
  return processesIn(m.dir).filter((p) => !recorded.has(p.pid) && (p.cmdline.includes(`${m.address}:`) || p.cmdline.includes(`${m.dir}/`)));
}

/** The machine's unrecorded processes as something `stop` takes (the marker: what their command line shows). */
function strays(m: MachineRecord): StartedProcess[] {
  return unrecorded(m).map((p) => ({ pid: p.pid, marker: p.cmdline.includes(`${m.dir}/`) ? `${m.dir}/` : `${m.address}:` }));
}

function isParentOf(parent: number, child: number): boolean {
  try {
    const stat = readFileSync(`/proc/${child}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === parent;
  } catch {
    return false;
  }
}

/** A redis.conf argument in double quotes (Redis' own escaping). */
function quoteRedis(v: string): string {
  return `"${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

function tail(file: string): string {
  try {
    return readFileSync(file, "utf8").trim().split("\n").slice(-1)[0] ?? "";
  } catch {
    return "no log";
  }
}
