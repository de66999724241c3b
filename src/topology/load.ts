/**
 * Loads a configuration file into an immutable Topology. Every problem is reported at once, each with its path
 * (`hosts.redis1.ports[1]: 70000 is not a port`); nothing here throws anything but ConfigError.
 */
import { readFileSync } from "node:fs";
import { isMap, isPair, isScalar, isSeq, parseDocument } from "yaml";
import type { z } from "zod";
import { ConfigError, errorMessage } from "../errors.ts";
import { packagePath } from "../package-root.ts";
import { type Config, configSchema } from "./schema.ts";
import { buildTopology, type Topology } from "./topology.ts";

/** The bundled sandbox: the seed topology on loopback. Used when no --config is given. */
export const DEFAULT_CONFIG_PATH = packagePath("config", "sandbox.yaml");

export function loadTopology(path: string = DEFAULT_CONFIG_PATH): Topology {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "no such file" : code === "EISDIR" ? "is a directory" : errorMessage(e);
    throw new ConfigError(path, [`cannot read the config: ${why}`]);
  }
  return parseTopology(text, path);
}

export function parseTopology(text: string, source: string): Topology {
  const config = parseConfig(text, source);
  const problems = crossCheck(config);
  if (problems.length > 0) throw new ConfigError(source, problems);
  return buildTopology(config, source);
}

export function parseConfig(text: string, source: string): Config {
  if (text.includes("\u0000")) throw new ConfigError(source, ["is not a text file (it contains NUL bytes)"]);
  if (text.trim() === "") throw new ConfigError(source, ["the file is empty; see config/sandbox.yaml for an example"]);
  let doc: ReturnType<typeof parseDocument>;
  try {
    doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  } catch (e) {
    // The parser recurses: deep enough block nesting overflows the stack instead of reporting an error.
    throw new ConfigError(source, [`invalid YAML: ${e instanceof RangeError ? "nested too deeply" : firstLine(errorMessage(e))}`]);
  }
  if (doc.errors.length > 0) {
    throw new ConfigError(
      source,
      doc.errors.slice(0, 5).map((e) => `invalid YAML at line ${e.linePos?.[0]?.line ?? "?"}: ${firstLine(e.message)}`),
    );
  }
  const forbidden = forbiddenKeys(doc.contents);
  if (forbidden.length > 0) throw new ConfigError(source, forbidden);
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    throw new ConfigError(source, [`invalid YAML: ${firstLine(errorMessage(e))}`]);
  }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new ConfigError(source, ["the top level must be a mapping (topology:, hosts:, pairs:, ...)"]);
  }
  const result = configSchema.safeParse(raw, { reportInput: true });
  if (!result.success) throw new ConfigError(source, result.error.issues.map(formatIssue));
  return result.data;
}

export function formatIssue(issue: z.core.$ZodIssue): string {
  const path = formatPath(issue.path);
  let message = issue.message;
  if (issue.code === "unrecognized_keys") {
    message = `unknown key${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => `'${printable(k)}'`).join(", ")}`;
  } else if (issue.code === "invalid_key" && issue.issues[0]) {
    // A bad mapping key (a frontends port, a host name): the key's own rule says what is wrong.
    message = issue.issues[0].message;
  } else if (issue.code === "invalid_type" && message.startsWith("Invalid input: expected")) {
    message = issue.input === undefined ? `is required (${issue.expected})` : `must be ${article(issue.expected)}`;
  }
  return path ? `${path}: ${message}` : message;
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path) {
    if (typeof p === "number") out += `[${p}]`;
    else out += out === "" ? printable(String(p)) : `.${printable(String(p))}`;
  }
  return out;
}

/** Keys come from the user's file: control characters would break the one-line message. */
function printable(s: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: that is the point
  const clean = s.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
  return clean.length > 60 ? `${clean.slice(0, 60)}...` : clean;
}

/**
 * Keys that a JavaScript object cannot hold as its own: `__proto__` would set the object's prototype instead, and
 * the entry would vanish without a word (a host named so would simply not exist). Refused wherever they appear.
 */
function forbiddenKeys(node: unknown, path: PropertyKey[] = []): string[] {
  if (isMap(node)) {
    return node.items.flatMap((pair) => {
      if (!isPair(pair)) return [];
      const key = isScalar(pair.key) ? String(pair.key.value) : null;
      if (key === "__proto__") return [`${formatPath([...path, key])}: '__proto__' cannot be a key (rename it)`];
      return forbiddenKeys(pair.value, key === null ? path : [...path, key]);
    });
  }
  if (isSeq(node)) return node.items.flatMap((item, i) => forbiddenKeys(item, [...path, i]));
  return [];
}

