/**
 * The real CLI on malformed configs: exit 2, exactly one line on stderr starting with `failoverd: `, never a stack
 * trace. One process per case (each costs ~0.6 s).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { mulberry32 } from "../helpers/random.ts";
import { PACKAGE_ROOT } from "../../src/package-root.ts";

const REPO = PACKAGE_ROOT;
const SANDBOX = readFileSync(join(REPO, "config/sandbox.yaml"), "utf8");
/** The AWS example, its one secret (http.token from the environment) given inline so it validates anywhere. */
const BARTON = readFileSync(join(REPO, "config/barton.yaml"), "utf8").replace("token: { env: FAILOVERD_HTTP_TOKEN }", "token: { file: /dev/null }");

interface Result {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function failoverd(...args: string[]): Result {
  const r = spawnSync(process.execPath, ["bin/failoverd.js", ...args], {
    cwd: REPO,
    encoding: "utf8",
    // Generous: one CLI start takes ~0.6 s on an idle machine, but this one is shared (a load average of 30 seen).
    timeout: 120_000,
    env: { ...process.env, NO_COLOR: "1" },
  });
  assert.equal(r.error, undefined, `could not run the CLI: ${r.error?.message}`);
  assert.equal(r.signal, null, `the CLI was killed by ${r.signal} (timeout?)`);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Exit 2, one non-empty `failoverd: ` line on stderr, no stack trace. */
function assertConfigRefused(r: Result, mention?: RegExp): void {
  const detail = `status ${r.status}\nstderr: ${JSON.stringify(r.stderr)}\nstdout: ${JSON.stringify(r.stdout)}`;
  assert.equal(r.status, 2, detail);
  assert.doesNotMatch(r.stderr, /\n {4}at /, `no stack trace\n${detail}`);
  assert.doesNotMatch(r.stderr, /internal error/, detail);
  const lines = r.stderr.split("\n");
  assert.equal(lines[lines.length - 1], "", `stderr ends with a newline\n${detail}`);
  assert.equal(lines.length, 2, `exactly one line on stderr\n${detail}`);
  assert.ok(lines[0]!.startsWith("failoverd: "), detail);
  assert.ok(lines[0]!.length > "failoverd: ".length, detail);
  assert.doesNotMatch(r.stdout, /valid/, `nothing claims the config is valid\n${detail}`);
  if (mention) assert.match(lines[0]!, mention, detail);
}


let dir = "";
const file = (name: string) => join(dir, name);

before(() => {
  dir = mkdtempSync(join(tmpdir(), "failoverd-cli-"));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("failoverd validate: malformed configs exit 2 with one line", () => {
  const cases: readonly { name: string; file: string; content: string | Buffer; mention: RegExp }[] = [
    {
      name: "a truncated config",
      file: "truncated.yaml",
      content: SANDBOX.slice(0, SANDBOX.indexOf("    frontends: { 8001: 9001") + 20),
      mention: /truncated\.yaml: /,
    },
    { name: "invalid YAML", file: "invalid.yaml", content: "topology: x\nhosts: [a, b\n  c: d: e\n", mention: /invalid YAML/ },
    {
      name: "a bad port",
      file: "bad-port.yaml",
      content: SANDBOX.replace("ports: [9001, 9002] }   # starts as primary", "ports: [9001, 70000] }"),
      mention: /hosts\.redis1\.ports\[1\]: 70000 is not a port/,
    },
    {
      name: "a bad address",
      file: "bad-address.yaml",
      content: SANDBOX.replace("address: 127.0.1.2,", "address: 127.0.1.256,"),
      mention: /hosts\.redis2\.address: "127\.0\.1\.256" is not an IPv4 address/,
    },
    {
      name: "a duplicate address",
      file: "dup-address.yaml",
      content: SANDBOX.replace("address: 127.0.2.2", "address: 127.0.2.1"),
      mention: /hosts\.haproxy2\.address: 127\.0\.2\.1 is already the address of haproxy1/,
    },
    {
      name: "an unknown key",
      file: "unknown-key.yaml",
      content: SANDBOX.replace("  fall: 3\n", "  fall: 3\n  falls: 4\n"),
      mention: /checks: unknown key 'falls'/,
    },
    { name: "an empty file", file: "empty.yaml", content: "", mention: /the file is empty/ },
    {
      name: "random bytes",
      file: "random.yaml",
      content: (() => {
        const random = mulberry32(20240917);
        // Bytes 1..255: no NUL, so the text reaches the YAML parser instead of the binary-file check.
        return Buffer.from(Array.from({ length: 400 }, () => 1 + Math.floor(random() * 255)));
      })(),
      mention: /random\.yaml: /,
    },
    {
      name: "a binary file (NUL bytes)",
      file: "binary.yaml",
      content: Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0x02, 0x01, 0x01, 0x00, 0x00, 0x00, 0x0a, 0xff]),
      mention: /not a text file/,
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      writeFileSync(file(c.file), c.content);
      assertConfigRefused(failoverd("validate", "--config", file(c.file)), c.mention);
    });
  }

  test("a missing file", () => {
    assertConfigRefused(failoverd("validate", "--config", file("does-not-exist.yaml")), /no such file/);
  });

  test("a directory", () => {
    mkdirSync(file("a-directory"));
    assertConfigRefused(failoverd("validate", "--config", file("a-directory")), /is a directory/);
  });
});

describe("failoverd: usage", () => {
  test("a valid config exits 0 and says valid", () => {
    const r = failoverd("validate", "--config", join(REPO, "config/sandbox.yaml"));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /valid/);
    assert.match(r.stdout, /2 Redis hosts \(4 servers\) in 1 pair/);
    assert.equal(r.stderr, "");
  });

  test("an unknown option exits 2", () => {
    const r = failoverd("validate", "--bogus");
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /--bogus/);
    assert.doesNotMatch(r.stderr, /\n {4}at /);
  });

