/**
 * parseTopology: every malformed config throws ConfigError (never another error type), each problem names its path,
 * and the message is one line. A valid base document (the sandbox's shape) is mutated one path at a time.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { stringify } from "yaml";
import { ConfigError } from "../../src/errors.ts";
import { DEFAULT_CONFIG_PATH, parseTopology } from "../../src/topology/load.ts";
import type { Topology } from "../../src/topology/topology.ts";
import { mulberry32 } from "../helpers/random.ts";

const SANDBOX_TEXT = readFileSync(DEFAULT_CONFIG_PATH, "utf8");

type Doc = Record<string, unknown>;

/** The sandbox topology as a plain object; each call returns a fresh copy to mutate. */
function baseDoc(): Doc {
  return {
    topology: "unit",
    hosts: {
      redis1: { role: "redis", address: "127.0.1.1", ports: [9001, 9002] },
      redis2: { role: "redis", address: "127.0.1.2", ports: [9001, 9002] },
      haproxy1: {
        role: "haproxy",
        address: "127.0.2.1",
        frontends: { "8001": 9001, "8002": 9002 },
        adminPort: 9999,
        dnsName: "haproxy1.unit.internal",
      },
      haproxy2: {
        role: "haproxy",
        address: "127.0.2.2",
        frontends: { "8001": 9001, "8002": 9002 },
        adminPort: 9999,
        dnsName: "haproxy2.unit.internal",
      },
      app: {
        role: "app",
        address: "127.0.3.1",
        frontends: { "7001": 8001, "7002": 8002 },
        upstreams: ["haproxy1", "haproxy2"],
        adminPort: 9999,
      },
    },
    pairs: [["redis1", "redis2"]],
    checks: { intervalMs: 200, timeoutMs: 150, fall: 3, rise: 2 },
    recovery: { cooldownMs: 60000, stepTimeoutMs: 20000, syncTimeoutMs: 60000 },
    provider: { kind: "local", runDir: ".failoverd/unit" },
    stateDir: ".failoverd/unit-state",
  };
}