/**
 * Null when `address` (a valid dotted IPv4) can be a machine's address; else why not. Loopback is judged with the
 * provider (`addressRules`).
 */
export function whyNotHostAddress(address: string): string | null {
  const [a = 0] = address.split(".").map(Number);
  if (address === "0.0.0.0") return "0.0.0.0 means any address, not a machine's";
  if (a === 0) return `${address} is in 0.0.0.0/8 ("this network"), not a machine's address`;
  if (address === "255.255.255.255") return "255.255.255.255 is the broadcast address, not a machine's";
  if (a >= 224 && a <= 239) return `${address} is a multicast address, not a machine's`;
  if (a >= 240) return `${address} is reserved (240.0.0.0/4), not a machine's address`;
  return null;
}

const isLoopback = (address: string) => address.startsWith("127.");

/**
 * Every address must be able to host a machine. The local provider's machines are processes on this host's loopback
 * addresses, so with it every host and pool address is loopback (127.0.0.0/8); an EC2 machine never is, so with the
 * AWS provider no address is, unless `provider.allowLoopback` says the "machines" are a lab on this host's loopback.
 */
function addressRules(config: Config): string[] {
  const p = config.provider;
  const judge = (field: string, address: string): string[] => {
    const why = whyNotHostAddress(address);
    if (why) return [`${field}: ${why}`];
    if (p.kind === "local" && !isLoopback(address)) {
      return [`${field}: ${address} is not a loopback address; the local provider runs its machines on 127.0.0.0/8 (use provider kind aws for real machines)`];
    }
    if (p.kind === "aws" && !p.allowLoopback && isLoopback(address)) {
      return [`${field}: ${address} is a loopback address, which no EC2 machine has (a sandbox address? provider.allowLoopback: true is only for a lab on this host's loopback)`];
    }
    return [];
  };
  const problems = Object.entries(config.hosts).flatMap(([name, h]) => judge(`hosts.${name}.address`, h.address));
  if (p.kind === "local" && p.addressPool) {
    for (const role of ["redis", "haproxy"] as const) {
      for (const [i, a] of p.addressPool[role].entries()) problems.push(...judge(`provider.addressPool.${role}[${i}]`, a));
    }
  }
  return problems;
}

/** A check's deadline fits in its interval: a target is never checked again while its last check still runs. */
function checksRules(config: Config): string[] {
  const c = config.checks;
  if (c.timeoutMs <= c.intervalMs) return [];
  return [`checks.timeoutMs: ${c.timeoutMs} ms is longer than checks.intervalMs (${c.intervalMs} ms); a check's deadline must be at most its interval`];
}

/** A host of the config by name, never an inherited property (`constructor`). */
function own<T>(record: Record<string, T>, key: string): T | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

