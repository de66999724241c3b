/**
 * Never make it worse (issue 10), on the real sandbox (real redis-server and haproxy on 127.110-119.x.y), one
 * topology per scenario: a hang just past the budget then resumed; a replica whose link is cut (alert, status 1, no
 * failover; then the primary dies: no silent promotion, and an operator may accept the loss); a replica promoted by
 * hand (TwoPrimaries); a primary restarted empty 100 ms after the kill, and as soon as it is gone (the replica keeps
 * its data, no client reads an empty dataset, nothing acknowledged is lost); the survivor killed while the
 * replacement waits to sync (no promotion of the replacement, PairDown, no "succeeded"); a replica rebuild followed
 * by a primary crash (no cooldown in between).
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, describe, test } from "node:test";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import { cmd, HaproxyAdminClient } from "../../src/admin/haproxy.ts";
import { BIN_PATH } from "../../src/package-root.ts";
import { isGone, signal } from "../../src/providers/local/processes.ts";
import type { Sandbox } from "../../src/providers/local/sandbox.ts";
import { sandboxDown, sandboxUp } from "../../src/providers/local/up.ts";
import { FileJournal, type RecoverySummary, summarize } from "../../src/recovery/journal.ts";
import type { PromoteResult } from "../../src/recovery/steps/redis.ts";
import { startDaemon, stopDaemon, waitForDaemon } from "../../src/simulate/daemon-process.ts";
import { parseTopology } from "../../src/topology/load.ts";
import type { Topology } from "../../src/topology/topology.ts";
import { killAll, scenario } from "../helpers/matrix.ts";
import { assertAddressesFree, type TestTopology, testTopology } from "../helpers/sandbox.ts";
import { waitUntil } from "../helpers/wait.ts";

const run = promisify(execFile);
const BIN = BIN_PATH;
const TOKEN = "never-worse-token";

const topologies: TestTopology[] = [];
after(() => {
  for (const t of topologies) t.cleanup();
});

/** A one-port topology on 127.<net>.x.y, with extra YAML, and recovery settings rewritten where asked. */
function topo(net: number, extra = "", recovery?: Record<string, number | string>): TestTopology {
  let tt = testTopology({ net, ports: [9001], extra });
  if (recovery) {
    let yaml = tt.yaml;
    for (const [k, v] of Object.entries(recovery)) yaml = yaml.replace(new RegExp(`${k}: \\d+`), `${k}: ${v}`);
    writeFileSync(tt.path, yaml);
    tt = { ...tt, yaml, topology: parseTopology(yaml, tt.path) };
  }
  topologies.push(tt);
  return tt;
}

