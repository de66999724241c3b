/**
 * What `npm pack` ships and what runs: only runtime files (the compiled dist/src, the bin entry, config/, README,
 * LICENSE); the shipped code imports nothing but Node's modules, its own files and the package's dependencies (no
 * TypeScript compiler or loader at run time); the supported Node is the one the tests run on.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, test } from "node:test";
import { BIN_PATH, PACKAGE_ROOT, packagePath } from "../../src/package-root.ts";

interface PackageJson {
  readonly license: string;
  readonly engines: { readonly node: string };
  readonly bin: Record<string, string>;
  readonly dependencies: Record<string, string>;
  readonly devDependencies: Record<string, string>;
}
const pkg = JSON.parse(readFileSync(packagePath("package.json"), "utf8")) as PackageJson;

function packedFiles(): string[] {
  // --ignore-scripts: the prepack build already happened (these tests run from it); --json lists every file.
  const r = spawnSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: PACKAGE_ROOT, encoding: "utf8", timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  const [report] = JSON.parse(r.stdout) as { files: { path: string }[] }[];
  return report!.files.map((f) => f.path).sort();
}

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]));
}

/** Every module specifier a compiled file imports (static, re-export and dynamic with a literal). */
function specifiersOf(code: string): string[] {
  const re = /(?:^|[\s;])(?:import|export)\s[^;]*?\sfrom\s*["']([^"']+)["']|\bimport\s*\(\s*["']([^"']+)["']\s*\)|^import\s*["']([^"']+)["']/gm;
  return [...code.matchAll(re)].map((m) => m[1] ?? m[2] ?? m[3] ?? "");
}

const RUNTIME = /^(dist\/src\/.+\.js|bin\/failoverd\.js|config\/.+|README\.md|LICENSE|package\.json)$/;

describe("the package", () => {
  test("npm pack ships only runtime files, and all of them", () => {
    const files = packedFiles();
    const strays = files.filter((f) => !RUNTIME.test(f));
    assert.deepEqual(strays, [], "files npm pack would ship that do not run");
    for (const f of ["bin/failoverd.js", "dist/src/cli/main.js", "config/sandbox.yaml", "config/failoverd.service", "README.md", "LICENSE"]) {
      assert.ok(files.includes(f), `npm pack leaves out ${f}`);
    }
    const compiled = walk(packagePath("dist", "src")).map((f) => relative(PACKAGE_ROOT, f));
    assert.deepEqual(files.filter((f) => f.startsWith("dist/")), compiled.filter((f) => f.endsWith(".js")).sort());
    assert.equal(pkg.bin["failoverd"], "bin/failoverd.js");
  });

  test("the shipped code imports only Node, its own compiled files and the package's dependencies", () => {
    const files = [BIN_PATH, ...walk(packagePath("dist", "src")).filter((f) => f.endsWith(".js"))];
    const problems: string[] = [];
    for (const file of files) {
      for (const spec of specifiersOf(readFileSync(file, "utf8"))) {
        const where = relative(PACKAGE_ROOT, file);
        if (spec.startsWith("node:")) continue;
        if (spec.startsWith(".")) {
          const target = resolve(dirname(file), spec);
          if (!spec.endsWith(".js") || !existsSync(target)) problems.push(`${where}: ${spec} is not a compiled file`);
          else if (!relative(PACKAGE_ROOT, target).startsWith("dist/src/")) problems.push(`${where}: ${spec} is outside dist/src`);
          continue;
        }
        const name = spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : (spec.split("/")[0] ?? spec);
        if (!(name in pkg.dependencies)) problems.push(`${where}: imports ${spec}, which is not a dependency`);
      }
    }
    assert.ok(files.length > 50, `only ${files.length} files scanned`);
    assert.deepEqual(problems, []);
    assert.ok(!("tsx" in pkg.dependencies) && !("typescript" in pkg.dependencies), "a TypeScript toolchain among the runtime dependencies");
    // The entry runs the compiled code: bin/failoverd.js imports dist/src/cli/main.js.
    assert.match(readFileSync(BIN_PATH, "utf8"), /"\.\.\/dist\/src\/cli\/main\.js"/);
  });

  test("no source finds the package's files relative to itself, or runs TypeScript at run time", () => {
    // Compiled, src/x.ts is dist/src/x.js and test/unit/x.test.ts is dist/test/unit/x.test.js, one level deeper, and
    // only .ts files are compiled: `../../bin/failoverd.js` or a fixture beside a test would not be found from dist/.
    // src/package-root.ts (PACKAGE_ROOT, packagePath, BIN_PATH) is the way; a compiled sibling ("./x.js") is fine.
    const allowed = new Set(["src/package-root.ts", "src/version.ts"]);
    const sources = ["src", "test", "bench"].flatMap((d) => walk(packagePath(d))).filter((f) => f.endsWith(".ts"));
    const problems: string[] = [];
    for (const file of sources) {
      const where = relative(PACKAGE_ROOT, file);
      if (allowed.has(where)) continue;
      readFileSync(file, "utf8")
        .split("\n")
        .forEach((line, i) => {
          const bad =
            /import\.meta\.(dirname|filename)\b/.test(line) ||
            /new URL\(\s*["'`](?!\.\/[\w.-]+\.js["'`])[^"'`]*["'`]\s*,\s*import\.meta\.url/.test(line) ||
            /["'`]--import["'`]\s*,\s*["'`]tsx/.test(line) ||
            /--import[= ]tsx/.test(line.replace(/^\s*(\/\/|\*).*/, ""));
          if (bad) problems.push(`${where}:${i + 1}: ${line.trim()}`);
        });
    }
    assert.ok(sources.length > 50, `only ${sources.length} sources scanned`);
    assert.deepEqual(problems, [], "use packagePath()/BIN_PATH from src/package-root.ts; run compiled JavaScript, not tsx");
  });

  test("engines names a supported Node LTS, and the tests run on it", () => {
    const min = /^>=(\d+)$/.exec(pkg.engines.node);
    assert.ok(min, `engines.node is ${pkg.engines.node}`);
    // Node 20 and 22 reach end of life in April 2026 and April 2027; 24 is the current LTS.
    assert.ok(Number(min[1]) >= 24, `engines.node is ${pkg.engines.node}`);
    const major = Number(process.versions.node.split(".")[0]);
    assert.ok(major >= Number(min[1]), `the tests run on Node ${process.version}, below engines ${pkg.engines.node} (scripts/setup links Node 24)`);
    // And as compiled JavaScript: this file is dist/test/unit/package.test.js.
    assert.match(import.meta.url, /\/dist\/test\/unit\/package\.test\.js$/);
  });

  test("LICENSE is the MIT license package.json names", () => {
    assert.equal(pkg.license, "MIT");
    const text = readFileSync(packagePath("LICENSE"), "utf8");
    assert.match(text, /^MIT License\n\nCopyright \(c\) \d{4} the failoverd authors\n/);
    assert.match(text, /THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND/);
  });
});
