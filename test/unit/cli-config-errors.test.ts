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

interface Result {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function failoverd(...args: string[]): Result {
  const r = spawnSync(process.execPath, ["bin/failoverd.js", ...args], {
    cwd: REPO,
    encoding: "utf8",
    timeout: 20_000,
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
