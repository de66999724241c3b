/**
 * HAProxy and app "hosts" for tests of the SSH path as it runs on real machines: each host is a mount namespace of
 * its own with a real sshd on the host's loopback address and a real HAProxy (master-worker) started on the host's
 * own config plus failoverd's file, at the real paths: /etc/haproxy/haproxy.cfg and /etc/haproxy/failoverd.cfg are
 * bind mounts of a directory the test owns, so failoverd's defaults (and the sudoers rule it renders for them) are
 * what the test exercises. Also bound per host: /run/haproxy (the host config's stats socket, the pid file),
 * failoverd's staging directory in the SSH user's home, /etc/sudoers.d (the rendered rule only: the machine's own
 * sudoers is never touched) and /usr/bin/systemctl (a stand-in, since no systemd runs here, doing what Debian's
 * haproxy.service does: reload = `haproxy -c` of both files then SIGUSR2 to the master; start = nothing if it runs).
 *
 * Needs root (mount namespaces, sshd for another user). Every process is stopped by its PID.
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { isGone, stop, waitForPort } from "../../src/providers/local/processes.ts";

export const HAPROXY = "/usr/sbin/haproxy";

/** A Unix user for the SSH path, created with useradd and removed with userdel. */
export interface TestUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
  /** The private key failoverd logs in with. */
  readonly key: string;
  remove(): void;
}

export function createUser(name: string, keyDir: string): TestUser {
  // `*`: no password, but not locked (sshd without PAM refuses a locked account, `!`, even with a key).
  execFileSync("useradd", ["--create-home", "--shell", "/bin/sh", "--password", "*", name], { stdio: "pipe" });
  const passwd = readFileSync("/etc/passwd", "utf8").split("\n").find((l) => l.startsWith(`${name}:`))?.split(":") ?? [];
  const uid = Number(passwd[2]);
  const gid = Number(passwd[3]);
  const home = passwd[5] ?? `/home/${name}`;
  const key = join(keyDir, `${name}_ed25519`);
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", key], { stdio: "ignore" });
  mkdirSync(join(home, ".ssh"), { mode: 0o700 });
  writeFileSync(join(home, ".ssh", "authorized_keys"), readFileSync(`${key}.pub`), { mode: 0o600 });
  // The mount point of each host's staging directory (failoverd's default: ~/.failoverd).
  mkdirSync(join(home, ".failoverd"), { mode: 0o700 });
  for (const p of [join(home, ".ssh"), join(home, ".ssh", "authorized_keys"), join(home, ".failoverd")]) chownSync(p, uid, gid);
  return {
    name,
    uid,
    gid,
    home,
    key,
    remove: () => {
      spawnSync("userdel", ["--remove", name], { stdio: "ignore" });
    },
  };
}

/** The stand-in for systemctl on a test host: the two commands the sudoers rule grants, as Debian's unit does them. */
const SYSTEMCTL = `#!/bin/sh
# systemctl on a failoverd test host (no systemd runs in a test). Like Debian's haproxy.service with
# CONFIG="/etc/haproxy/haproxy.cfg -f /etc/haproxy/failoverd.cfg" in /etc/default/haproxy.
pid=$(cat /run/haproxy/haproxy.pid) || exit 1
case "$*" in
  "reload-or-restart haproxy") ${HAPROXY} -c -q -f /etc/haproxy/haproxy.cfg -f /etc/haproxy/failoverd.cfg && exec kill -USR2 "$pid" ;;
  "start haproxy") exec kill -0 "$pid" ;;
  *) echo "systemctl stand-in: '$*' is none of failoverd's commands" >&2; exit 1 ;;
esac
`;

export interface HostsOptions {
  readonly user: TestUser;
  /** The SSH port every host listens on (at its own address). */
  readonly port: number;
  /** sudoers.d content of every host: the rule under test. */
  readonly sudoers: string;
  /** The host config as the image ships it, for a host at `address`. */
  readonly hostConfig: (address: string, host: string) => string;
}

export interface SshHost {
  readonly host: string;
  readonly address: string;
  /** What /etc/haproxy is on this host. */
  readonly etc: string;
  readonly sshdPid: number;
  readonly haproxyPid: number;
  /** The host config as written at launch: it must stay byte for byte. */
  readonly hostConfig: string;
  /** PIDs of the HAProxy master's current workers. */
  workers(): number[];
  stop(): Promise<void>;
}

/** The hosts of one test: one AMI host key (a replacement is trusted like the original), one sudoers rule. */
export class SshHosts {
  readonly dir: string;
  readonly hostKey: string;
  private readonly sudoersDir: string;
  private readonly systemctl: string;
  private readonly started: SshHost[] = [];

