/**
 * A generated config fuzz test of the real CLI entry, in process: seeded mutants of config/sandbox.yaml (deleted,
 * duplicated, swapped and re-indented lines, scalars replaced by hostile tokens, near-miss keys, truncations, random
 * bytes, alias bombs, deep nesting, 1 MB values) go through `main(["node", "failoverd", "validate", "--config", f])`.
 * Every mutant: main resolves with 0 ("valid" on stdout) or 2 (one `failoverd: ` line on stderr, no stack, short).
 * Also CLI misuse through main(), with arguments that fail before anything starts.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { main } from "../../src/cli/main.ts";
import { mulberry32 } from "../helpers/random.ts";
import { PACKAGE_ROOT } from "../../src/package-root.ts";

const REPO = PACKAGE_ROOT;
const SANDBOX_PATH = join(REPO, "config/sandbox.yaml");
const SANDBOX = readFileSync(SANDBOX_PATH, "utf8");
const MAX_LINE = 2000;

interface CliResult {
  readonly code: number | undefined;
  readonly threw: unknown;
  readonly stdout: string;
  readonly stderr: string;
}

type Write = typeof process.stdout.write;

/**
 * Runs main() in process and captures what it writes. String chunks are the CLI's (commander and `out` write
 * strings); anything else (the test runner's own serialized report to its parent) passes through untouched.
 */
async function cli(...args: string[]): Promise<CliResult> {
  const outWrite = process.stdout.write;
  const errWrite = process.stderr.write;
  let stdout = "";
  let stderr = "";
  const capture = (original: Write, stream: NodeJS.WriteStream, append: (s: string) => void): Write =>
    ((chunk: unknown, ...rest: unknown[]): boolean => {
      if (typeof chunk !== "string") return (original as (...a: unknown[]) => boolean).call(stream, chunk, ...rest);
      append(chunk);
      const callback = rest.find((r): r is () => void => typeof r === "function");
      callback?.();
      return true;
    }) as Write;
  process.stdout.write = capture(outWrite, process.stdout, (s) => {
    stdout += s;
  });
  process.stderr.write = capture(errWrite, process.stderr, (s) => {
    stderr += s;
  });
  let code: number | undefined;
  let threw: unknown;
  try {
    code = await main(["node", "failoverd", ...args]);
  } catch (e) {
    threw = e ?? new Error("main threw a nullish value");
  } finally {
    process.stdout.write = outWrite;
    process.stderr.write = errWrite;
  }
  return { code, threw, stdout, stderr };
}

/** What is wrong with a result of `validate`, or null when it keeps the contract. */
function contractBreach(r: CliResult): string | null {
  if (r.threw !== undefined) return `main threw: ${r.threw instanceof Error ? r.threw.stack : String(r.threw)}`;
  if (r.code === 0) {
    if (!/: valid\. topology /.test(r.stdout)) return `exit 0 without "valid" on stdout: ${JSON.stringify(r.stdout.slice(0, 300))}`;
    if (r.stderr !== "") return `exit 0 with stderr ${JSON.stringify(r.stderr.slice(0, 300))}`;
    return null;
  }
  if (r.code !== 2) return `exit ${r.code} (expected 0 or 2); stderr ${JSON.stringify(r.stderr.slice(0, 600))}`;
  if (/\n {4}at /.test(r.stderr)) return `a stack trace on stderr: ${JSON.stringify(r.stderr.slice(0, 600))}`;
  if (!r.stderr.endsWith("\n")) return `stderr does not end with a newline: ${JSON.stringify(r.stderr.slice(-200))}`;
  const lines = r.stderr.split("\n");
  if (lines.length !== 2) return `${lines.length - 1} lines on stderr: ${JSON.stringify(r.stderr.slice(0, 600))}`;
  const line = lines[0] ?? "";
  if (!line.startsWith("failoverd: ") || line.length <= "failoverd: ".length) return `not a failoverd: line: ${JSON.stringify(line.slice(0, 300))}`;
  if (line.length > MAX_LINE) return `a ${line.length}-character line: ${JSON.stringify(`${line.slice(0, 200)}...${line.slice(-100)}`)}`;
  if (/internal error/.test(line)) return `an internal error: ${line.slice(0, 600)}`;
  if (r.stdout !== "") return `exit 2 with stdout ${JSON.stringify(r.stdout.slice(0, 300))}`;
  return null;
}