const client = (address: string, port: number) => {
  const c = new Redis({ host: address, port, lazyConnect: true, connectTimeout: 1000, commandTimeout: 1000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  c.on("error", () => {});
  return c;
};

async function redisCall<T>(address: string, port: number, ...args: (string | number)[]): Promise<T> {
  const c = client(address, port);
  try {
    await c.connect();
    return (await c.call(String(args[0]), ...args.slice(1))) as T;
  } finally {
    c.disconnect();
  }
}

/** Polled every 50 ms: the restart-empty scenario restarts a server the moment the old one is gone. */
const waitFor = <T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, ms = 30_000): Promise<T> =>
  waitUntil(what, check, ms, { everyMs: 50 });

/**
 * The sandbox of `tt` and one daemon (started after `setup`, when given) for `body`; both stopped afterwards, whatever
 * happens. For the scenarios that drive the daemon themselves (no traffic harness).
 */
async function withDaemon(
  tt: TestTopology,
  o: { env?: NodeJS.ProcessEnv; setup?: () => Promise<unknown> },
  body: (d: { log: string; sandbox: Sandbox }) => Promise<void>,
): Promise<void> {
  const t = tt.topology;
  await assertAddressesFree(t);
  const sandbox = await sandboxUp(t);
  const log = join(tt.dir, "daemon.log");
  let daemon: ChildProcess | undefined;
  try {
    await o.setup?.();
    daemon = startDaemon(t, log, o.env ?? {});
    await waitForDaemon(log, daemon);
    await body({ log, sandbox });
  } finally {
    if (daemon) await stopDaemon(daemon);
    await sandboxDown(t);
  }
}

/** The HAProxies on which `server` is drained or in maintenance (any backend). */
async function drainedOrFenced(t: Topology, server: string): Promise<string[]> {
  const out: string[] = [];
  for (const h of t.haproxyHosts) {
    const rows = await new HaproxyAdminClient({ address: h.address, port: h.adminPort }, 2000).showServersState();
    for (const r of rows) if (r.server === server && (r.inDrain || r.inMaint)) out.push(`${h.name} ${r.backend}/${r.server}${r.inDrain ? " drained" : " in maint"}`);
  }
  return out;
}

const promoteOf = (r: RecoverySummary) => r.completed.get("promote") as PromoteResult | undefined;

describe("never make it worse", { timeout: 900_000 }, () => {
  test("a primary hung just past the detection budget, then resumed: nothing is promoted after it answers again", async () => {
    // 600 ms budget (200 ms x 3). Around the budget, the HAProxies' own marks lag behind failoverd's checks.
    for (const [i, hangMs] of [720, 800].entries()) {
      const tt = topo(110 + i);
      await scenario(tt, async (c) => {
        const procs = c.processesOf("redis1");
        killAll(procs, "SIGSTOP");
        await sleep(hangMs);
        killAll(procs, "SIGCONT");
        const resumedAt = Date.now();
        await sleep(3000);
        for (const r of await c.recoveries()) {
          const promote = r.steps.find((s) => s.step === "promote");
          if (promote?.ok && (promoteOf(r)?.promoted.length ?? 0) > 0) {
            assert.ok(promote.startedAt < resumedAt, `a promotion started ${promote.startedAt - resumedAt} ms after the primary answered again`);
          } else {
            assert.notEqual(r.outcome, "succeeded", "a recovery that promoted nothing did not pretend to succeed");
          }
        }
        const rolledBack = (await c.recoveries()).filter((r) => r.outcome === "rolled-back");
        for (const r of rolledBack) assert.match(r.error ?? "", /recovered before promotion/);
      });
    }
  });

  test("a replica's link cut for seconds: ReplicaLinkDown, status 1, no failover; then the primary dies: no silent promotion", async () => {
    const tt = topo(112, `replication: { linkDownAlertMs: 1000 }\nhttp: { listen: "127.112.9.1:9464", token: { env: FAILOVERD_TEST_TOKEN } }\n`);
    const t = tt.topology;
    await withDaemon(tt, { env: { FAILOVERD_TEST_TOKEN: TOKEN } }, async ({ log, sandbox }) => {
      const [r1, r2] = ["redis1", "redis2"].map((h) => t.hosts.get(h)!.address);
      // The cut: the replica cannot authenticate to its primary any more, and its link is dropped.
      await redisCall(r2!, 9001, "CONFIG", "SET", "masterauth", "not-the-password");
      await redisCall(r2!, 9001, "CLIENT", "KILL", "TYPE", "master");
      // Writes the replica misses: about 400 KiB.
      const w = client(r1!, 9001);
      await w.connect();
      for (let i = 0; i < 400; i++) await w.set(`missed:${i}`, "x".repeat(1024));
      w.disconnect();
      await waitFor("ReplicaLinkDown in the log", () => /ReplicaLinkDown on redis2/.test(readFileSync(log, "utf8")));
      const status = await run(process.execPath, [BIN, "status", "--config", t.source]).then(
        (r) => ({ code: 0, out: r.stdout }),
        (e: { code: number; stdout: string }) => ({ code: e.code, out: e.stdout }),
      );
      assert.equal(status.code, 1, "status exits 1 while redundancy is lost");
      assert.match(status.out, /ReplicaLinkDown on redis2/);
      const journal = new FileJournal(join(t.config.stateDir, "journal.jsonl"));
      assert.deepEqual(summarize(await journal.read()), [], "no failover for a replica's lost link");

      killAll(sandbox.machineOf("redis1")?.processes ?? [], "SIGKILL");
      await waitFor("the promotion refused, with what it would lose", () =>
        /automatic promotion refused: redis2:9001 misses about \d+(\.\d+)? KiB .*of what redis1:9001 had acknowledged/.test(readFileSync(log, "utf8")),
      );
      await sleep(1500);
      for (const r of summarize(await journal.read())) assert.equal(promoteOf(r)?.promoted.length ?? 0, 0, "nothing promoted");
      assert.equal((await redisCall<unknown[]>(r2!, 9001, "ROLE"))[0], "slave", "redis2 is still a replica");

      // The operator accepts the loss, on purpose: the failover goes ahead, journaled with who accepted it.
      const promoted = await run(process.execPath, [BIN, "promote", "--host", "redis2", "--accept-data-loss", "--config", t.source], {
        env: { ...process.env, FAILOVERD_TOKEN: TOKEN },
      });
      assert.match(promoted.stdout, /may promote redis2/);
      const done = await waitFor("the accepted failover", async () => summarize(await journal.read()).find((r) => r.outcome !== undefined && r.acceptDataLoss));
      assert.equal(done.outcome, "succeeded", done.error);
      assert.match(done.by ?? "", /http 127\./, "who accepted it");
      assert.match(promoteOf(done)?.dataLoss?.[0]?.text ?? "", /redis2:9001 misses about \d+(\.\d+)? KiB/);
      assert.match(readFileSync(log, "utf8"), /promoting redis2:9001 misses about/);
    });
  });

  test("a replica promoted by hand: TwoPrimaries within a few checks, and no recovery", async () => {
    const tt = topo(113);
    await scenario(tt, async (c) => {
      const r2 = c.t.hosts.get("redis2")!.address;
      await redisCall(r2, 9001, "REPLICAOF", "NO", "ONE");
      await waitFor("TwoPrimaries in the log", () => /TwoPrimaries on redis1/.test(c.log()), 5000);
      assert.deepEqual(await c.recoveries(), []);
      // Put it back so the harness's read-back finds every write on the one primary.
      await redisCall(r2, 9001, "REPLICAOF", c.t.hosts.get("redis1")!.address, 9001);
      await c.waitConverged();
    });
  });

  // A supervisor's restart: systemd's default RestartSec is 100 ms; one that restarts at once races HAProxy's retries.
  for (const [delayMs, net] of [
    [100, 114],
    [0, 119],
  ] as const) {
  test(`a primary SIGKILLed and restarted empty ${delayMs === 0 ? "as soon as it is gone" : `${delayMs} ms after the kill`}: its replica is promoted with its data, no client reads an empty dataset, nothing acknowledged is lost`, async () => {
    const tt = topo(net);
    const restarted: number[] = [];
    try {
      await scenario(tt, async (c) => {
        const [r1, r2] = ["redis1", "redis2"].map((h) => c.t.hosts.get(h)!.address);
        await redisCall(r1!, 9001, "SET", "canary", "still here");
        await waitFor("the canary on the replica", async () => (await redisCall<string | null>(r2!, 9001, "GET", "canary")) === "still here");
        // A reader through the application's HAProxy, fresh connection each time, for the whole episode.
        const app = c.t.appHosts[0]!;
        const reads: (string | null | "error")[] = [];
        let reading = true;
        const reader = (async () => {
          while (reading) {
            reads.push(await redisCall<string | null>(app.address, 7001, "GET", "canary").catch(() => "error" as const));
            await sleep(5);
          }
        })();
        // And an impatient client: a fresh connection each time, given up after 25 ms (HAProxy holds a connection to a
        // dead server while it retries), writing a new key each time: it reaches the restarted server the moment it
        // listens unless that server is kept out. Every write it had acknowledged must be on the promoted replica.
        const acked: number[] = [];
        const impatientReads: (string | null | "error")[] = [];
        const impatient = (async () => {
          for (let i = 0; reading; i++) {
            const c2 = new Redis({ host: app.address, port: 7001, lazyConnect: true, connectTimeout: 25, commandTimeout: 25, maxRetriesPerRequest: 0, retryStrategy: () => null });
            c2.on("error", () => {});
            try {
              await c2.connect();
              impatientReads.push(await c2.get("canary"));
              if ((await c2.set(`impatient:${i}`, String(i))) === "OK") acked.push(i);
            } catch {
              impatientReads.push("error");
            } finally {
              c2.disconnect();
            }
            await sleep(2);
          }
        })();
        await sleep(300);
        const victim = c.processesOf("redis1").find((p) => p.port === 9001)!;
        // What a supervisor would run again: the same server, no persistence, so an empty dataset.
        const argv = ["redis-server", "--bind", r1!, "--port", "9001", "--bind-source-addr", r1!, "--protected-mode", "no", "--daemonize", "no"];
        argv.push("--dir", tt.dir, "--save", "", "--appendonly", "no", "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0");
        const killedAt = Date.now();
        signal(victim, "SIGKILL");
        await waitUntil("the killed server gone", () => isGone(victim.pid), 5000, { everyMs: 1 });
        await sleep(Math.max(0, killedAt + delayMs - Date.now()));
        const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: "ignore" });
        child.on("error", () => {});
        child.unref();
        if (child.pid) restarted.push(child.pid);
        try {
          const [r] = await c.waitForRecoveries(1, 60_000);
          assert.equal(r?.outcome, "succeeded", r?.error);
          assert.match(r?.diagnosis ?? "", /^(DeadPrimary|PrimaryRestartedEmpty)$/);
          assert.deepEqual(promoteOf(r!)?.promoted, [9001]);
          await c.waitConverged(30_000);
        } finally {
          // Stopped whatever happened: a reader left running would keep the test process alive.
          reading = false;
          await Promise.all([reader, impatient]);
        }
        assert.equal(await redisCall(r2!, 9001, "GET", "canary"), "still here", "the promoted replica kept its data");
        const empty = [...reads, ...impatientReads].filter((x) => x === null).length;
        assert.equal(empty, 0, `clients read an empty dataset ${empty} times (of ${reads.length + impatientReads.length} reads)`);
        const missing: number[] = [];
        for (const i of acked) if ((await redisCall<string | null>(r2!, 9001, "GET", `impatient:${i}`)) !== String(i)) missing.push(i);
        assert.deepEqual(missing, [], `${missing.length} of ${acked.length} writes acknowledged to the impatient client are lost`);
        assert.ok(acked.length > 10, "the impatient client wrote");
        assert.ok(reads.filter((x) => x === "still here").length > 10, "the reader read");
      });
    } finally {
      for (const pid of restarted) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {}
      }
    }
  });
  }

  test("the survivor killed while the replacement waits to sync: no promotion of the replacement, PairDown, no 'succeeded'", async () => {
    const tt = topo(115, "", { syncTimeoutMs: 2000 });
    const t = tt.topology;
    await withDaemon(tt, { env: { FAILOVERD_CHAOS_PAUSE: "replicate:3000" } }, async ({ log, sandbox }) => {
      killAll(sandbox.machineOf("redis1")?.processes ?? [], "SIGKILL");
      await waitFor("the pause before replicate", () => /chaos: pausing 3000 ms before replicate/.test(readFileSync(log, "utf8")));
      // The survivor (promoted) dies while the replacement has not synced yet.
      killAll(sandbox.machineOf("redis2")?.processes ?? [], "SIGKILL");
      const journal = new FileJournal(join(t.config.stateDir, "journal.jsonl"));
      const [first] = await waitFor("the recovery's end", async () => {
        const rs = summarize(await journal.read());
        return rs[0]?.outcome !== undefined ? rs : undefined;
      }, 90_000);
      assert.equal(first?.outcome, "failed", "not succeeded: the pair never converged");
      await waitFor(
        "PairDown: the replacement never completed a sync",
        () => readFileSync(log, "utf8").split("\n").some((l) => l.includes("PairDown on redis2") && l.includes("redis1 never completed a sync")),
        30_000,
      );
      await sleep(1500);
      const rs = summarize(await journal.read());
      assert.equal(rs.length, 1, `no second recovery: ${JSON.stringify(rs.map((r) => [r.host, r.diagnosis, r.outcome]))}`);
      const replacement = sandbox.read().machines.find((m) => m.host === "redis1" && m.status === "running");
      assert.ok(replacement, "the replacement runs");
      assert.equal((await redisCall<unknown[]>(replacement.address, 9001, "ROLE"))[0], "slave", "the never-synced replacement was not promoted");
    });
  });

  test("a replica rebuild, then a primary crash: the failover is not held by a cooldown", async () => {
    const tt = topo(116);
    await scenario(tt, async (c) => {
      killAll(c.processesOf("redis2"), "SIGKILL");
      const [rebuild] = await c.waitForRecoveries(1, 60_000);
      assert.equal(rebuild?.diagnosis, "DeadReplica");
      assert.equal(rebuild?.outcome, "succeeded", rebuild?.error);
      await c.waitConverged(30_000);
      const crashAt = Date.now();
      killAll(c.processesOf("redis1"), "SIGKILL");
      const rs = await c.waitForRecoveries(2, 30_000);
      assert.equal(rs[1]?.diagnosis, "DeadPrimary");
      assert.equal(rs[1]?.outcome, "succeeded", rs[1]?.error);
      assert.ok(rs[1]!.startedAt - crashAt < 5000, `the failover started ${rs[1]!.startedAt - crashAt} ms after the crash`);
      assert.doesNotMatch(c.log(), /cooling down/);
      await c.waitConverged(30_000);
    });
  });

  test("a primary's connection lost but the server the same: its replica's resync is held at once, then released; nothing else", async () => {
    const tt = topo(117);
    await scenario(tt, async (c) => {
      const [r1, r2] = ["redis1", "redis2"].map((h) => c.t.hosts.get(h)!.address);
      // Closes every normal client of the primary, failoverd's kept probe connection among them (not the replica's link).
      await redisCall(r1!, 9001, "CLIENT", "KILL", "TYPE", "normal");
      await waitFor("the replica's resync held", () => /holding redis2:9001's resync \(redis1:9001: its connection closed\)/.test(c.log()));
      await waitFor("the hold released", () => /released redis2:9001's resync: redis1:9001 answers as the same server/.test(c.log()));
      // Its clients were kept away meanwhile (drained on every HAProxy), and are let back at once.
      assert.match(c.log(), /drained redis1:9001 on (\d+) of \1 HAProxies \(redis1:9001: its connection closed\)/);
      await waitFor("the drain released", () => /released redis1:9001's drain: redis1:9001 answers as the same server/.test(c.log()));
      assert.deepEqual(await drainedOrFenced(c.t, "redis1"), [], "redis1 routed again on every HAProxy");
      const auth = await redisCall<string[]>(r2!, 9001, "CONFIG", "GET", "masterauth");
      assert.equal(auth[1], "", "masterauth is back to the topology's (none)");
      assert.deepEqual(await c.recoveries(), [], "no recovery");
      assert.equal((await redisCall<unknown[]>(r2!, 9001, "ROLE"))[0], "slave");
    });
  });

  test("a resync hold left by an earlier failoverd (it died in between) is released once the replica's link is up", async () => {
    const tt = topo(118);
    const t = tt.topology;
    const r2 = t.hosts.get("redis2")!.address;
    // Left on the replica, and the primary drained on every HAProxy, before the daemon starts.
    const setup = async () => {
      await redisCall(r2, 9001, "CONFIG", "SET", "masterauth", "failoverd-hold-left-by-a-dead-daemon");
      for (const h of t.haproxyHosts) await new HaproxyAdminClient({ address: h.address, port: h.adminPort }, 2000).apply([cmd.state("be_redis_9001", "redis1", "drain")]);
      assert.notDeepEqual(await drainedOrFenced(t, "redis1"), [], "the leftover drain is in place");
    };
    await withDaemon(tt, { setup }, async ({ log }) => {
      await waitFor("the leftover hold released", () => /released a resync hold on redis2:9001 left by an earlier failoverd/.test(readFileSync(log, "utf8")));
      assert.equal((await redisCall<string[]>(r2, 9001, "CONFIG", "GET", "masterauth"))[1], "");
      await waitFor("the leftover drain released", () => /released a drain of redis1:9001 left by an earlier failoverd/.test(readFileSync(log, "utf8")));
      assert.deepEqual(await drainedOrFenced(t, "redis1"), [], "redis1 routed again on every HAProxy");
    });
  });
});
