/**
 * Remote configuration over SSH against a real sshd on 127.0.0.1 (generated keys): host key verification by
 * known_hosts and by pinned fingerprint, refusals of a mismatch, failoverd's HAProxy file uploaded, checked with
 * `haproxy -c` beside the host's config and moved into place, then the reload (a harmless reload command that touches
 * a marker), a file `haproxy -c` rejects beside the host's config, and the Redis preparation commands in order.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ProviderError } from "../../src/errors.ts";
import { fingerprintOf } from "../../src/providers/ssh-hostkeys.ts";
import { runPreparation, SshProxies, SshShell, type SshShellOptions } from "../../src/providers/ssh.ts";
import type { Machine } from "../../src/providers/types.ts";
import { type Sshd, startSshd } from "../helpers/sshd.ts";

let sshd: Sshd;
let machine: Machine;

before(async () => {
  sshd = await startSshd();
  machine = { id: "i-0000000000000a5a5", host: "haproxy1", role: "haproxy", address: sshd.address };
});
after(async () => {
  await sshd?.stop();
});

const signal = () => AbortSignal.timeout(15_000);
/** A configuration change is five commands on one connection: a generous deadline on a loaded machine. */
const applySignal = () => AbortSignal.timeout(90_000);

function shell(o: Partial<SshShellOptions> = {}): SshShell {
  return new SshShell({
    user: sshd.user,
    port: sshd.port,
    privateKey: () => readFileSync(sshd.userKey, "utf8"),
    fingerprints: [],
    connectTimeoutMs: 5000,
    commandTimeoutMs: 10_000,
    ...o,
  });
}

function knownHosts(line: string): string {
  const f = join(sshd.dir, `known_hosts.${Math.random().toString(36).slice(2)}`);
  writeFileSync(f, `# test\n[${sshd.address}]:${sshd.port} ${line}\n`);
  return f;
}

const refusedAsMismatch = (e: unknown) => {
  assert.ok(e instanceof ProviderError, String(e));
  assert.equal(e.code, "HostKeyMismatch");
  assert.equal(e.retryable, false);
  assert.match(e.message, /^refusing SSH to haproxy1/);
  assert.ok(e.message.includes(sshd.hostFingerprint), "names the fingerprint the server presented");
  return true;
};

