/**
 * TLS for the Redis connections failoverd makes (checks, administration, traffic), against a real redis-server
 * with a TLS port on 127.73.0.1 and certificates generated for the test. Verification is always on.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, test } from "node:test";
import { RedisAdminClient } from "../../src/admin/redis.ts";
import { checkRedis } from "../../src/checks/redis.ts";
import { Checker } from "../../src/checks/round.ts";
import { redisAuthOf } from "../../src/providers/index.ts";
import { whyNotFree } from "../../src/providers/local/processes.ts";
import { Traffic } from "../../src/simulate/traffic.ts";
import { parseTopology } from "../../src/topology/load.ts";

const ADDRESS = "127.73.0.1";
const PORT = 9443;

function makeCa(dir: string, name: string): { crt: string; key: string } {
  const key = join(dir, `${name}.key`);
  const crt = join(dir, `${name}.crt`);
  execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt, "-days", "1", "-subj", `/CN=${name}`], { stdio: "ignore" });
  return { crt, key };
}

describe("Redis over TLS", { timeout: 60_000 }, () => {
  let dir: string;
  let server: ChildProcess;
  let ca: { crt: string; key: string };
  let otherCa: { crt: string; key: string };

  before(async () => {
    assert.equal(await whyNotFree(ADDRESS, PORT), null);
    dir = mkdtempSync(join(tmpdir(), "failoverd-tls-"));
    ca = makeCa(dir, "ca");
    otherCa = makeCa(dir, "other-ca");
    execFileSync("openssl", ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", join(dir, "srv.key"), "-out", join(dir, "srv.csr"), "-subj", "/CN=redis"], { stdio: "ignore" });
    writeFileSync(join(dir, "ext"), `subjectAltName=IP:${ADDRESS}\n`);
    execFileSync("openssl", ["x509", "-req", "-in", join(dir, "srv.csr"), "-CA", ca.crt, "-CAkey", ca.key, "-CAcreateserial", "-out", join(dir, "srv.crt"), "-days", "1", "-extfile", join(dir, "ext")], { stdio: "ignore" });
    server = spawn("redis-server", [
      "--port", "0", "--tls-port", String(PORT), "--bind", ADDRESS,
      "--tls-cert-file", join(dir, "srv.crt"), "--tls-key-file", join(dir, "srv.key"), "--tls-ca-cert-file", ca.crt,
      "--tls-auth-clients", "no", "--save", "", "--appendonly", "no", "--dir", dir,
    ], { stdio: "ignore" });
    for (let i = 0; i < 100 && (await whyNotFree(ADDRESS, PORT)) === null; i++) await sleep(20);
  });

  after(async () => {
    if (server.exitCode === null) {
      const exited = new Promise((r) => server.once("exit", r));
      server.kill("SIGTERM");
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  const tlsConfig = (caPath: string) =>
    parseTopology(
      readFileSync("config/sandbox.yaml", "utf8").replace("stateDir: .failoverd/state", `stateDir: .failoverd/state\nredis:\n  tls: { ca: ${caPath} }`),
      "tls.yaml",
    );

  test("redis.tls.ca in the config gives every client a verified TLS connection: the check sees the server", async () => {
    const auth = redisAuthOf(tlsConfig(ca.crt));
    assert.match(auth.tls?.ca ?? "", /BEGIN CERTIFICATE/);
    const client = new RedisAdminClient({ address: ADDRESS, port: PORT }, 2000, auth);
    try {
      const o = await checkRedis({ host: "tls", port: PORT, address: ADDRESS }, client, 2000);
      assert.equal(o.ok, true, o.failure?.message);
      assert.equal(o.role, "primary");
    } finally {
      client.close();
    }
  });

  test("the daemon's own probe connection (Checker) is verified TLS too: ok with the CA, refused with another", async () => {
    for (const [caPath, ok] of [[ca.crt, true], [otherCa.crt, false]] as const) {
      const checker = new Checker(2000, redisAuthOf(tlsConfig(caPath)));
      try {
        const o = await checker.check({ type: "redis", host: "tls", port: PORT, address: ADDRESS });
        assert.equal(o.ok, ok, o.failure?.message);
      } finally {
        checker.close();
      }
    }
  });

  test("a server whose certificate another CA signed is refused (verification is on)", async () => {
    const client = new RedisAdminClient({ address: ADDRESS, port: PORT }, 2000, redisAuthOf(tlsConfig(otherCa.crt)));
    try {
      const o = await checkRedis({ host: "tls", port: PORT, address: ADDRESS }, client, 2000);
      assert.equal(o.ok, false);
    } finally {
      client.close();
    }
  });

  test("a client without TLS gets no answer from the TLS port", async () => {
    const client = new RedisAdminClient({ address: ADDRESS, port: PORT }, 500, {});
    try {
      const o = await checkRedis({ host: "tls", port: PORT, address: ADDRESS }, client, 500);
      assert.equal(o.ok, false);
    } finally {
      client.close();
    }
  });

  test("simulate's traffic writes over TLS too", async () => {
    const traffic = new Traffic({ address: ADDRESS, port: PORT, auth: redisAuthOf(tlsConfig(ca.crt)), prefix: "tls" });
    traffic.start();
    await sleep(300);
    await traffic.stop();
    assert.ok(traffic.acks.length > 10, `only ${traffic.acks.length} writes acknowledged`);
  });

  test("an unreadable CA file is a config error naming the field", () => {
    assert.throws(() => redisAuthOf(tlsConfig(join(dir, "missing.crt"))), /redis\.tls\.ca: cannot read .*missing\.crt: ENOENT/);
  });
});