/** Splits `hosts.redis1.ports[1]` into ["hosts", "redis1", "ports", 1]. */
function splitPath(path: string): (string | number)[] {
  const out: (string | number)[] = [];
  for (const part of path.split(".")) {
    const m = /^([^[]*)((?:\[\d+\])*)$/.exec(part);
    assert.ok(m, `bad test path ${path}`);
    if (m[1]) out.push(m[1]);
    for (const idx of m[2]?.matchAll(/\[(\d+)\]/g) ?? []) out.push(Number(idx[1]));
  }
  return out;
}

/** Sets (or, with `undefined`, deletes) each path of the base document. Missing parents are created as mappings. */
function edit(changes: Record<string, unknown>, doc: Doc = baseDoc()): Doc {
  for (const [path, value] of Object.entries(changes)) {
    const keys = splitPath(path);
    let node = doc as Record<string | number, unknown>;
    for (const k of keys.slice(0, -1)) {
      if (node[k] === undefined || node[k] === null || typeof node[k] !== "object") node[k] = {};
      node = node[k] as Record<string | number, unknown>;
    }
    const last = keys[keys.length - 1]!;
    if (value === undefined) {
      if (Array.isArray(node) && typeof last === "number") node.splice(last, 1);
      else delete node[last];
    } else node[last] = value;
  }
  return doc;
}

const yamlOf = (doc: Doc): string => stringify(doc);

function parse(text: string, source = "unit.yaml"): Topology {
  return parseTopology(text, source);
}

/** Parses `text`, requires a ConfigError with one-line problems and message, and returns its problems. */
function problemsOf(text: string, source = "unit.yaml"): readonly string[] {
  let thrown: unknown;
  try {
    parse(text, source);
  } catch (e) {
    thrown = e;
  }
  assert.ok(thrown !== undefined, "expected a ConfigError, but the config was accepted");
  assertConfigError(thrown, source);
  return thrown.problems;
}

function assertConfigError(e: unknown, source: string): asserts e is ConfigError {
  if (!(e instanceof ConfigError)) {
    assert.fail(`expected a ConfigError, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
  }
  assert.ok(e.problems.length >= 1, "a ConfigError lists at least one problem");
  assert.ok(e.message.startsWith(`${source}: `), `the message names the source: ${e.message}`);
  assert.doesNotMatch(e.message, /[\r\n]/, `the message must be one line: ${JSON.stringify(e.message)}`);
  for (const p of e.problems) {
    assert.ok(p.trim().length > 0, "a problem is never empty");
    assert.doesNotMatch(p, /[\r\n]/, `a problem must be one line: ${JSON.stringify(p)}`);
  }
}

/** A problem starts with a path such as `hosts.redis1.ports[1]: ` or `pairs[0]: `. */
const PATH_PREFIX = /^[a-z][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+|\[\d+\])*: \S/;


describe("parseTopology: valid configs", () => {
  test("the bundled config/sandbox.yaml loads: 5 hosts, 1 pair on ports 9001 and 9002", () => {
    const t = parse(SANDBOX_TEXT, DEFAULT_CONFIG_PATH);
    assert.equal(t.source, DEFAULT_CONFIG_PATH);
    assert.equal(t.name, "sandbox");
    assert.equal(t.hosts.size, 5);
    assert.deepEqual([...t.hosts.keys()].sort(), ["app", "haproxy1", "haproxy2", "redis1", "redis2"]);
    assert.equal(t.pairs.length, 1);
    assert.deepEqual(t.pairs[0]?.hosts, ["redis1", "redis2"]);
    assert.deepEqual(t.pairs[0]?.ports, [9001, 9002]);
    assert.deepEqual(
      t.redisHosts.map((h) => h.name),
      ["redis1", "redis2"],
    );
    assert.deepEqual(
      t.haproxyHosts.map((h) => h.name),
      ["haproxy1", "haproxy2"],
    );
    assert.deepEqual(
      t.appHosts.map((h) => h.name),
      ["app"],
    );
    assert.equal(t.config.checks.fall, 3);
    assert.equal(t.config.provider.kind, "local");
  });

  test("the base document of these tests is valid", () => {
    const t = parse(yamlOf(baseDoc()));
    assert.equal(t.name, "unit");
    assert.equal(t.hosts.get("haproxy1")?.role, "haproxy");
    assert.equal(t.hosts.get("redis2")?.address, "127.0.1.2");
  });

  test("a pair's ports are sorted, and twins may list the same ports in a different order", () => {
    const t = parse(yamlOf(edit({ "hosts.redis1.ports": [9002, 9001] })));
    assert.deepEqual(t.pairs[0]?.ports, [9001, 9002]);
  });

  test("the host map and each host are frozen (the topology is immutable)", () => {
    const t = parse(yamlOf(baseDoc()));
    assert.ok(Object.isFrozen(t));
    assert.ok(Object.isFrozen(t.hosts.get("redis1")));
    assert.ok(Object.isFrozen(t.pairs[0]));
  });

  test("defaults: checks.fall is 3 when omitted", () => {
    const t = parse(yamlOf(edit({ "checks.fall": undefined })));
    assert.equal(t.config.checks.fall, 3);
    assert.equal(t.config.checks.intervalMs, 200, "the keys that are given are kept");
  });

  test("defaults: a config with no checks, recovery, redis, provider or stateDir section", () => {
    const t = parse(
      yamlOf(edit({ checks: undefined, recovery: undefined, provider: undefined, stateDir: undefined, redis: undefined })),
    );
    assert.deepEqual(t.config.checks, { intervalMs: 1000, timeoutMs: 500, fall: 3, rise: 2 });
    assert.equal(t.config.checks.fastIntervalMs, undefined);
    assert.equal(t.config.recovery.enabled, true);
    assert.equal(t.config.recovery.cooldownMs, 300_000);
    assert.equal(t.config.recovery.stepAttempts, 3);
    assert.equal(t.config.recovery.maxFailingFraction, 0.5);
    assert.equal(t.config.provider.kind, "local");
    assert.equal(t.config.stateDir, ".failoverd/state");
    assert.equal(t.config.redis.tls, undefined, "TLS is off unless redis.tls is given");
    assert.equal(t.config.redis.password, undefined);
  });

  test("defaults: an empty checks mapping gets every default", () => {
    const t = parse(yamlOf(edit({ checks: {} })));
    assert.deepEqual(t.config.checks, { intervalMs: 1000, timeoutMs: 500, fall: 3, rise: 2 });
  });

  test("secrets: redis.password given as {env: X} is valid and is kept as a reference", () => {
    const t = parse(yamlOf(edit({ "redis.password": { env: "FAILOVERD_REDIS_PASSWORD" } })));
    assert.deepEqual(t.config.redis.password, { env: "FAILOVERD_REDIS_PASSWORD" });
  });

  test("secrets: redis.password given as {file: path} is valid", () => {
    const t = parse(yamlOf(edit({ "redis.password": { file: "/etc/failoverd/redis.pass" } })));
    assert.deepEqual(t.config.redis.password, { file: "/etc/failoverd/redis.pass" });
  });
});

interface ProblemCase {
  readonly name: string;
  readonly text: string;
  /** The exact problems, in order. */
  readonly problems?: readonly string[];
  /** Or: each of these must be the start of some problem. */
  readonly startsWith?: readonly string[];
}

const PORT_WORDS = "is not a port (a whole number from 1 to 65535)";

const problemCases: readonly ProblemCase[] = [
  // Ports.
  ...[
    [70000, "70000"],
    [0, "0"],
    [-1, "-1"],
    [1.5, "1.5"],
    ["abc", '"abc"'],
    ["9001", '"9001"'],
    [null, "null"],
  ].map(([value, shown]) => ({
    name: `port ${JSON.stringify(value)} in a Redis host's ports`,
    text: yamlOf(edit({ "hosts.redis1.ports[1]": value })),
    problems: [`hosts.redis1.ports[1]: ${shown} ${PORT_WORDS}`],
  })),
  {
    name: "adminPort 70000",
    text: yamlOf(edit({ "hosts.haproxy2.adminPort": 70000 })),
    problems: [`hosts.haproxy2.adminPort: 70000 ${PORT_WORDS}`],
  },
  {
    name: "an HAProxy frontend that targets port 0",
    text: yamlOf(edit({ "hosts.haproxy1.frontends.8001": 0 })),
    problems: [`hosts.haproxy1.frontends.8001: 0 ${PORT_WORDS}`],
  },
  {
    name: "a Redis host with no ports",
    text: yamlOf(edit({ "hosts.redis1.ports": [], "hosts.redis2.ports": [] })),
    problems: ["hosts.redis1.ports: a Redis host needs at least one port", "hosts.redis2.ports: a Redis host needs at least one port"],
  },
  // Addresses.
  ...["127.0.1.300", "10.0.0", "localhost", "::1", "127.0.1.1/24", ""].map((address) => ({
    name: `address ${JSON.stringify(address)}`,
    text: yamlOf(edit({ "hosts.redis1.address": address })),
    problems: [`hosts.redis1.address: ${JSON.stringify(address)} is not an IPv4 address`],
  })),
  {
    name: "the same address for two hosts",
    text: yamlOf(edit({ "hosts.redis2.address": "127.0.1.1" })),
    problems: ["hosts.redis2.address: 127.0.1.1 is already the address of redis1"],
  },
  {
    name: "the same address for a Redis host and an HAProxy",
    text: yamlOf(edit({ "hosts.haproxy2.address": "127.0.1.2" })),
    problems: ["hosts.haproxy2.address: 127.0.1.2 is already the address of redis2"],
  },
  // Listeners.
  {
    name: "two listeners on one address:port (an HAProxy frontend on its admin port)",
    text: yamlOf(edit({ "hosts.haproxy1.frontends": { "8001": 9001, "9999": 9002 } })),
    problems: ["hosts.haproxy1: 127.0.2.1:9999 is used twice (adminPort and frontends.9999)"],
  },
  {
    name: "two listeners on one address:port (a port listed twice on twins)",
    text: yamlOf(edit({ "hosts.redis1.ports": [9001, 9002, 9001], "hosts.redis2.ports": [9001, 9002, 9001] })),
    problems: [
      "hosts.redis1: 127.0.1.1:9001 is used twice (ports[0] and ports[2])",
      "hosts.redis2: 127.0.1.2:9001 is used twice (ports[0] and ports[2])",
    ],
  },
  {
    name: "an app frontend on its admin port",
    text: yamlOf(edit({ "hosts.app.adminPort": 7002 })),
    problems: ["hosts.app: 127.0.3.1:7002 is used twice (adminPort and frontends.7002)"],
  },
  // Unknown keys.
  {
    name: "an unknown top-level key",
    text: yamlOf(edit({ bogus: 1 })),
    problems: ["unknown key 'bogus'"],
  },
  {
    name: "an unknown key under checks",
    text: yamlOf(edit({ "checks.fal": 4 })),
    problems: ["checks: unknown key 'fal'"],
  },
  {
    name: "an unknown key in a host",
    text: yamlOf(edit({ "hosts.redis1.colour": "red" })),
    problems: ["hosts.redis1: unknown key 'colour'"],
  },
  {
    name: "an unknown key under provider",
    text: yamlOf(edit({ "provider.bogus": true })),
    problems: ["provider: unknown key 'bogus'"],
  },
  {
    name: "two unknown keys in one mapping",
    text: yamlOf(edit({ "recovery.a": 1, "recovery.b": 2 })),
    problems: ["recovery: unknown keys 'a', 'b'"],
  },
  // Roles and required keys.
  {
    name: "an unknown role",
    text: yamlOf(edit({ "hosts.redis1.role": "mysql" })),
    problems: ["hosts.redis1.role: role must be one of redis, haproxy, app"],
  },
  {
    name: "a missing role",
    text: yamlOf(edit({ "hosts.redis1.role": undefined })),
    problems: ["hosts.redis1.role: role must be one of redis, haproxy, app"],
  },
  {
    name: "a missing topology name",
    text: yamlOf(edit({ topology: undefined })),
    problems: ["topology: is required (string)"],
  },
  {
    name: "no hosts",
    text: yamlOf(edit({ hosts: {} })),
    startsWith: ["hosts: no hosts are declared"],
  },
  {
    name: "no pairs",
    text: yamlOf(edit({ pairs: [] })),
    problems: ["pairs: declare at least one Redis pair"],
  },
  {
    name: "checks.fall 0",
    text: yamlOf(edit({ "checks.fall": 0 })),
    problems: ["checks.fall: must be at least 1"],
  },
  {
    name: "checks.rise 1.5",
    text: yamlOf(edit({ "checks.rise": 1.5 })),
    problems: ["checks.rise: 1.5 is not a whole number"],
  },
  {
    name: "an unknown provider kind",
    text: yamlOf(edit({ "provider.kind": "gcp" })),
    startsWith: ["provider.kind: "],
  },
  // Pairs.
  {
    name: "a pair naming an unknown host",
    text: yamlOf(edit({ "pairs[0][1]": "redis9" })),
    problems: ["pairs[0][1]: unknown host 'redis9'", "hosts.redis2: Redis host is in no pair; add it to pairs"],
  },
  {
    name: "a pair of a host with itself",
    text: yamlOf(edit({ "pairs[0][1]": "redis1" })),
    problems: ["pairs[0]: a pair needs two different hosts, not redis1 twice", "hosts.redis2: Redis host is in no pair; add it to pairs"],
  },
  {
    name: "a pair naming an HAProxy host",
    text: yamlOf(edit({ "pairs[0][1]": "haproxy1" })),
    problems: ["pairs[0][1]: haproxy1 is a haproxy host, not redis", "hosts.redis2: Redis host is in no pair; add it to pairs"],
  },
  {
    name: "a pair naming an app host",
    text: yamlOf(edit({ "pairs[0][0]": "app" })),
    startsWith: ["pairs[0][0]: app is a app host, not redis"],
  },
  {
    name: "twins with different ports",
    text: yamlOf(edit({ "hosts.redis2.ports": [9001, 9003] })),
    problems: ["pairs[0]: redis1 runs ports 9001,9002 but redis2 runs 9001,9003; twins must run the same ports"],
  },
  {
    name: "twins with a different number of ports",
    text: yamlOf(edit({ "hosts.redis2.ports": [9001] })),
    problems: ["pairs[0]: redis1 runs ports 9001,9002 but redis2 runs 9001; twins must run the same ports"],
  },
  {
    name: "a pair of three hosts",
    text: yamlOf(edit({ "pairs[0][2]": "redis1" })),
    startsWith: ["pairs[0]: "],
  },
  {
    name: "a host in two pairs",
    text: yamlOf(
      edit({
        "hosts.redis3": { role: "redis", address: "127.0.1.3", ports: [9003] },
        "hosts.redis4": { role: "redis", address: "127.0.1.4", ports: [9003] },
        pairs: [
          ["redis1", "redis2"],
          ["redis1", "redis3"],
          ["redis4", "redis2"],
        ],
      }),
    ),
    startsWith: ["pairs[1][0]: redis1 is already in pairs[0]", "pairs[2][1]: redis2 is already in pairs[0]"],
  },
  {
    name: "two pairs running the same port",
    text: yamlOf(
      edit({
        "hosts.redis3": { role: "redis", address: "127.0.1.3", ports: [9002, 9003] },
        "hosts.redis4": { role: "redis", address: "127.0.1.4", ports: [9002, 9003] },
        "pairs[1]": ["redis3", "redis4"],
      }),
    ),
    problems: ["pairs[1]: port 9002 is also run by pairs[0]; an HAProxy frontend could not tell them apart"],
  },
  {
    name: "a Redis host in no pair",
    text: yamlOf(edit({ "hosts.redis3": { role: "redis", address: "127.0.1.3", ports: [9001, 9002] } })),
    problems: ["hosts.redis3: Redis host is in no pair; add it to pairs"],
  },
  // References between tiers.
  {
    name: "an app upstream that is a Redis host",
    text: yamlOf(edit({ "hosts.app.upstreams[1]": "redis1" })),
    problems: ["hosts.app.upstreams[1]: redis1 is a redis host, not haproxy"],
  },
  {
    name: "an app upstream that is unknown",
    text: yamlOf(edit({ "hosts.app.upstreams[1]": "haproxy9" })),
    problems: ["hosts.app.upstreams[1]: unknown host 'haproxy9'"],
  },
  {
    name: "an app upstream that is the app host itself",
    text: yamlOf(edit({ "hosts.app.upstreams[0]": "app" })),
    problems: ["hosts.app.upstreams[0]: app is a app host, not haproxy"],
  },
  {
    name: "an app with no upstream",
    text: yamlOf(edit({ "hosts.app.upstreams": [] })),
    problems: ["hosts.app.upstreams: an app host needs at least one upstream HAProxy"],
  },
  {
    name: "an HAProxy frontend targeting a port no Redis host runs",
    text: yamlOf(edit({ "hosts.haproxy1.frontends.8002": 9003 })),
    problems: ["hosts.haproxy1.frontends.8002: no Redis host runs port 9003"],
  },
  {
    name: "an app frontend targeting a port no HAProxy listens on",
    text: yamlOf(edit({ "hosts.app.frontends.7002": 8003 })),
    problems: ["hosts.app.frontends.7002: no HAProxy listens on port 8003"],
  },
  // Secrets.
  {
    name: "redis.password written as the secret itself",
    text: yamlOf(edit({ "redis.password": "plain" })),
    startsWith: ["redis.password: "],
  },
  {
    name: "redis.password with both env and file",
    text: yamlOf(edit({ "redis.password": { env: "X", file: "/x" } })),
    problems: ["redis.password: give exactly one of env (an environment variable) or file (a path) for a secret; never the secret itself"],
  },
  {
    name: "redis.password as an empty mapping",
    text: yamlOf(edit({ "redis.password": {} })),
    problems: ["redis.password: give exactly one of env (an environment variable) or file (a path) for a secret; never the secret itself"],
  },
  {
    name: "redis.password with an unknown key",
    text: yamlOf(edit({ "redis.password": { value: "hunter2" } })),
    startsWith: ["redis.password: unknown key 'value'"],
  },
  // Whole-file shapes.
  { name: "an empty file", text: "", problems: ["the file is empty; see config/sandbox.yaml for an example"] },
  { name: "a file of blank lines", text: "\n  \n\t\n", problems: ["the file is empty; see config/sandbox.yaml for an example"] },
  { name: "a file with only a comment", text: "# nothing here\n", problems: ["the top level must be a mapping (topology:, hosts:, pairs:, ...)"] },
  { name: "a scalar document", text: "42\n", problems: ["the top level must be a mapping (topology:, hosts:, pairs:, ...)"] },
  { name: "a list document", text: "- a\n- b\n", problems: ["the top level must be a mapping (topology:, hosts:, pairs:, ...)"] },
  { name: "a NUL byte", text: "topology: x\u0000\n", problems: ["is not a text file (it contains NUL bytes)"] },
];