/** Rules that span fields: conflicts and references. */
function crossCheck(config: Config): string[] {
  const problems: string[] = [...addressRules(config), ...checksRules(config)];
  const hosts = config.hosts;
  const byAddress = new Map<string, string>();
  for (const [name, host] of Object.entries(hosts)) {
    const other = byAddress.get(host.address);
    if (other) problems.push(`hosts.${name}.address: ${host.address} is already the address of ${other}`);
    else byAddress.set(host.address, name);
  }
  for (const [name, host] of Object.entries(hosts)) {
    const seen = new Map<number, string>();
    const claim = (p: number, what: string) => {
      const prev = seen.get(p);
      if (prev) problems.push(`hosts.${name}: ${host.address}:${p} is used twice (${prev} and ${what})`);
      else seen.set(p, what);
    };
    if (host.role === "redis") {
      for (const [i, p] of host.ports.entries()) claim(p, `ports[${i}]`);
    } else {
      claim(host.adminPort, "adminPort");
      for (const listen of Object.keys(host.frontends)) claim(Number(listen), `frontends.${listen}`);
    }
  }

  const paired = new Map<string, number>();
  config.pairs.forEach(([a, b], i) => {
    for (const [j, name] of [a, b].entries()) {
      const host = own(hosts, name);
      if (!host) problems.push(`pairs[${i}][${j}]: unknown host '${name}'`);
      else if (host.role !== "redis") problems.push(`pairs[${i}][${j}]: ${name} is a ${host.role} host, not redis`);
      else if (paired.has(name) && a !== b) problems.push(`pairs[${i}][${j}]: ${name} is already in pairs[${paired.get(name)}]`);
      else paired.set(name, i);
    }
    if (a === b) problems.push(`pairs[${i}]: a pair needs two different hosts, not ${a} twice`);
    const ha = own(hosts, a);
    const hb = own(hosts, b);
    if (ha?.role === "redis" && hb?.role === "redis" && a !== b) {
      const pa = [...ha.ports].sort((x, y) => x - y).join(",");
      const pb = [...hb.ports].sort((x, y) => x - y).join(",");
      if (pa !== pb) problems.push(`pairs[${i}]: ${a} runs ports ${pa} but ${b} runs ${pb}; twins must run the same ports`);
    }
  });
  const portOwner = new Map<number, number>();
  config.pairs.forEach(([a], i) => {
    const ha = own(hosts, a);
    if (ha?.role !== "redis") return;
    for (const p of ha.ports) {
      const other = portOwner.get(p);
      if (other !== undefined && other !== i) {
        problems.push(`pairs[${i}]: port ${p} is also run by pairs[${other}]; an HAProxy frontend could not tell them apart`);
      } else portOwner.set(p, i);
    }
  });
  const redisPorts = new Set<number>();
  for (const [name, host] of Object.entries(hosts)) {
    if (host.role !== "redis") continue;
    for (const p of host.ports) redisPorts.add(p);
    if (!paired.has(name)) problems.push(`hosts.${name}: Redis host is in no pair; add it to pairs`);
  }
  const frontendPorts = new Set<number>();
  for (const [name, host] of Object.entries(hosts)) {
    if (host.role !== "haproxy") continue;
    for (const [listen, target] of Object.entries(host.frontends)) {
      frontendPorts.add(Number(listen));
      if (!redisPorts.has(target)) problems.push(`hosts.${name}.frontends.${listen}: no Redis host runs port ${target}`);
    }
  }
  for (const [name, host] of Object.entries(hosts)) {
    if (host.role !== "app") continue;
    host.upstreams.forEach((u, i) => {
      const up = own(hosts, u);
      if (!up) problems.push(`hosts.${name}.upstreams[${i}]: unknown host '${u}'`);
      else if (up.role !== "haproxy") problems.push(`hosts.${name}.upstreams[${i}]: ${u} is a ${up.role} host, not haproxy`);
    });
    for (const [listen, target] of Object.entries(host.frontends)) {
      if (!frontendPorts.has(target)) problems.push(`hosts.${name}.frontends.${listen}: no HAProxy listens on port ${target}`);
    }
  }
  problems.push(...awsCrossCheck(config));
  problems.push(...drillsCrossCheck(config));
  return problems;
}

/** The AWS provider's references to hosts: an Elastic IP moves with an HAProxy host; DNS names need a zone. */
function awsCrossCheck(config: Config): string[] {
  const p = config.provider;
  if (p.kind !== "aws") {
    const wanted = (["redis", "haproxy"] as const).filter((r) => (p.spares[r]?.count ?? 0) > 0);
    return wanted.length > 0 && p.addressPool === undefined
      ? [`provider.spares.${wanted[0]}: spares need addresses; set provider.addressPool`]
      : [];
  }
  const problems: string[] = [];
  if (config.recovery.failedMachine === "quarantine" && p.quarantineSecurityGroupId === undefined) {
    problems.push("provider.quarantineSecurityGroupId: required, because recovery.failedMachine is quarantine (a security group with no ingress rule)");
  }
  for (const name of Object.keys(p.elasticIps)) {
    const host = own(config.hosts, name);
    if (!host) problems.push(`provider.elasticIps.${name}: unknown host '${name}'`);
    else if (host.role !== "haproxy") problems.push(`provider.elasticIps.${name}: ${name} is a ${host.role} host; Elastic IPs move with HAProxy hosts`);
  }
  const named = Object.entries(config.hosts).filter(([, h]) => h.role === "haproxy" && h.dnsName !== undefined);
  if (named.length > 0 && p.hostedZoneId === undefined) {
    problems.push(`provider.hostedZoneId: required, because hosts.${named[0]![0]}.dnsName is set (the Route 53 zone that holds the record)`);
  }
  return problems;
}

/** A drill names a declared pair (in either order). */
function drillsCrossCheck(config: Config): string[] {
  const declared = (x: string, y: string) => config.pairs.some(([a, b]) => (a === x && b === y) || (a === y && b === x));
  return config.drills.flatMap((d, i) => (declared(d.pair[0], d.pair[1]) ? [] : [`drills[${i}].pair: [${d.pair.join(", ")}] is not a declared pair`]));
}

function firstLine(s: string): string {
  return s.split("\n")[0]?.trim() ?? s;
}

function article(expected: string): string {
  const names: Record<string, string> = { object: "a mapping", array: "a list", string: "a string", number: "a number" };
  return names[expected] ?? `a ${expected}`;
}
