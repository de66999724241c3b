/** known_hosts matching and host key verdicts (pure): plain and hashed names, ports, wildcards, negation, @revoked. */
import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { fingerprintOf, knownHostsName, patternsMatch, verifyHostKey } from "../../src/providers/ssh-hostkeys.ts";

const key = (n: number) => Buffer.concat([Buffer.from("\0\0\0\vssh-ed25519\0\0\0 "), Buffer.alloc(32, n)]);
const b64 = (k: Buffer) => k.toString("base64");
const hashed = (name: string) => {
  const salt = randomBytes(20);
  return `|1|${salt.toString("base64")}|${createHmac("sha1", salt).update(name).digest("base64")}`;
};

describe("known_hosts host patterns", () => {
  const cases: [string, string, boolean][] = [
    ["10.0.2.11", "10.0.2.11", true],
    ["10.0.2.11", "10.0.2.12", false],
    ["haproxy1,10.0.2.11", "10.0.2.11", true],
    ["10.0.2.*", "10.0.2.99", true],
    ["10.0.2.?", "10.0.2.10", false],
    ["10.0.*,!10.0.2.11", "10.0.2.11", false],
    ["10.0.*,!10.0.2.11", "10.0.2.12", true],
    ["[10.0.2.11]:2222", "[10.0.2.11]:2222", true],
    ["10.0.2.11", "[10.0.2.11]:2222", false],
  ];
  for (const [patterns, name, expected] of cases) {
    it(`${patterns} ${expected ? "names" : "does not name"} ${name}`, () => assert.equal(patternsMatch(patterns, name), expected));
  }
  it("hashed names match only their own name", () => {
    const h = hashed("[10.0.2.11]:2222");
    assert.equal(patternsMatch(h, "[10.0.2.11]:2222"), true);
    assert.equal(patternsMatch(h, "10.0.2.11"), false);
  });
  it("port 22 is the bare address, other ports are bracketed", () => {
    assert.equal(knownHostsName("10.0.2.11", 22), "10.0.2.11");
    assert.equal(knownHostsName("10.0.2.11", 2222), "[10.0.2.11]:2222");
  });
});

describe("host key verdicts", () => {
  const k1 = key(1);
  const k2 = key(2);
  it("a matching known_hosts entry is trusted", () => {
    const v = verifyHostKey(k1, "10.0.2.11", 22, { knownHosts: `${hashed("10.0.2.11")} ssh-ed25519 ${b64(k1)}\n`, knownHostsFile: "/kh", fingerprints: [] });
    assert.deepEqual(v, { ok: true, via: "/kh" });
  });
  it("a pinned fingerprint is trusted", () => {
    assert.deepEqual(verifyHostKey(k1, "10.0.2.11", 22, { fingerprints: [fingerprintOf(k1)] }), { ok: true, via: "ssh.hostKeyFingerprints" });
  });
  it("another key for a known host is refused, naming both fingerprints", () => {
    const v = verifyHostKey(k2, "10.0.2.11", 22, { knownHosts: `10.0.2.11 ssh-ed25519 ${b64(k1)}\n`, knownHostsFile: "/kh", fingerprints: [] });
    assert.equal(v.ok, false);
    assert.ok(!v.ok && v.why.includes(fingerprintOf(k2)) && v.why.includes(fingerprintOf(k1)) && /holds another key/.test(v.why));
  });
  it("an unknown host with no pin is refused", () => {
    const v = verifyHostKey(k1, "10.0.2.11", 22, { knownHosts: `10.0.2.12 ssh-ed25519 ${b64(k1)}\n`, fingerprints: [] });
    assert.equal(v.ok, false);
  });
  it("@revoked wins over a pin; @cert-authority lines are not trust for a plain key", () => {
    assert.equal(verifyHostKey(k1, "10.0.2.11", 22, { knownHosts: `@revoked * ssh-ed25519 ${b64(k1)}\n`, fingerprints: [fingerprintOf(k1)] }).ok, false);
    assert.equal(verifyHostKey(k1, "10.0.2.11", 22, { knownHosts: `@cert-authority * ssh-ed25519 ${b64(k1)}\n`, fingerprints: [] }).ok, false);
  });
});