describe("parseTopology: each problem is reported with its path", () => {
  for (const c of problemCases) {
    test(c.name, () => {
      const problems = problemsOf(c.text);
      if (c.problems) assert.deepEqual(problems, c.problems);
      for (const prefix of c.startsWith ?? []) {
        assert.ok(
          problems.some((p) => p.startsWith(prefix)),
          `expected a problem starting with ${JSON.stringify(prefix)}, got ${JSON.stringify(problems)}`,
        );
      }
    });
  }
});

describe("parseTopology: messages", () => {
  test("one problem: the message is `source: problem`", () => {
    let caught: unknown;
    try {
      parse(yamlOf(edit({ "hosts.redis1.ports[1]": 70000 })), "cfg/a.yaml");
    } catch (e) {
      caught = e;
    }
    assertConfigError(caught, "cfg/a.yaml");
    assert.equal(caught.source, "cfg/a.yaml");
    assert.equal(caught.name, "ConfigError");
    assert.equal(caught.message, `cfg/a.yaml: hosts.redis1.ports[1]: 70000 ${PORT_WORDS}`);
  });

  test("an unknown key is named in the message", () => {
    let caught: unknown;
    try {
      parse(yamlOf(edit({ "checks.intervalMS": 100 })));
    } catch (e) {
      caught = e;
    }
    assertConfigError(caught, "unit.yaml");
    assert.match(caught.message, /checks: unknown key 'intervalMS'/);
  });

  test("several schema problems are reported at once, each with its path, joined on one line", () => {
    const text = yamlOf(
      edit({
        "hosts.redis1.ports[1]": 70000,
        "hosts.haproxy1.address": "300.0.0.1",
        "checks.fall": 0,
      }),
    );
    let caught: unknown;
    try {
      parse(text);
    } catch (e) {
      caught = e;
    }
    assertConfigError(caught, "unit.yaml");
    assert.ok(caught.problems.length >= 2, `expected several problems, got ${JSON.stringify(caught.problems)}`);
    for (const p of caught.problems) assert.match(p, PATH_PREFIX, `every problem has a path: ${p}`);
    assert.deepEqual([...caught.problems].sort(), [
      "checks.fall: must be at least 1",
      'hosts.haproxy1.address: "300.0.0.1" is not an IPv4 address',
      `hosts.redis1.ports[1]: 70000 ${PORT_WORDS}`,
    ]);
    assert.ok(caught.message.startsWith(`unit.yaml: ${caught.problems.length} problems: `), caught.message);
    for (const p of caught.problems) assert.ok(caught.message.includes(p), `the message includes ${p}`);
  });

  test("several cross-field problems are reported at once, each with its path", () => {
    const problems = problemsOf(
      yamlOf(
        edit({
          "hosts.redis2.address": "127.0.1.1",
          "hosts.app.upstreams[1]": "redis1",
          "hosts.haproxy2.frontends.8002": 9005,
        }),
      ),
    );
    assert.ok(problems.length >= 2);
    for (const p of problems) assert.match(p, PATH_PREFIX, `every problem has a path: ${p}`);
    assert.deepEqual(problems, [
      "hosts.redis2.address: 127.0.1.1 is already the address of redis1",
      "hosts.haproxy2.frontends.8002: no Redis host runs port 9005",
      "hosts.app.upstreams[1]: redis1 is a redis host, not haproxy",
    ]);
  });
});