type Random = () => number;
const int = (rand: Random, n: number): number => Math.floor(rand() * n);
function pick<T>(rand: Random, items: readonly T[]): T {
  const item = items[int(rand, items.length)];
  if (item === undefined) throw new Error("pick from an empty list");
  return item;
}

/** Hostile scalars, by kind. */
const TOKENS: Readonly<Record<string, readonly string[]>> = {
  huge: ["1e309", "99999999999999999999999999", "9007199254740993", `1${"0".repeat(400)}`, "0x7fffffffffffffff", "65536"],
  negative: ["-1", "-9001", "-0", "-1e6", "-.5"],
  float: ["1.5", "0.1", "9001.0", "6.02e23", ".inf", "-.inf", ".nan", "1e-7"],
  string: [
    `"a\\"b'c"`,
    `'it''s'`,
    `"line1\\nline2"`,
    `"tab\\there"`,
    `"crlf\\r\\nx"`,
    `"héllo ☃ 𝄞 \u202e mirrored"`,
    `"\\0"`,
    `"nul\\x00byte"`,
    `"\\u2028separator"`,
    `"bell\\a\\e"`,
    `"unterminated`,
    `'unterminated`,
    `""`,
    `"   "`,
    `"\\ud83d"`,
    "日本語",
    "Ünïcödé",
  ],
  null: ["null", "~", "Null", ""],
  list: ["[]", "[1, 2, 3]", "[a, [b, [c]]]", "[null]", "[", "[9001, 9002"],
  mapping: ["{}", "{a: 1}", "{role: redis}", "{env: X}", "{", "{a: 1, a: 2}"],
  other: ["true", "no", "!!binary aGVsbG8=", "!!str 9001", "!custom 1", "*nosuchalias", "&anchor 5", "2001-12-14", "0o17", "1_000", "@reserved", "`tick", "%percent", "? q", "- item", "|", ">", "#", "&a [*a]"],
};
const TOKEN_KINDS = Object.keys(TOKENS);
const randomToken = (rand: Random): string => pick(rand, TOKENS[pick(rand, TOKEN_KINDS)] ?? ["x"]);