  constructor(private readonly o: HostsOptions) {
    this.dir = mkdtempSync(join(tmpdir(), "failoverd-ssh-hosts-"));
    this.hostKey = join(this.dir, "ami_host_ed25519");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "ami", "-f", this.hostKey], { stdio: "ignore" });
    this.sudoersDir = join(this.dir, "sudoers.d");
    mkdirSync(this.sudoersDir, { mode: 0o750 });
    writeFileSync(join(this.sudoersDir, "failoverd"), o.sudoers, { mode: 0o440 });
    this.systemctl = join(this.dir, "systemctl");
    writeFileSync(this.systemctl, SYSTEMCTL, { mode: 0o755 });
    if (!existsSync("/run/sshd")) mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  }

  /** Boots a host as its image would: sshd, and HAProxy on the host config with an empty failoverd file. */
  async start(host: string, address: string): Promise<SshHost> {
    const root = join(this.dir, `${host}-${address}`);
    const etc = join(root, "etc-haproxy");
    const run = join(root, "run-haproxy");
    const stage = join(root, "stage");
    for (const d of [etc, run, stage]) mkdirSync(d, { recursive: true, mode: 0o755 });
    chmodSync(stage, 0o700);
    chownSync(stage, this.o.user.uid, this.o.user.gid);
    const hostConfig = this.o.hostConfig(address, host);
    writeFileSync(join(etc, "haproxy.cfg"), hostConfig, { mode: 0o644 });
    writeFileSync(join(etc, "failoverd.cfg"), "", { mode: 0o600 });
    const pidFile = join(root, "sshd.pid");
    const config = join(root, "sshd_config");
    writeFileSync(
      config,
      [
        `Port ${this.o.port}`,
        `ListenAddress ${address}`,
        `HostKey ${this.hostKey}`,
        `PidFile ${pidFile}`,
        "UsePAM no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PubkeyAuthentication yes",
        `AllowUsers ${this.o.user.name}`,
        "LogLevel VERBOSE",
        "",
      ].join("\n"),
    );
    const log = join(root, "sshd.log");
    const binds: [string, string][] = [
      [etc, "/etc/haproxy"],
      [run, "/run/haproxy"],
      [stage, join(this.o.user.home, ".failoverd")],
      [this.sudoersDir, "/etc/sudoers.d"],
      [this.systemctl, "/usr/bin/systemctl"],
    ];
    // Test setup only: the mounts, then sshd (which daemonizes and keeps the namespace alive).
    const script = [...binds.map(([from, to]) => `mount --bind '${from}' '${to}'`), `exec /usr/sbin/sshd -f '${config}' -E '${log}'`].join(" && ");
    const r = spawnSync("unshare", ["--mount", "--propagation", "private", "/bin/sh", "-c", script], { encoding: "utf8", timeout: 30_000 });
    if (r.status !== 0) throw new Error(`sshd for ${host} did not start (exit ${r.status}): ${r.stderr} ${existsSync(log) ? readFileSync(log, "utf8") : ""}`);
    const deadline = Date.now() + 30_000;
    // The pid file exists a moment before sshd has written its pid into it.
    const pidIn = () => (existsSync(pidFile) ? Number(/^(\d+)\n/.exec(readFileSync(pidFile, "utf8"))?.[1] ?? 0) : 0);
    while (pidIn() === 0) {
      if (Date.now() > deadline) throw new Error(`sshd for ${host} wrote no pid file: ${existsSync(log) ? readFileSync(log, "utf8") : ""}`);
      await sleep(20);
    }
    const sshdPid = pidIn();
    const sshd = { pid: sshdPid, marker: config };
    // HAProxy in the host's namespace, on the host config and failoverd's (empty) file, as the image boots it.
    const hlog = openSync(join(root, "haproxy.log"), "a");
    const child = spawn(
      "nsenter",
      [`--mount=/proc/${sshdPid}/ns/mnt`, "--", HAPROXY, "-W", "-db", "-p", "/run/haproxy/haproxy.pid", "-f", "/etc/haproxy/haproxy.cfg", "-f", "/etc/haproxy/failoverd.cfg"],
      { detached: true, stdio: ["ignore", hlog, hlog] },
    );
    closeSync(hlog);
    child.on("error", () => {});
    child.unref();
    const haproxyPid = child.pid ?? 0;
    const haproxy = { pid: haproxyPid, marker: "/etc/haproxy/failoverd.cfg" };
    const h: SshHost = {
      host,
      address,
      etc,
      sshdPid,
      haproxyPid,
      hostConfig,
      workers: () => {
        try {
          return readFileSync(`/proc/${haproxyPid}/task/${haproxyPid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
        } catch {
          return [];
        }
      },
      stop: async () => {
        await stop(haproxy, "SIGKILL");
        await stop(sshd, "SIGKILL");
      },
    };
    this.started.push(h);
    try {
      await waitForPort(address, this.o.port, 30_000);
      while (!existsSync(join(run, "haproxy.pid")) || h.workers().length === 0) {
        // Gone, not merely "not yet haproxy": between fork and exec the child's command line is still node's.
        if (isGone(haproxyPid)) throw new Error(`haproxy of ${host} exited: ${readFileSync(join(root, "haproxy.log"), "utf8")}`);
        if (Date.now() > deadline) throw new Error(`haproxy of ${host} did not start: ${readFileSync(join(root, "haproxy.log"), "utf8")}`);
        await sleep(20);
      }
    } catch (e) {
      await h.stop();
      throw e;
    }
    return h;
  }

  /** Stops every host this set started, by PID, and removes its files. */
  async stopAll(): Promise<void> {
    await Promise.all(this.started.map((h) => h.stop()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
