/**
 * failoverd on real hosts (issue 13, points 1 and 2): it writes only its own HAProxy file, and it does so as an
 * unprivileged user with nothing but the sudoers rule `failoverd render sudoers` prints.
 *
 * Setup: a Unix user made with useradd; Redis servers on 127.140.1.x; HAProxy and app hosts on 127.140.2.x / 3.x,
 * each a real sshd and a real HAProxy in a mount namespace of its own (test/helpers/ssh-hosts.ts) with a host config
 * as distributions ship it (`global` user/group/chroot/log, a stats socket, HTTP defaults, an unrelated frontend),
 * at the real paths. The config is an AWS one with every HAProxy default (only the SSH user, port and keys are the
 * test's); compute is the test's (Redis processes and SSH hosts); the playbooks run through the real runner.
 * Expectations: the host config of every host survives failed_redis and failed_haproxy byte for byte, every reload
 * really happens (new workers) and keeps HAProxy running as the host says (user haproxy, chroot, logging to the
 * host's syslog), and sudo refuses the user anything but the rule's commands.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { createSocket, type Socket } from "node:dgram";
import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { Redis } from "ioredis";
import { renderForHost } from "../../src/admin/haproxy-config.ts";
import { ProviderError } from "../../src/errors.ts";
import { silentLogger } from "../../src/log.ts";
import { PACKAGE_ROOT } from "../../src/package-root.ts";
import { createSshShell } from "../../src/providers/aws/index.ts";
import { isRunning, type StartedProcess, startDetached, stop, waitForPort, whyNotFree } from "../../src/providers/local/processes.ts";
import { NetHaproxyAdmin, NetRedisAdmin } from "../../src/providers/net-admin.ts";
import { preflight } from "../../src/providers/preflight.ts";
import { SshProxies } from "../../src/providers/ssh.ts";
import type { ComputeProvider, KeptMachine, LaunchRequest, Machine, Providers, Spare } from "../../src/providers/types.ts";
import { MemoryJournal } from "../../src/recovery/journal.ts";
import { failedHaproxy } from "../../src/recovery/playbooks/failed-haproxy.ts";
import { failedRedis } from "../../src/recovery/playbooks/failed-redis.ts";
import { Runner } from "../../src/recovery/runner.ts";
import type { MonitorControl } from "../../src/recovery/types.ts";
import { Inventory } from "../../src/topology/inventory.ts";
import { parseTopology } from "../../src/topology/load.ts";
import type { AwsProviderConfig } from "../../src/topology/schema.ts";
import type { Topology } from "../../src/topology/topology.ts";
import { fingerprint } from "../helpers/sshd.ts";
import { createUser, type SshHost, SshHosts, type TestUser } from "../helpers/ssh-hosts.ts";

const NET = 140;
const SYSLOG = { address: `127.${NET}.0.1`, port: 5514 };
const UNRELATED_PORT = 18080;
const REDIS_POOL = [11, 12, 13].map((i) => `127.${NET}.1.${i}`);
const HAPROXY_POOL = [11, 12, 13].map((i) => `127.${NET}.2.${i}`);
const ADDRESSES = [`127.${NET}.1.1`, `127.${NET}.1.2`, `127.${NET}.2.1`, `127.${NET}.2.2`, `127.${NET}.3.1`, ...REDIS_POOL, ...HAPROXY_POOL];

/** The host's own config, as Debian ships it (trimmed), with an unrelated service of the host's. */
function hostConfig(address: string, host: string): string {
  return `# ${host}'s own HAProxy configuration (the machine image's). Not failoverd's.
global
\tlog ${SYSLOG.address}:${SYSLOG.port} local0
\tchroot /var/lib/haproxy
\tstats socket /run/haproxy/admin.sock mode 660 level admin
\tstats timeout 30s
\tuser haproxy
\tgroup haproxy
\tdaemon
\tmaxconn 2000

defaults
\tlog\tglobal
\tmode\thttp
\toption\thttplog
\toption\tdontlognull
\ttimeout connect 5000
\ttimeout client  50000
\ttimeout server  50000

frontend unrelated_web
\tbind ${address}:${UNRELATED_PORT}
\thttp-request return status 200 content-type text/plain string "${host} serves something else too"
`;
}