describe("host key verification against a real sshd", () => {
  it("our SHA256 fingerprint is ssh-keygen's", () => {
    const blob = Buffer.from(sshd.hostKeyLine.split(" ")[1]!, "base64");
    assert.equal(fingerprintOf(blob), sshd.hostFingerprint);
  });

  it("a known_hosts entry with the server's key: the command runs", async () => {
    const r = await shell({ knownHostsFile: knownHosts(sshd.hostKeyLine) }).run(machine, "echo hello; echo oops >&2; exit 3", signal());
    assert.deepEqual(r, { code: 3, stdout: "hello\n", stderr: "oops\n" });
  });

  it("a pinned fingerprint of the server's key: the command runs", async () => {
    const r = await shell({ fingerprints: [sshd.hostFingerprint] }).run(machine, "echo pinned", signal());
    assert.equal(r.stdout, "pinned\n");
  });

  it("a pinned fingerprint of another key is a mismatch: refused before any command runs", async () => {
    const marker = join(sshd.dir, "must-not-exist");
    await assert.rejects(shell({ fingerprints: [sshd.otherFingerprint] }).run(machine, `touch ${marker}`, signal()), refusedAsMismatch);
    assert.equal(existsSync(marker), false);
  });

  it("known_hosts holding another key for this address is refused, and says so", async () => {
    await assert.rejects(shell({ knownHostsFile: knownHosts(sshd.otherKeyLine) }).run(machine, "true", signal()), (e: unknown) => {
      refusedAsMismatch(e);
      assert.match((e as Error).message, /holds another key for \[127\.0\.0\.1\]:\d+/);
      return true;
    });
  });

  it("an address known_hosts does not list is refused", async () => {
    const f = join(sshd.dir, "known_hosts.other-host");
    writeFileSync(f, `[127.0.0.2]:${sshd.port} ${sshd.hostKeyLine}\n`);
    await assert.rejects(shell({ knownHostsFile: f }).run(machine, "true", signal()), (e: unknown) => {
      refusedAsMismatch(e);
      assert.match((e as Error).message, /neither in .* nor in ssh\.hostKeyFingerprints/);
      return true;
    });
  });

  it("a key revoked in known_hosts is refused even when pinned", async () => {
    const f = join(sshd.dir, "known_hosts.revoked");
    writeFileSync(f, `@revoked * ${sshd.hostKeyLine}\n`);
    await assert.rejects(shell({ knownHostsFile: f, fingerprints: [sshd.hostFingerprint] }).run(machine, "true", signal()), /marked @revoked/);
  });

  it("a user key the server does not accept fails as an authentication problem, not a host key one", async () => {
    const wrong = join(sshd.dir, "other_ed25519");
    await assert.rejects(shell({ fingerprints: [sshd.hostFingerprint], privateKey: () => readFileSync(wrong, "utf8") }).run(machine, "true", signal()), (e: unknown) => {
      assert.ok(e instanceof ProviderError);
      assert.equal(e.code, "AuthFailed");
      assert.match(e.message, /ssh\.user.*authorized_keys/);
      return true;
    });
  });

  it("a command that outlives ssh.commandTimeoutMs is cut off", async () => {
    const started = Date.now();
    await assert.rejects(shell({ fingerprints: [sshd.hostFingerprint], commandTimeoutMs: 300 }).run(machine, "sleep 5", signal()), (e: unknown) => {
      assert.ok(e instanceof ProviderError);
      assert.equal(e.code, "CommandTimeout");
      assert.match(e.message, /did not finish within 300 ms/);
      return true;
    });
    assert.ok(Date.now() - started < 4000);
  });
});