describe("parseTopology: broken YAML", () => {
  const invalid: readonly [string, string][] = [
    ["an unclosed flow sequence", "topology: x\nhosts: [a\n"],
    ["a tab used as indentation", "topology: x\n\thosts: 1\n"],
    ["a duplicate key", "topology: x\ntopology: y\n"],
    ["an unclosed quote", 'topology: "x\nhosts: {}\n'],
    ["a bad indentation", "topology: x\nhosts:\n  a: 1\n b: 2\n"],
    ["a mapping inside a flow sequence", "pairs: [a: b: c]\n"],
    ["an undefined alias", "topology: *nothing\n"],
    ["a stray closing bracket", "topology: x]\n]\n"],
  ];
  for (const [name, text] of invalid) {
    test(`invalid YAML: ${name}`, () => {
      const problems = problemsOf(text);
      assert.ok(problems.length >= 1 && problems.length <= 5);
      for (const p of problems) assert.match(p, /^invalid YAML\b/, p);
    });
  }

  test("an alias bomb (billion laughs) is refused with a ConfigError", () => {
    const lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < 10; i++) {
      const prev = String.fromCharCode(96 + i);
      const cur = String.fromCharCode(97 + i);
      lines.push(`${cur}: &${cur} [${Array(9).fill(`*${prev}`).join(",")}]`);
    }
    problemsOf(`${lines.join("\n")}\n`);
  });

  test("truncated YAML: every cut of a valid file either parses or throws ConfigError", () => {
    const full = yamlOf(baseDoc());
    const cuts = new Set<number>();
    for (let i = 0; i <= full.length; i += 3) cuts.add(i);
    for (let i = full.indexOf("\n"); i >= 0; i = full.indexOf("\n", i + 1)) {
      cuts.add(i);
      cuts.add(i + 1);
    }
    cuts.add(Math.floor(full.length / 2));
    let parsed = 0;
    let refused = 0;
    for (const cut of [...cuts].sort((a, b) => a - b)) {
      try {
        parse(full.slice(0, cut), `cut-${cut}.yaml`);
        parsed++;
      } catch (e) {
        assertConfigError(e, `cut-${cut}.yaml`);
        refused++;
      }
    }
    assert.ok(refused > 0, "most cuts are refused");
    assert.ok(parsed > 0, "a cut after the last needed line still parses");
  });

  test("truncated sandbox.yaml: every cut either parses or throws ConfigError", () => {
    for (let cut = 0; cut <= SANDBOX_TEXT.length; cut += 7) {
      try {
        parse(SANDBOX_TEXT.slice(0, cut), "sandbox-cut.yaml");
      } catch (e) {
        assertConfigError(e, "sandbox-cut.yaml");
      }
    }
  });

  test("200 buffers of seeded random bytes all throw ConfigError, never another error", () => {
    const random = mulberry32(0x5eed);
    for (let n = 0; n < 200; n++) {
      const length = 1 + Math.floor(random() * 600);
      const bytes = Buffer.alloc(length);
      // Half the buffers have no NUL byte, so they get past the binary check into the YAML parser and the schema.
      const min = n % 2 === 0 ? 0 : 1;
      for (let i = 0; i < length; i++) bytes[i] = min + Math.floor(random() * (256 - min));
      const source = `random-${n}.yaml`;
      let caught: unknown;
      try {
        parse(bytes.toString("utf8"), source);
      } catch (e) {
        caught = e;
      }
      assert.ok(caught !== undefined, `buffer ${n} was accepted as a config`);
      assertConfigError(caught, source);
    }
  });

  test("random printable YAML-ish text never throws anything but ConfigError", () => {
    const random = mulberry32(42);
    const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 :-[]{},&*!|>'\"#%@`?\n\n\n  ";
    for (let n = 0; n < 200; n++) {
      const length = 1 + Math.floor(random() * 300);
      let text = "";
      for (let i = 0; i < length; i++) text += alphabet[Math.floor(random() * alphabet.length)];
      let caught: unknown;
      try {
        parse(text, "noise.yaml");
      } catch (e) {
        caught = e;
      }
      assert.ok(caught !== undefined, `noise ${n} was accepted as a config: ${JSON.stringify(text)}`);
      assertConfigError(caught, "noise.yaml");
    }
  });
});