const signal = () => AbortSignal.timeout(180_000);
const tmp = mkdtempSync(join(tmpdir(), "failoverd-host-haproxy-"));
let user: TestUser;
let hosts: SshHosts;
let topology: Topology;
let inventory: Inventory;
let compute: TestCompute;
let providers: Providers;
let syslog: Socket;
const logged: string[] = [];

/** Redis servers started by the test, by host. */
interface RedisMachine extends Machine {
  readonly processes: StartedProcess[];
}

/**
 * The test's compute: Redis machines are redis-server processes; HAProxy machines are SSH hosts booted on the image's
 * host config. Replacements take the next address of a pool.
 */
class TestCompute implements ComputeProvider {
  readonly kind = "test";
  readonly machines = new Map<string, Machine>();
  readonly sshHosts = new Map<string, SshHost>();
  /** The HAProxy workers of an SSH host right after it booted (host config + an empty failoverd file), by address. */
  readonly bootWorkers = new Map<string, number[]>();
  private readonly redis = new Map<string, RedisMachine>();
  private launches = 0;

  async startRedis(host: string, address: string, ports: readonly number[], replicaOf?: string): Promise<Machine> {
    const dir = join(tmp, `${host}-${address}`);
    execFileSync("mkdir", ["-p", dir]);
    const processes = ports.map((port) => {
      const log = join(dir, `redis-${port}.log`);
      const args = ["--bind", address, "--port", String(port), "--bind-source-addr", address, "--protected-mode", "no", "--daemonize", "no"];
      args.push("--dir", dir, "--dbfilename", `dump-${port}.rdb`, "--logfile", log, "--save", "", "--appendonly", "no");
      args.push("--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0", ...(replicaOf ? ["--replicaof", replicaOf, String(port)] : []));
      return { pid: startDetached("redis-server", args, log), marker: `${address}:${port}` };
    });
    await Promise.all(ports.map((p) => waitForPort(address, p, 30_000)));
    const m: RedisMachine = { id: `test-${host}-${++this.launches}`, host, role: "redis", address, processes };
    this.redis.set(m.id, m);
    this.machines.set(host, m);
    return m;
  }

  async startSshHost(host: string, role: "haproxy" | "app", address: string): Promise<Machine> {
    const h = await hosts.start(host, address);
    this.bootWorkers.set(address, h.workers());
    const m: Machine = { id: `test-${host}-${++this.launches}`, host, role, address };
    this.sshHosts.set(m.id, h);
    this.machines.set(host, m);
    return m;
  }

  sshHostOf(host: string): SshHost {
    const m = this.machines.get(host);
    const h = m && this.sshHosts.get(m.id);
    if (!h) throw new Error(`${host} is no SSH host`);
    return h;
  }

  async launch(req: LaunchRequest): Promise<Machine> {
    const used = new Set([...this.machines.values()].map((m) => m.address));
    const pool = req.role === "redis" ? REDIS_POOL : HAPROXY_POOL;
    const address = pool.find((a) => !used.has(a) && ![...this.redis.values(), ...this.sshHosts.values()].some((m) => m.address === a));
    if (!address) throw new ProviderError(`no address left for ${req.host}`, false);
    return req.role === "redis" ? this.startRedis(req.host, address, req.ports ?? []) : this.startSshHost(req.host, "haproxy", address);
  }

  async ready(machine: Machine): Promise<Machine> {
    return machine;
  }

  async terminate(machine: Machine): Promise<void> {
    await this.crash(machine.host);
  }

  /** Kept for the post-mortem (recovery.failedMachine's default, stop): its processes stop, as in the sandbox. */
  async keep(machine: Machine): Promise<void> {
    await this.crash(machine.host);
  }

  async kept(): Promise<KeptMachine[]> {
    return [];
  }

  /** No warm spares in this test. */
  async spares(): Promise<Spare[]> {
    return [];
  }

  async addSpare(): Promise<Spare> {
    throw new ProviderError("this test keeps no spares", false);
  }

  async claim(): Promise<Machine | null> {
    return null;
  }

  /** Kills every process of the host's machine (a crash, or terminate). */
  async crash(host: string): Promise<void> {
    const m = this.machines.get(host);
    if (!m) return;
    const r = this.redis.get(m.id);
    if (r) await Promise.all(r.processes.map((p) => stop(p, "SIGKILL")));
    await this.sshHosts.get(m.id)?.stop();
    this.machines.delete(host);
  }

  async find(host: string): Promise<Machine | null> {
    return this.machines.get(host) ?? null;
  }

