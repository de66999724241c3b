/**
 * Several failoverd instances on one real sandbox and a real 3-member etcd: start them by name, read the journal
 * they share in etcd, wait for what their logs say. Every process started here is stopped by `stop()`, by PID.
 */
import type { ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Etcd3 } from "etcd3";
import { whyNotConverged } from "../../src/checks/converged.ts";
import type { Sandbox } from "../../src/providers/local/sandbox.ts";
import { signal } from "../../src/providers/local/processes.ts";
import { sandboxDown, sandboxUp } from "../../src/providers/local/up.ts";
import { type JournalRecord, type RecoverySummary, summarize } from "../../src/recovery/journal.ts";
import { startDaemon, stopDaemon } from "../../src/simulate/daemon-process.ts";
import { EtcdCluster } from "../../src/simulate/etcd-cluster.ts";
import { Inventory } from "../../src/topology/inventory.ts";
import { assertAddressesFree, type TestTopology, testTopology } from "./sandbox.ts";
import { waitUntil } from "./wait.ts";

export interface Monitors {
  readonly tt: TestTopology;
  readonly etcd: EtcdCluster;
  readonly sandbox: Sandbox;
  readonly daemons: Map<string, { child: ChildProcess; log: string }>;
  /** `args` are added to `run --config ... --instance <name>` (e.g. `--http ADDR:PORT`). */
  start(name: string, env?: NodeJS.ProcessEnv, user?: { uid: number; gid: number }, args?: readonly string[]): ChildProcess;
  logOf(name: string): string;
  waitLog(name: string, marker: string | RegExp, ms?: number): Promise<void>;
  records(): Promise<JournalRecord[]>;
  recoveries(): Promise<RecoverySummary[]>;
  waitEnded(n: number, ms?: number): Promise<RecoverySummary[]>;
  waitConverged(ms?: number): Promise<void>;
  /** The instance the others name as leader in their logs, by polling etcd's election keys. */
  leader(): Promise<string | null>;
  stop(): Promise<void>;
}

export const TTL_SECONDS = 5;

/** A topology on 127.<net>.x.y with a coordination section for 3 instances; etcd on 127.<net>.9.1-3. */
export function monitorsTopology(net: number, o: { cooldownMs?: number; extra?: string } = {}): TestTopology {
  const endpoints = [1, 2, 3].map((i) => `http://127.${net}.9.${i}:2379`).join(", ");
  const coordination = `coordination: { endpoints: [${endpoints}], leaseTtlSeconds: ${TTL_SECONDS}, instances: 3 }`;
  return testTopology({ net, cooldownMs: o.cooldownMs ?? 1000, extra: o.extra ? `${coordination}\n${o.extra}` : coordination });
}

export async function startMonitors(tt: TestTopology): Promise<Monitors> {
  const t = tt.topology;
  await assertAddressesFree(t);
  const etcd = new EtcdCluster(Number(t.hosts.get("redis1")!.address.split(".")[1]), join(tt.dir, `etcd-${Date.now()}`));
  await etcd.start();
  let sandbox: Sandbox;
  try {
    sandbox = await sandboxUp(t);
  } catch (e) {
    await etcd.stop();
    throw e;
  }
  const client = new Etcd3({ hosts: etcd.endpoints, defaultCallOptions: () => ({ deadline: Date.now() + 2000 }) });
  const prefix = `/failoverd/${t.name}`;
  const daemons = new Map<string, { child: ChildProcess; log: string }>();
  const read = async (): Promise<JournalRecord[]> => {
    const res = await client.getAll().prefix(`${prefix}/journal/`).sort("Create", "Ascend").exec();
    return res.kvs.map((kv) => JSON.parse(kv.value.toString()) as JournalRecord);
  };
  const m: Monitors = {
    tt,
    etcd,
    sandbox,
    daemons,
    start(name, env = {}, user, args = []) {
      const log = join(tt.dir, `daemon-${name}-${Date.now()}.log`);
      const child = startDaemon(t, log, env, ["--instance", name, ...args], user);
      daemons.set(name, { child, log });
      return child;
    },
    logOf(name) {
      const d = daemons.get(name);
      return d && existsSync(d.log) ? readFileSync(d.log, "utf8") : "";
    },
    async waitLog(name, marker, ms = 120_000) {
      const end = Date.now() + ms;
      while (Date.now() < end) {
        const text = m.logOf(name);
        if (typeof marker === "string" ? text.includes(marker) : marker.test(text)) return;
        const d = daemons.get(name);
        if (d && d.child.exitCode !== null && d.child.signalCode === null) throw new Error(`${name} exited (code ${d.child.exitCode}); see ${d.log}`);
        await sleep(50);
      }
      throw new Error(`${name} never logged ${String(marker)} within ${ms} ms; see ${daemons.get(name)?.log}`);
    },
    records: read,
    recoveries: async () => summarize(await read()),
    async waitEnded(n, ms = 60_000) {
      const end = Date.now() + ms;
      for (;;) {
        const r = summarize(await read().catch(() => []));
        if (r.filter((x) => x.outcome !== undefined).length >= n) return r;
        if (Date.now() > end) throw new Error(`expected ${n} finished recoveries, the journal has ${JSON.stringify(r.map((x) => [x.host, x.outcome, x.steps.map((s) => s.step)]))}`);
        await sleep(100);
      }
    },
    async waitConverged(ms = 20_000) {
      const end = Date.now() + ms;
      let why: string | null = "";
      while (Date.now() < end) {
        why = await whyNotConverged(t, Inventory.load(t, join(t.config.stateDir, "inventory.json")));
        if (why === null) return;
        await sleep(100);
      }
      throw new Error(`not converged: ${why}`);
    },
    async leader() {
      const res = await client.getAll().prefix(`${prefix}/election/`).sort("Create", "Ascend").exec();
      return res.kvs[0]?.value.toString() ?? null;
    },
    async stop() {
      for (const d of daemons.values()) {
        if (d.child.pid !== undefined) {
          try {
            process.kill(d.child.pid, "SIGCONT");
          } catch {
            // gone
          }
        }
        await stopDaemon(d.child);
      }
      client.close();
      for (const p of sandbox.read().machines.flatMap((x) => x.processes)) signal(p, "SIGCONT");
      await sandboxDown(t);
      await etcd.stop();
    },
  };
  return m;
}

/** Polls `fn` until it resolves true (a throw counts as not yet), or throws naming `what` after `ms`. */
export async function until(fn: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  await waitUntil(what, fn, ms, { retryErrors: true });
}

/** The messages of an instance's log (JSON lines; none while the file does not exist). */
export function logMessages(log: string): string[] {
  if (!existsSync(log)) return [];
  return readFileSync(log, "utf8")
    .split("\n")
    .flatMap((l) => {
      try {
        return [String((JSON.parse(l) as { msg?: string }).msg ?? "")];
      } catch {
        return [];
      }
    });
}

/** A log message saying the instance acted: it started or resumed a recovery, or ran a step. */
export const isActing = (msg: string): boolean =>
  msg.startsWith("recovery started:") || msg.startsWith("resuming the unfinished recovery") || /^step [a-z-]+: /.test(msg);