describe("parseTopology: reported src defects (expected behaviour)", () => {
  test("invalid YAML: the problem names the line of the error", () => {
    // Expected `invalid YAML at line 2: Tabs are not allowed as indentation`; src/topology/load.ts parses with
    // prettyErrors: false, so the YAML errors carry no linePos and the line is always printed as "?".
    const problems = problemsOf("topology: x\n\thosts: 1\n");
    assert.match(problems[0] ?? "", /^invalid YAML at line 2: /);
  });

  test("an unknown key containing a newline still gives a one-line message", () => {
    // A quoted YAML key may contain "\n"; formatIssue in src/topology/load.ts prints keys raw.
    problemsOf(`${yamlOf(baseDoc())}"bad\\nkey": 1\n`);
  });

  test("a value of the wrong type is reported as such, not as missing", () => {
    // zod v4 drops issue.input unless asked, so formatIssue's `issue.input === undefined` is always true and every
    // wrong type reads "is required (...)".
    const problems = problemsOf(yamlOf(edit({ "redis.password": "plain" })));
    assert.equal(problems.length, 1);
    assert.ok(problems[0]?.startsWith("redis.password: "));
    assert.doesNotMatch(problems[0] ?? "", /is required/, "the password was given: it is the wrong kind, not missing");
    assert.deepEqual(problemsOf(yamlOf(edit({ topology: 5 }))), ["topology: must be a string"]);
  });

  test("a bad port written as a frontends key names the port, like any other port", () => {
    // The portKey schema's own message is lost: zod reports the record key as "Invalid key in record".
    const problems = problemsOf(yamlOf(edit({ "hosts.haproxy1.frontends": { "8001": 9001, "70000": 9002 } })));
    assert.deepEqual(problems, [`hosts.haproxy1.frontends.70000: "70000" ${PORT_WORDS}`]);
  });

  test("a bad host name as a hosts key says what a host name must be", () => {
    const problems = problemsOf(
      yamlOf(edit({ "hosts.Redis3": { role: "redis", address: "127.0.1.3", ports: [9001, 9002] } })),
    );
    assert.equal(problems.length, 1);
    assert.match(problems[0] ?? "", /^hosts\.Redis3: .*is not a host name/);
  });

  test("a pair naming 'constructor' (a valid, undeclared host name) is an unknown host", () => {
    // crossCheck looks hosts up with `hosts[name]` on a plain object, so Object.prototype.constructor is found.
    const problems = problemsOf(yamlOf(edit({ "pairs[0][1]": "constructor" })));
    assert.ok(problems.includes("pairs[0][1]: unknown host 'constructor'"), JSON.stringify(problems));
  });

  test("an app upstream 'constructor' is an unknown host", () => {
    const problems = problemsOf(yamlOf(edit({ "hosts.app.upstreams[1]": "constructor" })));
    assert.deepEqual(problems, ["hosts.app.upstreams[1]: unknown host 'constructor'"]);
  });
});