/** A key spelled almost right. */
function nearMiss(rand: Random, key: string): string {
  const i = int(rand, key.length);
  const letters = "abcdefghijklmnopqrstuvwxyz";
  switch (int(rand, 10)) {
    case 0:
      return key.length > 1 ? key.slice(0, i) + key.slice(i + 1) : `${key}${key}`;
    case 1:
      return key.slice(0, i) + key[i] + key.slice(i);
    case 2:
      return i + 1 < key.length ? key.slice(0, i) + key[i + 1] + key[i] + key.slice(i + 2) : `${key}s`;
    case 3:
      return key[0]?.toUpperCase() + key.slice(1);
    case 4:
      return `${key}s`;
    case 5:
      return key.slice(0, i) + pick(rand, [...letters]) + key.slice(i + 1);
    case 6:
      return key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`) + (/[A-Z]/.test(key) ? "" : "_");
    case 7:
      return key.replace("e", "\u0435"); // a Cyrillic homoglyph (or the key itself when it has no e)
    case 8:
      return `"${key} "`;
    default:
      return key.toUpperCase();
  }
}

const LINES = SANDBOX.split("\n");
/** Lines with content (not blank, not only a comment): the ones whose mutation matters. */
const CONTENT = LINES.flatMap((l, i) => (l.trim() === "" || l.trim().startsWith("#") ? [] : [i]));

interface Token {
  readonly index: number;
  readonly text: string;
  readonly key: boolean;
}

/** Words of a line before any comment: keys (followed by `:`) and values. */
function tokensOf(line: string): Token[] {
  const code = line.replace(/\s+#.*$/, "");
  return [...code.matchAll(/[A-Za-z0-9_./-]+/g)].map((m) => ({
    index: m.index ?? 0,
    text: m[0],
    key: /^:(\s|$)/.test(code.slice((m.index ?? 0) + m[0].length)),
  }));
}

function replaceLine(index: number, f: (line: string) => string): string {
  return LINES.map((l, i) => (i === index ? f(l) : l)).join("\n");
}

/** A content line with at least one token of the wanted sort; its tokens. */
function lineWith(rand: Random, key: boolean): { index: number; tokens: Token[] } {
  for (;;) {
    const index = pick(rand, CONTENT);
    const tokens = tokensOf(LINES[index] ?? "").filter((t) => t.key === key);
    if (tokens.length > 0) return { index, tokens };
  }
}

/** The text with the top-level `key` (and its indented block) replaced by `key: value`. */
function replaceSection(key: string, value: string): string {
  const start = LINES.findIndex((l) => l.startsWith(`${key}:`));
  let end = start + 1;
  while (end < LINES.length && /^(\s|$)/.test(LINES[end] ?? "")) end++;
  return [...LINES.slice(0, start), `${key}: ${value}`, ...LINES.slice(end)].join("\n");
}

function spliceToken(line: string, t: Token, replacement: string): string {
  return line.slice(0, t.index) + replacement + line.slice(t.index + t.text.length);
}

/** Nested lists or mappings, flow or block style. */
function nested(rand: Random, depth: number): string {
  switch (int(rand, 3)) {
    case 0:
      return `${"[".repeat(depth)}1${"]".repeat(depth)}`;
    case 1:
      return `${"{a: ".repeat(depth)}1${"}".repeat(depth)}`;
    default:
      return `\n${Array.from({ length: depth }, (_, i) => `${"  ".repeat(i + 1)}- `).join("\n")}1`;
  }
}

/** Billion laughs with `levels` levels of `width` references each, as one flow mapping value. */
function laughs(levels: number, width: number): string {
  const parts = [`l0: &l0 [${Array(width).fill('"lol"').join(", ")}]`];
  for (let i = 1; i < levels; i++) parts.push(`l${i}: &l${i} [${Array(width).fill(`*l${i - 1}`).join(", ")}]`);
  return `{ ${parts.join(", ")} }`;
}

const MB = 1 << 20;

interface Mutant {
  readonly label: string;
  readonly content: string | Buffer;
}

type Mutation = (rand: Random) => Mutant;

const MUTATIONS: Readonly<Record<string, Mutation>> = {
  "delete a line": (rand) => {
    const i = pick(rand, CONTENT);
    return { label: `line ${i + 1}`, content: LINES.filter((_, j) => j !== i).join("\n") };
  },
  "duplicate a line": (rand) => {
    const i = pick(rand, CONTENT);
    const at = rand() < 0.5 ? i : int(rand, LINES.length);
    const copy = [...LINES];
    copy.splice(at, 0, LINES[i] ?? "");
    return { label: `line ${i + 1} at ${at + 1}`, content: copy.join("\n") };
  },
  "replace a scalar": (rand) => {
    const { index, tokens } = lineWith(rand, false);
    const t = pick(rand, tokens);
    const token = randomToken(rand);
    return { label: `line ${index + 1} ${t.text} -> ${JSON.stringify(token)}`, content: replaceLine(index, (l) => spliceToken(l, t, token)) };
  },
  "rename a key": (rand) => {
    const { index, tokens } = lineWith(rand, true);
    const t = pick(rand, tokens);
    const key = nearMiss(rand, t.text);
    return { label: `line ${index + 1} ${t.text} -> ${JSON.stringify(key)}`, content: replaceLine(index, (l) => spliceToken(l, t, key)) };
  },
  "re-indent a line": (rand) => {
    const i = pick(rand, CONTENT);
    const indent = pick(rand, ["", " ", "   ", "     ", "\t", "  \t", "        "]);
    return { label: `line ${i + 1} with ${JSON.stringify(indent)}`, content: replaceLine(i, (l) => indent + l.trimStart()) };
  },
  truncate: (rand) => {
    const at = int(rand, SANDBOX.length);
    return { label: `at ${at}`, content: SANDBOX.slice(0, at) };
  },
  "splice random bytes": (rand) => {
    const base = Buffer.from(SANDBOX, "utf8");
    const at = int(rand, base.length + 1);
    const n = 1 + int(rand, 64);
    const min = rand() < 0.25 ? 0 : 1; // mostly no NUL, so the bytes reach the YAML parser
    const bytes = Buffer.from(Array.from({ length: n }, () => min + int(rand, 256 - min)));
    const overwrite = rand() < 0.5;
    const content = Buffer.concat([base.subarray(0, at), bytes, base.subarray(overwrite ? Math.min(base.length, at + n) : at)]);
    return { label: `${n} bytes ${overwrite ? "over" : "at"} ${at}`, content };
  },
  "swap two lines": (rand) => {
    const a = pick(rand, CONTENT);
    let b = pick(rand, CONTENT);
    while (b === a || LINES[b] === LINES[a]) b = pick(rand, CONTENT);
    const copy = [...LINES];
    copy[a] = LINES[b] ?? "";
    copy[b] = LINES[a] ?? "";
    return { label: `lines ${a + 1} and ${b + 1}`, content: copy.join("\n") };
  },
  "an alias bomb": (rand) => {
    const levels = 3 + int(rand, 7);
    const width = 3 + int(rand, 7);
    const bomb = pick(rand, ["&a [*a]", "&m { k: *m }", laughs(levels, width), `[${laughs(levels, width)}, *l${levels - 1}]`]);
    if (rand() < 0.3) return { label: `top-level ${bomb.slice(0, 40)}`, content: `bomb: ${bomb}\n${SANDBOX}` };
    const { index, tokens } = lineWith(rand, false);
    const t = pick(rand, tokens);
    return { label: `line ${index + 1} ${t.text} -> ${bomb.slice(0, 40)}`, content: replaceLine(index, (l) => spliceToken(l, t, bomb)) };
  },
  "deep nesting": (rand) => {
    const depth = pick(rand, [20, 100, 500, 1000, 3000]);
    const value = nested(rand, depth);
    const key = pick(rand, ["checks", "pairs", "recovery", "hosts", "topology"]);
    return { label: `${key} at depth ${depth}`, content: replaceSection(key, value) };
  },
};

/** About a thousand 1 KB entries: 1 MB. */
const kilo = (f: (i: number) => string): string => Array.from({ length: 1024 }, (_, i) => f(i)).join("");

/** A 1 MB value (costly: a few per run). */
function huge(rand: Random): Mutant {
  switch (int(rand, 8)) {
    case 0:
      return { label: "a 1 MB topology name", content: SANDBOX.replace("topology: sandbox", `topology: ${"v".repeat(MB)}`) };
    case 1:
      return { label: "a 1 MB quoted unicode dnsName", content: SANDBOX.replace("dnsName: haproxy1.sandbox.internal", `dnsName: "${"é☃".repeat(MB / 4)}"`) };
    case 2:
      return { label: "a 1 MB key", content: `${SANDBOX}\n${"k".repeat(MB)}: 1\n` };
    case 3:
      return { label: "a 1 MB list of bad pairs", content: SANDBOX.replace("  - [redis1, redis2]", `  - [redis1, redis2]\n${kilo((i) => `  - [nosuch-${i}-${"x".repeat(1000)}, other]\n`)}`) };
    case 4:
      return { label: "a 1 MB list of upstreams", content: SANDBOX.replace("upstreams: [haproxy1, haproxy2]", `upstreams: [${kilo((i) => `ghost-${i}-${"g".repeat(1000)}, `)}haproxy1]`) };
    case 5:
      return { label: "a 1 MB block scalar runDir", content: SANDBOX.replace("runDir: .failoverd/sandbox", `runDir: |\n${kilo(() => `    ${"r".repeat(1019)}\n`)}`) };
    case 6:
      return { label: "a 1 MB list of ports", content: SANDBOX.replace("ports: [9001, 9002] }   # starts as primary", `ports: [${kilo((i) => `${i % 2 ? "-" : ""}${"9".repeat(1000)}, `)}9001] }`) };
    default:
      return { label: "a 1 MB mapping of unknown keys", content: SANDBOX.replace("checks:\n", `checks:\n${kilo((i) => `  junk${i}-${"k".repeat(90)}: ${"v".repeat(920)}\n`)}`) };
  }
}

const COUNT = 660;
const HUGE_EVERY = 55;

function mutants(seed: number): Mutant[] {
  const rand = mulberry32(seed);
  const names = Object.keys(MUTATIONS);
  // The most telling mutations come up more often.
  const order = [...names, "replace a scalar", "replace a scalar", "rename a key", "an alias bomb"];
  const out: Mutant[] = [];
  for (let i = 0; i < COUNT; i++) {
    if (i % HUGE_EVERY === 7) {
      const m = huge(rand);
      out.push({ label: `#${i} 1 MB: ${m.label}`, content: m.content });
      continue;
    }
    const name = order[i % order.length] ?? "truncate";
    const m = (MUTATIONS[name] ?? MUTATIONS["truncate"]!)(rand);
    out.push({ label: `#${i} ${name}: ${m.label}`, content: m.content });
  }
  return out;
}

