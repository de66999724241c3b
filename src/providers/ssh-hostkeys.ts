/**
 * SSH host key verification: a presented key is trusted only when an OpenSSH known_hosts entry for the address
 * holds exactly that key, or its SHA256 fingerprint is pinned. Everything else (an unknown host, a different key,
 * a revoked key) is refused with the fingerprint that was presented, so a person can compare it out of band.
 */
import { createHash, createHmac } from "node:crypto";

export interface KnownHostEntry {
  readonly marker: "@revoked" | "@cert-authority" | null;
  readonly patterns: string;
  readonly keyType: string;
  readonly key: Buffer;
}

export interface HostKeyPolicy {
  /** The text of a known_hosts file, if one is configured. */
  readonly knownHosts?: string | undefined;
  /** The file's name, for messages. */
  readonly knownHostsFile?: string | undefined;
  /** Pinned `SHA256:...` fingerprints. */
  readonly fingerprints: readonly string[];
}

export type HostKeyVerdict = { readonly ok: true; readonly via: string } | { readonly ok: false; readonly why: string; readonly fingerprint: string };

/** `SHA256:<base64 without padding>`, as `ssh-keygen -l` prints it. */
export function fingerprintOf(key: Buffer): string {
  return `SHA256:${createHash("sha256").update(key).digest("base64").replace(/=+$/, "")}`;
}

export function parseKnownHosts(text: string): KnownHostEntry[] {
  const out: KnownHostEntry[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const fields = line.split(/\s+/);
    const marker = fields[0] === "@revoked" || fields[0] === "@cert-authority" ? (fields.shift() as KnownHostEntry["marker"]) : null;
    const [patterns, keyType, key] = fields;
    if (!patterns || !keyType || !key) continue;
    out.push({ marker, patterns, keyType, key: Buffer.from(key, "base64") });
  }
  return out;
}

/** How known_hosts names a host: the bare address on port 22, `[address]:port` otherwise. */
export function knownHostsName(address: string, port: number): string {
  return port === 22 ? address : `[${address}]:${port}`;
}

/** Whether a known_hosts host field (plain patterns with * ? and !negation, or one hashed |1|salt|hash) names `name`. */
export function patternsMatch(patterns: string, name: string): boolean {
  if (patterns.startsWith("|1|")) {
    const [, , salt, hash] = patterns.split("|");
    if (!salt || !hash) return false;
    const mac = createHmac("sha1", Buffer.from(salt, "base64")).update(name).digest("base64");
    return mac === hash;
  }
  let matched = false;
  for (const p of patterns.split(",")) {
    const negated = p.startsWith("!");
    const glob = negated ? p.slice(1) : p;
    if (globMatch(glob.toLowerCase(), name.toLowerCase())) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

function globMatch(glob: string, s: string): boolean {
  const re = new RegExp(`^${glob.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".")}$`);
  return re.test(s);
}

/** The key types known_hosts lists for a host (to ask the server for one of them). */
export function knownKeyTypes(entries: readonly KnownHostEntry[], name: string): string[] {
  return [...new Set(entries.filter((e) => e.marker === null && patternsMatch(e.patterns, name)).map((e) => e.keyType))];
}

export function verifyHostKey(key: Buffer, address: string, port: number, policy: HostKeyPolicy): HostKeyVerdict {
  const fingerprint = fingerprintOf(key);
  const name = knownHostsName(address, port);
  const entries = policy.knownHosts === undefined ? [] : parseKnownHosts(policy.knownHosts);
  const forHost = entries.filter((e) => patternsMatch(e.patterns, name));
  if (forHost.some((e) => e.marker === "@revoked" && e.key.equals(key))) {
    return { ok: false, fingerprint, why: `its host key ${fingerprint} is marked @revoked in ${policy.knownHostsFile ?? "known_hosts"}` };
  }
  if (forHost.some((e) => e.marker === null && e.key.equals(key))) return { ok: true, via: policy.knownHostsFile ?? "known_hosts" };
  if (policy.fingerprints.includes(fingerprint)) return { ok: true, via: "ssh.hostKeyFingerprints" };
  const known = forHost.filter((e) => e.marker === null);
  const why =
    known.length > 0
      ? `it presented host key ${fingerprint}, but ${policy.knownHostsFile ?? "known_hosts"} holds another key for ${name} (${known.map((e) => fingerprintOf(e.key)).join(", ")}): ` +
        "the machine was replaced or someone is in the middle; verify the new key out of band, then update known_hosts or ssh.hostKeyFingerprints"
      : `it presented host key ${fingerprint}, which is neither in ${policy.knownHostsFile ?? "a known_hosts file"} for ${name} nor in ssh.hostKeyFingerprints: ` +
        "verify it out of band (ssh-keygen -lf on the machine, or the AMI's baked key), then add it";
  return { ok: false, fingerprint, why };
}
