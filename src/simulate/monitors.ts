/**
 * `failoverd simulate --monitors N`: N failoverd instances (m1..mN) coordinated through an etcd cluster that
 * simulate starts on the coordination section's loopback endpoints (as `sandbox up --monitors` does), and the
 * monitor faults: the acting instance killed (SIGKILL) or cut off from etcd and the topology. Loaded only with
 * --monitors (single-instance simulate does not load the etcd client).
 *
 * The cut: every instance runs with a group of its own (spawn's `gid`, as root), and an iptables OUTPUT rule
 * `-m owner --gid-owner G -j DROP` drops every packet that one process sends (loopback traffic passes OUTPUT).
 * The machines an instance launches through the local provider run in root's group (FAILOVERD_LOCAL_GID), not in
 * the instance's, so the cut never reaches them. Rules are removed at the heal, at the end, and on SIGINT/SIGTERM.
 */
import { type ChildProcess, execFileSync } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Etcd3 } from "etcd3";
import { FailoverdError } from "../errors.ts";
import type { JournalRecord } from "../recovery/journal.ts";
import type { Topology } from "../topology/topology.ts";
import { startDaemon, stopDaemon, waitForDaemon } from "./daemon-process.ts";
import { EtcdCluster } from "./etcd-cluster.ts";
import { etcdAddresses } from "./scenario.ts";

/** How long an instance is held (FAILOVERD_CHAOS_PAUSE) before the step a monitor fault strikes at. */
export const PAUSE_MS = 60_000;

export interface LeaderChange {
  readonly at: number;
  /** The instance whose election key comes first in etcd; null: none (every candidate's lease gone). */
  readonly leader: string | null;
}

/** What an instance's log says it did: started a recovery, or resumed one (a takeover). */
export interface Act {
  readonly instance: string;
  readonly what: "started" | "resumed";
  readonly at: number;
}

interface Instance {
  readonly name: string;
  readonly log: string;
  readonly gid: number | null;
  child: ChildProcess | null;
}

export interface FleetOptions {
  readonly instances: number;
  /** Each instance in a group of its own (for `cut`); needs root. */
  readonly groups: boolean;
  /** Env of every instance (e.g. FAILOVERD_CHAOS_PAUSE). */
  readonly env?: NodeJS.ProcessEnv;
}

/** The etcd cluster and the instances of one simulation. Every process it starts is stopped by `stop()`, by PID. */
export class Fleet {
  readonly etcd: EtcdCluster;
  readonly instances: Instance[];
  readonly leaders: LeaderChange[] = [];
  private client: Etcd3 | null = null;
  private readonly prefix: string;
  private polling: Promise<void> | null = null;
  private stopping = false;
  private readonly rules: string[][] = [];
  private readonly onSignal = (sig: NodeJS.Signals) => {
    this.healAll();
    process.removeListener("SIGINT", this.onSignal);
    process.removeListener("SIGTERM", this.onSignal);
    process.kill(process.pid, sig);
  };

  constructor(
    private readonly t: Topology,
    private readonly o: FleetOptions,
  ) {
    const c = t.config.coordination!;
    this.prefix = c.prefix ?? `/failoverd/${t.name}`;
    const runDir = t.config.provider.kind === "local" ? t.config.provider.runDir : t.config.stateDir;
    const addresses = etcdAddresses(t);
    this.etcd = EtcdCluster.onAddresses(addresses, join(runDir, "etcd"));
    const net = Number(addresses[0]!.split(".")[1]);
    this.instances = Array.from({ length: o.instances }, (_, i) => ({
      name: `m${i + 1}`,
      log: join(runDir, `daemon-m${i + 1}.log`),
      // One group per instance and per loopback range (127.<net>): concurrent simulations on other ranges never share one.
      gid: o.groups ? 60_000 + net * 10 + i : null,
      child: null,
    }));
  }

  /** Starts etcd (its addresses checked free first). */
  async startEtcd(): Promise<void> {
    await this.etcd.start();
    this.client = new Etcd3({ hosts: this.etcd.endpoints, defaultCallOptions: () => ({ deadline: Date.now() + 2000 }) });
  }

  /** Starts the instances one after the other (each once it has discovered the roles), then waits for a leader. */
  async startInstances(say: (line: string) => void): Promise<void> {
    process.on("SIGINT", this.onSignal);
    process.on("SIGTERM", this.onSignal);
    for (const i of this.instances) {
      rmSync(i.log, { force: true });
      const env = { ...this.o.env, ...(i.gid !== null ? { FAILOVERD_LOCAL_GID: String(process.getgid?.() ?? 0) } : {}) };
      i.child = startDaemon(this.t, i.log, env, ["--instance", i.name], i.gid !== null ? { uid: process.getuid?.() ?? 0, gid: i.gid } : undefined);
      // Three Node processes starting at once on a loaded machine take long: one after the other.
      await waitForDaemon(i.log, i.child, "roles discovered", 120_000);
      say(`instance ${i.name} running (pid ${i.child.pid}${i.gid !== null ? `, group ${i.gid}` : ""}); log ${i.log}`);
    }
    this.polling = this.poll();
    const end = Date.now() + 60_000;
    while (this.leader() === null) {
      if (Date.now() > end) throw new FailoverdError("no instance became the leader within 60 s; see the instances' logs");
      await sleep(100);
    }
    say(`leader: ${this.leader()}`);
  }

  /** The leader as last read from etcd. */
  leader(): string | null {
    return this.leaders.at(-1)?.leader ?? null;
  }