  async stopAll(): Promise<void> {
    for (const r of this.redis.values()) await Promise.all(r.processes.filter(isRunning).map((p) => stop(p, "SIGKILL")));
  }
}

const monitor: MonitorControl = {
  unmonitor: async () => {},
  monitor: async () => {},
  statusOf: (target) => (compute.machines.has(target.split(":")[0] ?? target) ? "up" : "down"),
  rules: { fall: 3, rise: 2, intervalMs: 200 },
  recheck: async (target) => ({
    type: "redis",
    target,
    host: target.split(":")[0] ?? target,
    port: Number(target.split(":")[1] ?? 0),
    address: "",
    at: Date.now(),
    latencyMs: 0,
    ...(compute.machines.has(target.split(":")[0] ?? target) ? { ok: true } : { ok: false, failure: { kind: "refused", message: "refused" } }),
  }),
  failuresOf: () => 3,
  lastGood: () => undefined,
  firstAbove: () => undefined,
  noteRole: () => {},
};

function aws(): AwsProviderConfig {
  const p = topology.config.provider;
  assert.equal(p.kind, "aws");
  return p;
}

async function run(playbook: ReturnType<typeof failedRedis>): Promise<string> {
  const runner = new Runner({ topology, inventory, providers, journal: new MemoryJournal(), monitor, log: silentLogger() });
  const errors: string[] = [];
  runner.on("step-end", (e: { ok?: boolean; step: string; error?: string }) => {
    if (e.ok === false) errors.push(`${e.step}: ${e.error}`);
  });
  const outcome = await runner.run(playbook, { diagnosis: "test" });
  assert.equal(outcome, "succeeded", errors.join("\n"));
  return outcome;
}

/** As the SSH user on a host: the rule's reload, through sudo (nothing else reloads in these tests). */
async function reloadAsUser(h: SshHost): Promise<void> {
  const m: Machine = { id: h.host, host: h.host, role: "haproxy", address: h.address };
  const r = await createSshShell(topology).run(m, `sudo -n ${aws().hostHaproxy.reload.join(" ")}`, signal());
  assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last = "";
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      last = (e as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms ${last}`);
    await sleep(100);
  }
}

/** New workers after a reload: none of the ones before is left, and at least one runs. */
async function reloaded(h: SshHost, before: readonly number[]): Promise<number[]> {
  return until(`${h.host} reloaded`, async () => {
    const now = h.workers();
    return now.length > 0 && now.every((w) => !before.includes(w)) ? now : undefined;
  });
}

/** The host's settings still apply after failoverd's changes: the worker runs as haproxy, chrooted. */
function assertRunsAsTheHostSays(h: SshHost): void {
  const haproxyUid = Number(execFileSync("id", ["-u", "haproxy"], { encoding: "utf8" }).trim());
  for (const w of h.workers()) {
    const uid = Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${w}/status`, "utf8"))?.[1]);
    assert.equal(uid, haproxyUid, `${h.host}'s worker ${w} runs as the host's user haproxy`);
    assert.equal(readlinkSync(`/proc/${w}/root`), "/var/lib/haproxy", `${h.host}'s worker ${w} is chrooted as the host says`);
  }
}

async function unrelatedAnswers(h: SshHost): Promise<void> {
  const res = await fetch(`http://${h.address}:${UNRELATED_PORT}/`, { signal: AbortSignal.timeout(10_000) });
  assert.equal(res.status, 200);
  assert.equal(await res.text(), `${h.host} serves something else too`);
}

/** The host config is what the image shipped, byte for byte. */
function assertHostConfigKept(h: SshHost): void {
  assert.equal(readFileSync(join(h.etc, "haproxy.cfg"), "utf8"), h.hostConfig, `${h.host}'s /etc/haproxy/haproxy.cfg is untouched`);
}