describe("HAProxy over SSH: failoverd's own file beside the host's config", () => {
  const HOST = `global
    maxconn 100
defaults
    mode http
    timeout connect 1s
    timeout client 10s
    timeout server 10s
frontend unrelated
    bind 127.0.0.1:18080
    http-request return status 200
`;
  const VALID = `global
    stats socket ipv4@127.0.0.1:18999 level admin
defaults
    mode tcp
    timeout connect 1s
    timeout client 10s
    timeout server 10s
frontend fe_redis_8001
    bind 127.0.0.1:18001
    default_backend be_redis_9001
backend be_redis_9001
    server redis1 127.0.0.1:19001 check
`;
  let dir: string;
  let proxies: SshProxies;
  let mainConfig: string;
  let config: string;
  let staging: string;
  let reloaded: string;
  let started: string;

  before(() => {
    dir = sshd.dir;
    mainConfig = join(dir, "haproxy.cfg");
    config = join(dir, "failoverd.cfg");
    staging = join(dir, "stage", "failoverd.cfg");
    reloaded = join(dir, "reloaded");
    started = join(dir, "started");
    writeFileSync(mainConfig, HOST);
    proxies = new SshProxies(
      shell({ fingerprints: [sshd.hostFingerprint] }),
      {
        mainConfig,
        config,
        stagingPath: staging,
        haproxy: "/usr/sbin/haproxy",
        install: "/usr/bin/install",
        mv: "/usr/bin/mv",
        reload: ["/usr/bin/touch", reloaded],
        start: ["/usr/bin/touch", started],
      },
      sshd.user,
    );
  });

  it("upload, copy, haproxy -c beside the host's config, move, reload: failoverd's file is exactly the text", async () => {
    await proxies.applyConfig(machine, VALID, applySignal());
    assert.equal(readFileSync(config, "utf8"), VALID);
    assert.equal(statSync(config).mode & 0o777, 0o600, "the file may hold the Redis password: root's only");
    assert.equal(existsSync(reloaded), true);
    assert.equal(existsSync(started), false);
    assert.equal(existsSync(`${config}.new`), false, "the candidate was moved into place");
    assert.equal(readFileSync(mainConfig, "utf8"), HOST, "the host's config is untouched");
  });

  it("reload: false writes and only makes sure HAProxy runs", async () => {
    rmSync(reloaded);
    const next = VALID.replace("18001", "18002");
    await proxies.applyConfig(machine, next, applySignal(), { reload: false });
    assert.equal(readFileSync(config, "utf8"), next);
    assert.equal(existsSync(reloaded), false, "no second reload");
    assert.equal(existsSync(started), true);
  });

  it("a file that clashes with the host's config is refused by haproxy -c: failoverd's file is kept, nothing reloaded", async () => {
    const before = readFileSync(config, "utf8");
    rmSync(started);
    // Valid on its own; a second proxy named `unrelated` is not, beside the host's config.
    const clash = `${VALID}frontend unrelated\n    bind 127.0.0.1:18003\n    default_backend be_redis_9001\n`;
    await assert.rejects(proxies.applyConfig(machine, clash, applySignal()), (e: unknown) => {
      assert.ok(e instanceof ProviderError);
      assert.equal(e.code, "ConfigRejected");
      assert.equal(e.retryable, false);
      assert.match(e.message, /haproxy -c rejects failoverd's new file beside .*haproxy\.cfg on haproxy1 .*unrelated/);
      assert.match(e.message, /is unchanged and HAProxy was not reloaded/);
      return true;
    });
    assert.equal(readFileSync(config, "utf8"), before);
    assert.equal(readFileSync(mainConfig, "utf8"), HOST);
    assert.equal(existsSync(reloaded), false);
    assert.equal(existsSync(started), false);
  });

  it("dry-run describes the commands it would run, with the paths filled in", () => {
    const lines = proxies.describeApply(machine, VALID).join("\n");
    assert.match(lines, new RegExp(`SSH ${sshd.user}@127\\.0\\.0\\.1:${sshd.port} \\(host key checked against 1 pinned fingerprint\\(s\\)\\)`));
    assert.ok(lines.includes(`cat > ${staging}`));
    assert.ok(lines.includes(`sudo -n /usr/sbin/haproxy -c -f ${mainConfig} -f ${config}.new`));
    assert.ok(lines.includes(`sudo -n /usr/bin/mv -f ${config}.new ${config}`));
  });
});

describe("Redis preparation commands", () => {
  it("run in order, with {host}, {address} and {ports} filled in", async () => {
    const out = join(sshd.dir, "prepared");
    const redis: Machine = { id: "i-0000000000000b0b0", host: "redis1", role: "redis", address: sshd.address };
    await runPreparation(
      shell({ fingerprints: [sshd.hostFingerprint] }),
      redis,
      [`echo "1 {host}" >> ${out}`, `echo "2 {address}" >> ${out}`, `for p in {ports}; do echo "3 $p" >> ${out}; done`],
      [9001, 9002],
      signal(),
    );
    assert.equal(readFileSync(out, "utf8"), "1 redis1\n2 127.0.0.1\n3 9001\n3 9002\n");
  });

  it("a failing command stops the rest and fails with its exit status", async () => {
    const out = join(sshd.dir, "prepared-fail");
    const redis: Machine = { id: "i-0000000000000b0b1", host: "redis2", role: "redis", address: sshd.address };
    await assert.rejects(
      runPreparation(shell({ fingerprints: [sshd.hostFingerprint] }), redis, [`echo one >> ${out}`, "echo cannot start redis >&2; exit 7", `echo three >> ${out}`], [9001], signal()),
      (e: unknown) => {
        assert.ok(e instanceof ProviderError);
        assert.equal(e.code, "PrepareFailed");
        assert.match(e.message, /preparation command 2\/3 on redis2 \(i-0000000000000b0b1\) exited 7: .*cannot start redis/);
        return true;
      },
    );
    assert.equal(readFileSync(out, "utf8"), "one\n");
  });
});