  /** Waits until etcd names a leader other than `not`, within `ms`; returns it (null: none in time). */
  async waitLeaderOtherThan(not: string, ms: number): Promise<string | null> {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      const l = this.leader();
      if (l !== null && l !== not) return l;
      await sleep(100);
    }
    return null;
  }

  /** The recovery journal the instances share in etcd, in creation order. */
  async journal(): Promise<JournalRecord[]> {
    const res = await this.client!.getAll().prefix(`${this.prefix}/journal/`).sort("Create", "Ascend").exec();
    return res.kvs.map((kv) => JSON.parse(kv.value.toString()) as JournalRecord);
  }

  /** Bytes of each instance's log so far: `linesSince` reads what came after. */
  marks(): Map<string, number> {
    return new Map(this.instances.map((i) => [i.name, this.logText(i).length]));
  }

  /** The log lines (parsed JSON) an instance wrote after `mark`. */
  linesSince(name: string, mark = 0): { time: number; msg: string }[] {
    const i = this.instance(name);
    return this.logText(i)
      .slice(mark)
      .split("\n")
      .flatMap((l) => {
        try {
          const j = JSON.parse(l) as { time?: string; msg?: string };
          return typeof j.msg === "string" ? [{ time: j.time ? Date.parse(j.time) : 0, msg: j.msg }] : [];
        } catch {
          return [];
        }
      });
  }

  /** The live instance that logged holding before `step` after `marks`, if any. */
  pausedBefore(step: string, marks: Map<string, number>): string | null {
    const marker = `chaos: pausing ${PAUSE_MS} ms before ${step}`;
    for (const i of this.instances) {
      if (!this.alive(i.name)) continue;
      if (this.logText(i).slice(marks.get(i.name) ?? 0).includes(marker)) return i.name;
    }
    return null;
  }

  /** Recoveries started or resumed, by whom and when, from the instances' logs after `marks`. */
  acts(marks: Map<string, number>): Act[] {
    return this.instances
      .flatMap((i) =>
        this.linesSince(i.name, marks.get(i.name) ?? 0).flatMap((l): Act[] =>
          l.msg.startsWith("recovery started:") ? [{ instance: i.name, what: "started", at: l.time }] : l.msg.startsWith("resuming the unfinished recovery") ? [{ instance: i.name, what: "resumed", at: l.time }] : [],
        ),
      )
      .sort((a, b) => a.at - b.at);
  }

  /** What an instance logged doing to the topology after `mark` and before `until`: a recovery started or resumed, a step begun. */
  actionsSince(name: string, mark: number, until = Number.POSITIVE_INFINITY): string[] {
    return this.linesSince(name, mark)
      .filter((l) => l.time < until)
      .map((l) => l.msg)
      .filter((m) => m.startsWith("recovery started:") || m.startsWith("resuming the unfinished recovery") || /^step [a-z-]+: /.test(m));
  }

  alive(name: string): boolean {
    const c = this.instance(name).child;
    return c !== null && c.exitCode === null && c.signalCode === null;
  }

  pidOf(name: string): number | undefined {
    return this.instance(name).child?.pid;
  }

  /** SIGKILL of one instance; resolves once it has exited. */
  async kill(name: string): Promise<void> {
    const c = this.instance(name).child;
    if (!c || !this.alive(name)) return;
    const exited = new Promise<void>((resolve) => c.once("exit", () => resolve()));
    c.kill("SIGKILL");
    await exited;
  }

  /** Cuts one instance off from everything (etcd, the topology): every packet its process sends is dropped. */
  cut(name: string): void {
    const gid = this.instance(name).gid;
    if (gid === null) throw new FailoverdError(`instance ${name} runs in no group of its own: it cannot be cut off`);
    const rule = ["OUTPUT", "-m", "owner", "--gid-owner", String(gid), "-j", "DROP"];
    execFileSync("iptables", ["-I", ...rule]);
    this.rules.push(rule);
  }

  /** Removes every rule `cut` added. */
  healAll(): void {
    while (this.rules.length > 0) {
      const rule = this.rules.pop()!;
      try {
        execFileSync("iptables", ["-D", ...rule], { stdio: "ignore" });
      } catch {
        // already gone
      }
    }
  }

  get cutOff(): boolean {
    return this.rules.length > 0;
  }

  /** Heals any cut, stops every instance (SIGTERM, then SIGKILL), the leader poll and etcd. */
  async stop(): Promise<void> {
    this.healAll();
    this.stopping = true;
    for (const i of this.instances) if (i.child) await stopDaemon(i.child);
    await this.polling;
    this.client?.close();
    await this.etcd.stop();
    process.removeListener("SIGINT", this.onSignal);
    process.removeListener("SIGTERM", this.onSignal);
  }

  /** Reads the leader from etcd every 100 ms (the first election key by create revision), recording each change. */
  private async poll(): Promise<void> {
    while (!this.stopping) {
      try {
        const res = await this.client!.getAll().prefix(`${this.prefix}/election/`).sort("Create", "Ascend").exec();
        const leader = res.kvs[0]?.value.toString() ?? null;
        if (this.leaders.length === 0 || this.leader() !== leader) this.leaders.push({ at: Date.now(), leader });
      } catch {
        // etcd busy or down: the last known leader stands until it answers again.
      }
      await sleep(100);
    }
  }

  private instance(name: string): Instance {
    const i = this.instances.find((x) => x.name === name);
    if (!i) throw new FailoverdError(`no instance ${name}`);
    return i;
  }

  private logText(i: Instance): string {
    return existsSync(i.log) ? readFileSync(i.log, "utf8") : "";
  }
}