/** The Redis server that answers as primary through `address:port`, by its address (INFO's view of itself). */
async function primaryThrough(address: string, port: number): Promise<string> {
  const c = new Redis({ host: address, port, lazyConnect: true, connectTimeout: 2000, commandTimeout: 2000, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
  c.on("error", () => {});
  try {
    await c.connect();
    await c.set("failoverd:test", String(Date.now()));
    const conf = (await c.call("CONFIG", "GET", "bind")) as string[];
    return conf[1] ?? "";
  } finally {
    c.disconnect();
  }
}

before(async () => {
  const busy = (await Promise.all([...ADDRESSES.map((a) => whyNotFree(a, 9001)), whyNotFree(SYSLOG.address, SYSLOG.port)])).filter(Boolean);
  if (busy.length > 0) throw new Error(`test addresses are busy: ${busy.join("; ")}`);
  let port = 0;
  for (let p = 22000 + Math.floor(Math.random() * 5000); port === 0; p++) {
    if ((await Promise.all(ADDRESSES.map((a) => whyNotFree(a, p)))).every((w) => w === null)) port = p;
  }
  user = createUser(`fo${NET}${process.pid % 100000}`, tmp);
  syslog = createSocket("udp4");
  syslog.on("message", (m) => logged.push(m.toString()));
  await new Promise<void>((resolve) => syslog.bind(SYSLOG.port, SYSLOG.address, resolve));

  hosts = new SshHosts({ user, port, sudoers: "", hostConfig });
  const yaml = `topology: t${NET}
hosts:
  redis1: { role: redis, address: 127.${NET}.1.1, ports: [9001, 9002] }
  redis2: { role: redis, address: 127.${NET}.1.2, ports: [9001, 9002] }
  haproxy1: { role: haproxy, address: 127.${NET}.2.1, frontends: { 8001: 9001, 8002: 9002 }, adminPort: 9999 }
  haproxy2: { role: haproxy, address: 127.${NET}.2.2, frontends: { 8001: 9001, 8002: 9002 }, adminPort: 9999 }
  app: { role: app, address: 127.${NET}.3.1, frontends: { 7001: 8001, 7002: 8002 }, upstreams: [haproxy1, haproxy2], adminPort: 9999 }
pairs:
  - [redis1, redis2]
checks: { intervalMs: 200, timeoutMs: 150, fall: 3, rise: 2 }
recovery: { stepTimeoutMs: 180000, syncTimeoutMs: 60000 }
provider:
  kind: aws
  allowLoopback: true
  region: eu-west-1
  imageId: ami-0123456789abcdef0
  subnetIds: [subnet-0123456789abcdef0]
  securityGroupIds: [sg-0123456789abcdef0]
  ssh:
    user: ${user.name}
    port: ${port}
    privateKey: { file: ${user.key} }
    hostKeyFingerprints: [${fingerprint(`${hosts.hostKey}.pub`)}]
    connectTimeoutMs: 60000
    commandTimeoutMs: 60000
stateDir: ${join(tmp, "state")}
`;
  const path = join(tmp, "t.yaml");
  writeFileSync(path, yaml);
  topology = parseTopology(yaml, path);
  inventory = new Inventory(topology);
  // The rule under test, as the command prints it for this config, checked by visudo.
  const rendered = spawnSync(process.execPath, ["bin/failoverd.js", "render", "sudoers", "--config", path], { cwd: PACKAGE_ROOT, encoding: "utf8", timeout: 120_000 });
  assert.equal(rendered.status, 0, rendered.stderr);
  writeFileSync(join(tmp, "sudoers"), rendered.stdout);
  const visudo = spawnSync("visudo", ["-c", "-f", join(tmp, "sudoers")], { encoding: "utf8" });
  assert.equal(visudo.status, 0, `${visudo.stdout}${visudo.stderr}`);
  writeFileSync(join(hosts.dir, "sudoers.d", "failoverd"), rendered.stdout, { mode: 0o440 });

  compute = new TestCompute();
  await compute.startRedis("redis1", `127.${NET}.1.1`, [9001, 9002]);
  await compute.startRedis("redis2", `127.${NET}.1.2`, [9001, 9002], `127.${NET}.1.1`);
  for (const h of topology.haproxyHosts) await compute.startSshHost(h.name, "haproxy", h.address);
  for (const h of topology.appHosts) await compute.startSshHost(h.name, "app", h.address);
  const timeoutMs = 2000;
  providers = {
    compute,
    dns: {
      upsert: async () => {
        throw new Error("no DNS record in this topology");
      },
      resolve: async () => null,
    },
    proxies: new SshProxies(createSshShell(topology), aws().hostHaproxy, aws().ssh.user),
    redis: new NetRedisAdmin(timeoutMs),
    haproxy: new NetHaproxyAdmin(timeoutMs),
    close: async () => {},
  };
});

after(async () => {
  providers?.redis.close();
  await compute?.stopAll();
  await hosts?.stopAll();
  syslog?.close();
  user?.remove();
  rmSync(tmp, { recursive: true, force: true });
});

describe("failoverd's own HAProxy file on real hosts, as an unprivileged user with only the generated sudoers rule", () => {
  it("the first configuration: failoverd's file beside each host's config, reloaded, the host's settings intact", async () => {
    const primaryOf = () => "redis1";
    await Promise.all(
      [...topology.haproxyHosts, ...topology.appHosts].map(async (th) => {
        const h = compute.sshHostOf(th.name);
        const before = h.workers();
        const m = (await compute.find(th.name))!;
        await providers.proxies.applyConfig(m, renderForHost(topology, inventory, th.name, { primaryOf }), signal(), { reload: true });
        await reloaded(h, before);
        assertHostConfigKept(h);
        assert.equal(readFileSync(join(h.etc, "failoverd.cfg"), "utf8"), renderForHost(topology, inventory, th.name, { primaryOf }));
        assertRunsAsTheHostSays(h);
        await unrelatedAnswers(h);
      }),
    );
    // Traffic: app -> haproxy1 -> the primary.
    assert.equal(await until("a write through the app host", () => primaryThrough(`127.${NET}.3.1`, 7001)), `127.${NET}.1.1`);
    // The host's `log` applies to failoverd's proxies too (`log global`): their start is in the host's syslog.
    await until("failoverd's proxies log to the host's syslog", async () => (logged.some((l) => /fe_redis_8001|be_redis_9001|fe_relay_7001/.test(l)) ? true : undefined));
  });

  it("sudo grants the SSH user the rule's commands and nothing else", async () => {
    const shell = createSshShell(topology);
    const h = compute.sshHostOf("haproxy2");
    const m: Machine = { id: "x", host: "haproxy2", role: "haproxy", address: h.address };
    const listed = await shell.run(m, "sudo -n -l", signal());
    assert.equal(listed.code, 0, listed.stderr);
    const granted = listed.stdout.split("\n").filter((l) => /^\s+\(root\) NOPASSWD:/.test(l) || /^\s+\/usr\//.test(l));
    assert.ok(granted.length > 0, listed.stdout);
    assert.match(listed.stdout, /\/usr\/bin\/install -m 600 -o root -g root \/home\/\S+\/\.failoverd\/failoverd\.cfg \/etc\/haproxy\/failoverd\.cfg\.new/);
    assert.doesNotMatch(listed.stdout, /ALL$|tee|\/bin\/sh/m);
    for (const cmd of [
      "sudo -n /usr/bin/tee /etc/haproxy/haproxy.cfg",
      "sudo -n /bin/sh -c id",
      "sudo -n /usr/bin/mv -f /etc/haproxy/failoverd.cfg.new /etc/haproxy/haproxy.cfg",
      "sudo -n /usr/bin/install -m 600 -o root -g root /etc/shadow /etc/haproxy/failoverd.cfg.new",
      "sudo -n /usr/sbin/haproxy -c -f /etc/shadow",
      "sudo -n /usr/bin/systemctl stop haproxy",
    ]) {
      const r = await shell.run(m, `${cmd} < /dev/null`, signal());
      assert.notEqual(r.code, 0, `${cmd} must be refused`);
      assert.match(r.stderr, /sudo: a password is required/, cmd);
    }
    assertHostConfigKept(h);
  });

  it("preflight asks sudo for each command of the rule on every HAProxy and app host, and names what is missing", async () => {
    const sudoLines = async () =>
      (await preflight(topology, { inventory, haproxy: providers.haproxy, shell: createSshShell(topology), timeoutMs: 120_000 })).filter((r) => r.name.startsWith("sudo "));
    const ok = await sudoLines();
    assert.deepEqual(ok.map((r) => [r.name, r.ok]), [["sudo haproxy1", true], ["sudo haproxy2", true], ["sudo app", true]], JSON.stringify(ok));
    const rule = join(hosts.dir, "sudoers.d", "failoverd");
    const full = readFileSync(rule, "utf8");
    // The same rule without its last command (the start), as an outdated or hand-edited rule would be.
    writeFileSync(rule, full.replace(/, \\\n {4}\/usr\/bin\/systemctl start haproxy\n/, "\n"), { mode: 0o440 });
    try {
      assert.notEqual(readFileSync(rule, "utf8"), full);
      const missing = await sudoLines();
      for (const r of missing) {
        assert.equal(r.ok, false, r.name);
        assert.match(r.detail, /sudo refuses \S+ 1 of the 5 commands failoverd runs there \(first: `\/usr\/bin\/systemctl start haproxy`\)/);
      }
      // A change on such a host fails at that command, and says which rule is missing.
      const h = compute.sshHostOf("haproxy2");
      const current = readFileSync(join(h.etc, "failoverd.cfg"), "utf8");
      await assert.rejects(providers.proxies.applyConfig((await compute.find("haproxy2"))!, current, signal(), { reload: false }), (e: unknown) => {
        assert.ok(e instanceof ProviderError, String(e));
        assert.match(e.message, /^starting HAProxy \(if it is not running\) on haproxy2 failed: `sudo -n \/usr\/bin\/systemctl start haproxy` exited 1: .*sudo refused it: install the rule `failoverd render sudoers` prints/);
        return true;
      });
      assertHostConfigKept(h);
    } finally {
      writeFileSync(rule, full, { mode: 0o440 });
    }
  });

  it("failed_redis: every host config survives byte for byte; a later reload keeps the new Redis server and the host's settings", async () => {
    const haproxies = topology.haproxyHosts.map((th) => compute.sshHostOf(th.name));
    await compute.crash("redis1");
    await run(failedRedis("redis1"));
    const newAddress = inventory.addressOf("redis1");
    assert.ok(REDIS_POOL.includes(newAddress), newAddress);
    for (const h of [...haproxies, compute.sshHostOf("app")]) assertHostConfigKept(h);
    for (const h of haproxies) {
      const mine = readFileSync(join(h.etc, "failoverd.cfg"), "utf8");
      assert.match(mine, new RegExp(`server redis1 ${newAddress.replace(/\./g, "\\.")}:9001 check`), `${h.host}'s failoverd.cfg names the new redis1`);
      // register writes the file without a reload; the next reload (the host's, or an operator's) must keep it.
      const before = h.workers();
      await reloadAsUser(h);
      await reloaded(h, before);
      assertHostConfigKept(h);
      assertRunsAsTheHostSays(h);
      await unrelatedAnswers(h);
      const admin = (await compute.find(h.host))!;
      await until(`${h.host} has redis1 at ${newAddress} after the reload`, async () => {
        const rows = await providers.haproxy.serversState({ address: admin.address, port: 9999 });
        return rows.some((r) => r.server === "redis1" && r.address === newAddress) ? true : undefined;
      });
      assert.equal(await until(`writes through ${h.host}`, () => primaryThrough(h.address, 8001)), `127.${NET}.1.2`, "the promoted redis2 takes the writes");
    }
    assert.equal(await until("a write through the app host", () => primaryThrough(`127.${NET}.3.1`, 7001)), `127.${NET}.1.2`);
  });

  it("failed_haproxy: the replacement keeps the image's host config byte for byte and is reloaded onto failoverd's file; the app host's config survives", async () => {
    const app = compute.sshHostOf("app");
    await compute.crash("haproxy1");
    await run(failedHaproxy("haproxy1"));
    const h = compute.sshHostOf("haproxy1");
    const bootWorkers = compute.bootWorkers.get(h.address) ?? [];
    assert.ok(HAPROXY_POOL.includes(h.address), h.address);
    assert.ok(bootWorkers.length > 0);
    // configure reloaded the replacement: its boot worker (host config + empty failoverd file) is gone.
    await reloaded(h, bootWorkers);
    assertHostConfigKept(h);
    assertRunsAsTheHostSays(h);
    await unrelatedAnswers(h);
    assert.equal(readFileSync(join(h.etc, "failoverd.cfg"), "utf8").includes(`bind ${h.address}:8001`), true);
    assert.equal(await until("writes through the new haproxy1", () => primaryThrough(h.address, 8001)), `127.${NET}.1.2`);
    // The app host: its failoverd file follows haproxy1; its own config is untouched.
    assertHostConfigKept(app);
    assert.match(readFileSync(join(app.etc, "failoverd.cfg"), "utf8"), new RegExp(`server haproxy1 ${h.address.replace(/\./g, "\\.")}:8001 check`));
    assert.equal(await until("a write through the app host", () => primaryThrough(`127.${NET}.3.1`, 7001)), `127.${NET}.1.2`);
    assert.ok(existsSync(join(app.etc, "failoverd.cfg")));
  });
});