let dir = "";
before(() => {
  dir = mkdtempSync(join(tmpdir(), "failoverd-fuzz-"));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("failoverd validate: generated mutants of config/sandbox.yaml", () => {
  test("the unmutated sandbox config is valid in process (the harness captures what main writes)", async () => {
    const r = await cli("validate", "--config", SANDBOX_PATH);
    assert.equal(contractBreach(r), null);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /2 Redis hosts \(4 servers\) in 1 pair/);
  });

  test(`${COUNT} seeded mutants: exit 0 with "valid" or exit 2 with one short failoverd: line; most are invalid`, async () => {
    const all = mutants(0xf41107e5);
    assert.equal(all.length, COUNT);
    const breaches: string[] = [];
    const byOutcome = { valid: 0, invalid: 0 };
    const invalidByKind = new Map<string, number>();
    for (const [i, m] of all.entries()) {
      const file = join(dir, `mutant-${i}.yaml`);
      writeFileSync(file, m.content);
      const r = await cli("validate", "--config", file);
      rmSync(file);
      const breach = contractBreach(r);
      if (breach) breaches.push(`${m.label}: ${breach}`);
      if (r.code === 2) {
        byOutcome.invalid++;
        const kind = m.label.replace(/^#\d+ /, "").replace(/:.*$/, "");
        invalidByKind.set(kind, (invalidByKind.get(kind) ?? 0) + 1);
        assert.ok(r.stderr.includes(file), `${m.label}: the message names the file: ${r.stderr.slice(0, 300)}`);
      } else if (r.code === 0) byOutcome.valid++;
    }
    assert.deepEqual(breaches.slice(0, 10), [], `${breaches.length} mutants broke the contract`);
    assert.equal(byOutcome.valid + byOutcome.invalid, COUNT);
    assert.ok(byOutcome.invalid >= 500, `only ${byOutcome.invalid} of ${COUNT} mutants were refused`);
    // Every mutation produced refused configs, so each path was really exercised.
    for (const name of [...Object.keys(MUTATIONS), "1 MB"]) {
      assert.ok((invalidByKind.get(name) ?? 0) > 0, `no ${name} mutant was refused: ${JSON.stringify([...invalidByKind])}`);
    }
  });
});

describe("failoverd: misuse through main(), refused before anything starts", () => {
  const missing = () => join(dir, "no-such-config.yaml");

  /** Exit 2 and exactly one line on stderr that matches `pattern`; nothing on stdout; no stack. */
  function assertRefused(r: CliResult, pattern: RegExp): string {
    const detail = `code ${r.code}, stderr ${JSON.stringify(r.stderr)}, stdout ${JSON.stringify(r.stdout.slice(0, 300))}`;
    assert.equal(r.threw, undefined, detail);
    assert.equal(r.code, 2, detail);
    assert.doesNotMatch(r.stderr, /\n {4}at /, detail);
    const lines = r.stderr.split("\n");
    assert.equal(lines.length, 2, `one line on stderr: ${detail}`);
    assert.equal(lines[1], "", detail);
    assert.match(lines[0] ?? "", pattern, detail);
    assert.equal(r.stdout, "", detail);
    return lines[0] ?? "";
  }

  test("an unknown command exits 2 naming it", async () => {
    assertRefused(await cli("frobnicate"), /unknown command 'frobnicate'/);
  });

  test("an unknown option exits 2 naming it", async () => {
    assertRefused(await cli("validate", "--bogus", "--config", SANDBOX_PATH), /unknown option '--bogus'/);
  });

  test("simulate without --target exits 2 (the required option is checked before the config is read)", async () => {
    assertRefused(await cli("simulate", "--config", missing()), /required option '-t, --target <host>' not specified/);
  });

  test("simulate --fault bogus exits 2 naming the option and the choices", async () => {
    assertRefused(await cli("simulate", "--target", "redis1", "--fault", "bogus", "--config", missing()), /--fault.*'bogus'.*crash, hang or vanish/);
  });

  test("simulate --hang-ms -5 exits 2 naming the option", async () => {
    assertRefused(await cli("simulate", "--target", "redis1", "--hang-ms", "-5", "--config", missing()), /--hang-ms.*'-5'.*whole number of milliseconds/);
  });

  for (const bad of ["abc", "0", "1.5"]) {
    test(`preflight --timeout-ms ${bad} exits 2 naming the option (it was taken as the default)`, async () => {
      assertRefused(await cli("preflight", "--timeout-ms", bad, "--config", missing()), new RegExp(`--timeout-ms.*'${bad.replace(".", "\\.")}'.*whole number of milliseconds`));
    });
  }

  test("plan --target nope exits 2 with one failoverd: line naming the host and the declared ones", async () => {
    const line = assertRefused(await cli("plan", "--target", "nope", "--config", SANDBOX_PATH), /^failoverd: .*'nope'/);
    assert.match(line, /redis1, redis2, haproxy1, haproxy2, app/);
  });

  test("plan --target app exits 2: app hosts are not recovered", async () => {
    assertRefused(await cli("plan", "--target", "app", "--config", SANDBOX_PATH), /^failoverd: .*\bapp\b.*app host/);
  });

  test("status --config /nonexistent exits 2 naming the file", async () => {
    assertRefused(await cli("status", "--config", "/nonexistent"), /^failoverd: \/nonexistent: cannot read the config: no such file$/);
  });

  test("--help exits 0 and prints the usage on stdout", async () => {
    const r = await cli("--help");
    assert.equal(r.threw, undefined);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Usage: failoverd /);
    for (const command of ["run", "simulate", "plan", "status", "validate", "sandbox"]) assert.match(r.stdout, new RegExp(`\\n  ${command}\\b`));
    assert.equal(r.stderr, "");
  });
});
