/**
 * A local etcd cluster on loopback (Debian's `etcd-server`): the store several failoverd instances coordinate
 * through, for tests, `sandbox up --monitors` and `simulate --monitors`. Member i listens on 127.<net>.9.<i+1>,
 * clients on 2379 and peers on 2380. Processes are stopped by PID only.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Etcd3 } from "etcd3";
import { FailoverdError } from "../errors.ts";
import { isGone, isRunning, type StartedProcess, stop as stopProcess, whyNotFree } from "../providers/local/processes.ts";

export interface EtcdMember {
  readonly name: string;
  readonly address: string;
  readonly clientUrl: string;
  pid: number | null;
}

export class EtcdCluster {
  readonly members: EtcdMember[];

  constructor(
    readonly net: number,
    readonly dir: string,
    size = 3,
    /** The third octet of the members' addresses. */
    readonly octet = 9,
    /** Data in /dev/shm (tests); false: under `dir` (the sandbox: it outlives this process). */
    inMemory = true,
  ) {
    this.dataRoot = inMemory && existsSync("/dev/shm") ? mkdtempSync("/dev/shm/failoverd-etcd-") : dir;
    this.members = Array.from({ length: size }, (_, i) => {
      const address = `127.${net}.${octet}.${i + 1}`;
      return { name: `e${i + 1}`, address, clientUrl: `http://${address}:2379`, pid: null };
    });
  }

  /** A cluster whose members listen on these addresses (client port 2379, peer port 2380). */
  static onAddresses(addresses: readonly string[], dir: string, inMemory = true): EtcdCluster {
    const c = new EtcdCluster(0, dir, 0, 9, inMemory);
    c.members.push(...addresses.map((address, i) => ({ name: `e${i + 1}`, address, clientUrl: `http://${address}:2379`, pid: null })));
    return c;
  }

  /** Writes the members' PIDs (with what identifies them) so that another process can stop them (`sandbox down`). */
  save(file: string): void {
    writeFileSync(file, `${JSON.stringify(this.members.filter((m) => m.pid !== null).map((m) => ({ pid: m.pid, marker: `--data-dir ${join(this.dataRoot, m.name)}` })))}\n`);
  }

  /** Stops the members `save` recorded (by PID, each checked to still be that etcd); returns how many. */
  static async stopSaved(file: string): Promise<number> {
    if (!existsSync(file)) return 0;
    const saved = JSON.parse(readFileSync(file, "utf8")) as StartedProcess[];
    let n = 0;
    for (const p of saved) {
      if (!isRunning(p)) continue;
      await stopProcess(p, "SIGTERM", 5000);
      n++;
    }
    rmSync(file, { force: true });
    return n;
  }

  /** Where the members keep their data: /dev/shm when it exists (removed by `stop`), else under `dir`. */
  private readonly dataRoot: string;

  get endpoints(): string[] {
    return this.members.map((m) => m.clientUrl);
  }

  /** Starts every member (checking their addresses are free first) and waits until the cluster answers. */
  async start(): Promise<void> {
    const busy = (await Promise.all(this.members.flatMap((m) => [whyNotFree(m.address, 2379), whyNotFree(m.address, 2380)]))).filter(Boolean);
    if (busy.length > 0) throw new FailoverdError(`etcd addresses are busy: ${busy.join("; ")}`);
    for (const m of this.members) this.startMember(m.name);
    await this.waitHealthy();
  }

  startMember(name: string): void {
    const m = this.member(name);
    if (m.pid !== null) return;
    // Data in memory when possible (tmpfs): on a loaded test machine fsync latency alone expires leases.
    const data = join(this.dataRoot, m.name);
    mkdirSync(data, { recursive: true });
    mkdirSync(this.dir, { recursive: true });
    const log = openSync(join(this.dir, `${m.name}.log`), "a");
    const cluster = this.members.map((x) => `${x.name}=http://${x.address}:2380`).join(",");
    const child = spawn(
      "etcd",
      [
        "--name", m.name,
        "--data-dir", data,
        "--logger=zap",
        "--listen-client-urls", m.clientUrl,
        "--advertise-client-urls", m.clientUrl,
        "--listen-peer-urls", `http://${m.address}:2380`,
        "--initial-advertise-peer-urls", `http://${m.address}:2380`,
        "--initial-cluster", cluster,
        "--initial-cluster-token", `failoverd-${this.net}`,
        "--initial-cluster-state", "new",
        // Tolerant of a loaded machine (etcd's own leader elections are not what is under test), yet short enough
        // that etcd grants a 3 s lease as asked: its shortest TTL is 1.5 x the election timeout, rounded up to whole
        // seconds (2.5 s granted a 3 s lease 4 s, so a dead leader's lease outlived its TTL by a second).
        "--heartbeat-interval", "200",
        "--election-timeout", "2000",
      ],
      { stdio: ["ignore", log, log], detached: true },
    );
    child.on("error", () => {});
    child.unref();
    if (child.pid === undefined) throw new FailoverdError("cannot start etcd (is etcd-server installed? scripts/setup installs it)");
    m.pid = child.pid;
  }

  /** Stops one member (SIGKILL: a crash) and waits until it is gone. */
  async killMember(name: string): Promise<void> {
    const m = this.member(name);
    if (m.pid === null) return;
    try {
      process.kill(m.pid, "SIGKILL");
    } catch {
      // Already gone.
    }
    for (let i = 0; i < 100 && !isGone(m.pid); i++) await sleep(50);
    m.pid = null;
  }

  /** Stops every member (SIGKILL) and keeps their data: `startAgain` brings the same cluster back. */
  async stopAll(): Promise<void> {
    for (const m of this.members) await this.killMember(m.name);
  }

  /** Starts every stopped member again on its data (the cluster it was) and waits until it answers. */
  async startAgain(timeoutMs = 60_000): Promise<void> {
    for (const m of this.members) this.startMember(m.name);
    await this.waitHealthy(timeoutMs);
  }

  async stop(): Promise<void> {
    await this.stopAll();
    if (this.dataRoot !== this.dir) rmSync(this.dataRoot, { recursive: true, force: true });
  }

  /** Waits until a write through the cluster succeeds (a quorum is up), within `timeoutMs`. */
  async waitHealthy(timeoutMs = 30_000): Promise<void> {
    const client = new Etcd3({ hosts: this.endpoints, defaultCallOptions: () => ({ deadline: Date.now() + 1000 }) });
    const start = Date.now();
    let last = "";
    try {
      while (Date.now() - start < timeoutMs) {
        try {
          await client.put("/failoverd-health").value("ok");
          return;
        } catch (e) {
          last = (e as Error).message;
          await sleep(200);
        }
      }
    } finally {
      client.close();
    }
    throw new FailoverdError(`the etcd cluster did not answer within ${timeoutMs} ms (${last}); logs in ${this.dir}`);
  }

  private member(name: string): EtcdMember {
    const m = this.members.find((x) => x.name === name);
    if (!m) throw new FailoverdError(`no etcd member ${name}`);
    return m;
  }
}