  test("an unknown command exits 2", () => {
    const r = failoverd("frobnicate");
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /frobnicate/);
    assert.doesNotMatch(r.stderr, /\n {4}at /);
  });

  test("--help exits 0 and lists the commands", () => {
    const r = failoverd("--help");
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /Usage: failoverd/);
    assert.match(r.stdout, /validate/);
  });
});

describe("failoverd validate: reported src defects (expected behaviour)", () => {
  test("an unknown key containing a newline still prints one line", () => {
    writeFileSync(file("newline-key.yaml"), `${SANDBOX}\n"bad\\nkey": 1\n`);
    assertConfigRefused(failoverd("validate", "--config", file("newline-key.yaml")), /unknown key/);
  });
});

describe("failoverd validate and run: configs that cannot work are refused with one line (issue 11)", () => {
  const UNSET = "FAILOVERD_TEST_UNSET_SECRET_11";
  /** The sandbox on 127.123.x.y (never started: every case is refused before anything runs). */
  const base = SANDBOX.replace(/127\.0\./g, "127.123.").replace("stateDir: .failoverd/state", `stateDir: ${JSON.stringify(join(tmpdir(), "failoverd-t123-state-never-created"))}`);
  const cases: readonly { name: string; content: string; mention: RegExp }[] = [
    {
      name: "a host address 0.0.0.0",
      content: base.replace("address: 127.123.1.2,", "address: 0.0.0.0,"),
      mention: /hosts\.redis2\.address: 0\.0\.0\.0 means any address, not a machine's/,
    },
    {
      name: "the broadcast address 255.255.255.255",
      content: base.replace("address: 127.123.2.2", "address: 255.255.255.255"),
      mention: /hosts\.haproxy2\.address: 255\.255\.255\.255 is the broadcast address/,
    },
    {
      name: "a multicast address",
      content: base.replace("address: 127.123.3.1", "address: 239.1.2.3"),
      mention: /hosts\.app\.address: 239\.1\.2\.3 is a multicast address/,
    },
    {
      name: "a non-loopback host address with the local provider",
      content: base.replace("address: 127.123.1.1,", "address: 10.0.1.1,"),
      mention: /hosts\.redis1\.address: 10\.0\.1\.1 is not a loopback address; the local provider runs its machines on 127\.0\.0\.0\/8/,
    },
    {
      name: "a non-loopback pool address with the local provider",
      content: base.replace("127.123.1.13,", "192.168.7.13,"),
      mention: /provider\.addressPool\.redis\[2\]: 192\.168\.7\.13 is not a loopback address/,
    },
    {
      name: "a loopback host address with the AWS provider (a sandbox address in a production config)",
      content: BARTON.replace("address: 10.0.1.12,", "address: 127.0.1.2,"),
      mention: /hosts\.redis2\.address: 127\.0\.1\.2 is a loopback address, which no EC2 machine has/,
    },
    {
      name: "provider.allowLoopback with the local provider (its machines are on loopback anyway)",
      content: base.replace("provider:\n  kind: local\n", "provider:\n  kind: local\n  allowLoopback: true\n"),
      mention: /provider: unknown key 'allowLoopback'|allowLoopback/,
    },
    {
      name: "checks.timeoutMs thousands of times checks.intervalMs",
      content: base.replace("  intervalMs: 200\n  timeoutMs: 150", "  intervalMs: 10\n  timeoutMs: 60000"),
      mention: /checks\.timeoutMs: 60000 ms is longer than checks\.intervalMs \(10 ms\); a check's deadline must be at most its interval/,
    },
    {
      name: "stateDir: /dev/null",
      content: base.replace(/^stateDir: .*$/m, "stateDir: /dev/null"),
      mention: /stateDir: \/dev\/null is not a directory/,
    },
    {
      name: "stateDir under a file",
      content: base.replace(/^stateDir: .*$/m, "stateDir: /dev/null/state"),
      mention: /stateDir: \/dev\/null\/state is not a directory/,
    },
    {
      name: "a host named __proto__ (it would be dropped silently)",
      content: base.replace("pairs:\n", "  __proto__: { role: redis, address: 127.123.1.9, ports: [9001] }\n\npairs:\n"),
      mention: /hosts\.__proto__: '__proto__' cannot be a key/,
    },
    {
      name: "a __proto__ key deeper down",
      content: base.replace("    frontends: { 8001: 9001, 8002: 9002 }\n    adminPort: 9999\n    dnsName: haproxy2", "    frontends: { 8001: 9001, __proto__: 9002 }\n    adminPort: 9999\n    dnsName: haproxy2"),
      mention: /hosts\.haproxy2\.frontends\.__proto__: '__proto__' cannot be a key/,
    },
    {
      name: "an {env: NAME} secret whose variable is unset",
      content: `${base}\nredis: { password: { env: ${UNSET} } }\n`,
      mention: new RegExp(`redis\\.password: environment variable ${UNSET} is not set`),
    },
  ];
  for (const [i, c] of cases.entries()) {
    test(`validate: ${c.name}`, () => {
      writeFileSync(file(`unworkable-${i}.yaml`), c.content);
      assertConfigRefused(failoverd("validate", "--config", file(`unworkable-${i}.yaml`)), c.mention);
    });
  }

  test("the base of these cases is valid; intervalMs alone below 500 ms gives timeoutMs = intervalMs; a set secret passes", () => {
    writeFileSync(file("workable.yaml"), base);
    const r = failoverd("validate", "--config", file("workable.yaml"));
    assert.equal(r.status, 0, r.stderr);
    // The AWS lab on loopback passes only when it says so.
    const lab = BARTON.replace("address: 10.0.1.12,", "address: 127.0.1.2,").replace("  kind: aws\n", "  kind: aws\n  allowLoopback: true\n");
    assert.notEqual(lab, BARTON);
    writeFileSync(file("aws-lab.yaml"), lab);
    const l = failoverd("validate", "--config", file("aws-lab.yaml"));
    assert.equal(l.status, 0, l.stderr);
    writeFileSync(file("short-interval.yaml"), base.replace("  intervalMs: 200\n  timeoutMs: 150\n", "  intervalMs: 100\n"));
    assert.equal(failoverd("validate", "--config", file("short-interval.yaml")).status, 0);
    writeFileSync(file("secret-set.yaml"), `${base}\nredis: { password: { env: ${UNSET} } }\n`);
    const set = spawnSync(process.execPath, ["bin/failoverd.js", "validate", "--config", file("secret-set.yaml")], {
      cwd: REPO,
      encoding: "utf8",
      env: { ...process.env, [UNSET]: "s3cret" },
    });
    assert.equal(set.status, 0, set.stderr);
    assert.doesNotMatch(set.stdout + set.stderr, /s3cret/);
  });

  test("run refuses an unset secret variable and a state directory that is not a writable directory, before anything starts", () => {
    writeFileSync(file("run-unset.yaml"), `${base}\nredis: { password: { env: ${UNSET} } }\n`);
    assertConfigRefused(failoverd("run", "--config", file("run-unset.yaml")), new RegExp(`environment variable ${UNSET} is not set`));
    writeFileSync(file("run-devnull.yaml"), base.replace(/^stateDir: .*$/m, "stateDir: /dev/null"));
    assertConfigRefused(failoverd("run", "--config", file("run-devnull.yaml")), /stateDir: \/dev\/null is not a directory/);
    writeFileSync(file("a-file"), "not a directory");
    writeFileSync(file("run-file.yaml"), base.replace(/^stateDir: .*$/m, `stateDir: ${JSON.stringify(file("a-file"))}`));
    assertConfigRefused(failoverd("run", "--config", file("run-file.yaml")), /stateDir: .*a-file is not a directory/);
  });
});
