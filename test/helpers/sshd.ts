/**
 * A real OpenSSH server for tests (Debian's openssh-server): generated host and user keys, listening on a free port
 * of 127.0.0.1, key authentication only, everything (config, keys, pid file, log) in a temporary directory.
 * Stopped by the PID in its pid file.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { canConnect } from "../../src/admin/tcp.ts";

export const SSHD = "/usr/sbin/sshd";

export interface Sshd {
  readonly dir: string;
  readonly address: string;
  readonly port: number;
  readonly user: string;
  readonly userKey: string;
  /** The server's public host key line (`ssh-ed25519 AAAA...`). */
  readonly hostKeyLine: string;
  /** `ssh-keygen -lf` of the host key: SHA256:... */
  readonly hostFingerprint: string;
  /** Another host key, never served: for mismatches. */
  readonly otherKeyLine: string;
  readonly otherFingerprint: string;
  stop(): Promise<void>;
}

export function keygen(file: string): void {
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "failoverd-test", "-f", file], { stdio: "ignore" });
}

export function fingerprint(pubFile: string): string {
  const out = execFileSync("ssh-keygen", ["-l", "-E", "sha256", "-f", pubFile], { encoding: "utf8" });
  const m = /(SHA256:[A-Za-z0-9+/]+)/.exec(out);
  if (!m) throw new Error(`ssh-keygen -l printed no fingerprint: ${out}`);
  return m[1]!;
}

async function freePort(address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on("error", reject);
    srv.listen(0, address, () => {
      const a = srv.address();
      srv.close(() => (typeof a === "object" && a ? resolve(a.port) : reject(new Error("no port"))));
    });
  });
}

export async function startSshd(): Promise<Sshd> {
  const dir = mkdtempSync(join(tmpdir(), "failoverd-sshd-"));
  const address = "127.0.0.1";
  const port = await freePort(address);
  const hostKey = join(dir, "host_ed25519");
  const otherKey = join(dir, "other_ed25519");
  const userKey = join(dir, "user_ed25519");
  for (const k of [hostKey, otherKey, userKey]) keygen(k);
  const pidFile = join(dir, "sshd.pid");
  const log = join(dir, "sshd.log");
  const config = join(dir, "sshd_config");
  writeFileSync(
    config,
    [
      `Port ${port}`,
      `ListenAddress ${address}`,
      `HostKey ${hostKey}`,
      `PidFile ${pidFile}`,
      `AuthorizedKeysFile ${userKey}.pub`,
      "UsePAM no",
      "StrictModes no",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "PubkeyAuthentication yes",
      "PermitRootLogin prohibit-password",
      `AllowUsers ${userInfo().username}`,
      "LogLevel VERBOSE",
      "",
    ].join("\n"),
  );
  // Privilege separation needs this directory (root-owned, not group/world-writable).
  if (!existsSync("/run/sshd")) mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  const r = spawnSync(SSHD, ["-f", config, "-E", log], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`sshd did not start (exit ${r.status}): ${r.stderr} ${existsSync(log) ? readFileSync(log, "utf8") : ""}`);
  const deadline = Date.now() + 10_000;
  while (!(existsSync(pidFile) && (await canConnect(address, port, 200)))) {
    if (Date.now() > deadline) throw new Error(`sshd is not listening on ${address}:${port}: ${existsSync(log) ? readFileSync(log, "utf8") : "no log"}`);
    await sleep(20);
  }
  const pid = Number(readFileSync(pidFile, "utf8").trim());
  const line = (pub: string) => readFileSync(pub, "utf8").trim().split(/\s+/).slice(0, 2).join(" ");
  return {
    dir,
    address,
    port,
    user: userInfo().username,
    userKey,
    hostKeyLine: line(`${hostKey}.pub`),
    hostFingerprint: fingerprint(`${hostKey}.pub`),
    otherKeyLine: line(`${otherKey}.pub`),
    otherFingerprint: fingerprint(`${otherKey}.pub`),
    stop: async () => {
      try {
        process.kill(pid, "SIGTERM");
      } catch {}
      const until = Date.now() + 5000;
      while (Date.now() < until) {
        try {
          process.kill(pid, 0);
        } catch {
          break;
        }
        await sleep(20);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
