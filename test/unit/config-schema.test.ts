/**
 * `failoverd schema`: the JSON Schema editors use (yaml-language-server) must accept every config failoverd accepts
 * and reject what it rejects. Checked with a real JSON Schema validator (ajv, draft 2020-12, with formats), on the
 * printed output of the command, against the bundled configs and the test topologies.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";
import { parse } from "yaml";
import { BIN_PATH, PACKAGE_ROOT, packagePath } from "../../src/package-root.ts";
import { parseTopology } from "../../src/topology/load.ts";
import { awsTopologyYaml } from "../helpers/fake-aws.ts";
import { sandboxYaml } from "../helpers/recording-providers.ts";

// ajv-formats is CommonJS with an `exports.default`: imported from ESM, the function is the default's `default`.
const addFormats = addFormatsModule.default;

function printedSchema(): Record<string, unknown> {
  const r = spawnSync(process.execPath, [BIN_PATH, "schema"], { cwd: PACKAGE_ROOT, encoding: "utf8", timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, "");
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

const schema = printedSchema();
// strictTuples off: a command line (a fixed program, then any arguments) is prefixItems + items, valid 2020-12 that
// ajv's strict mode would still flag as a possibly unbounded tuple.
const ajv = new Ajv2020({ allErrors: true, strict: true, strictTuples: false, allowUnionTypes: true });
addFormats(ajv);
const validate = ajv.compile(schema);

function errorsOf(text: string): string[] {
  if (validate(parse(text))) return [];
  return (validate.errors ?? []).map((e) => `${e.instancePath || "/"} ${e.message ?? ""}`);
}

const SANDBOX = readFileSync(packagePath("config", "sandbox.yaml"), "utf8");

describe("failoverd schema", () => {
  test("prints a draft 2020-12 schema that a strict validator compiles", () => {
    assert.equal(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert.equal(schema["type"], "object");
    assert.equal(schema["additionalProperties"], false);
    assert.deepEqual(schema["required"], ["topology", "hosts", "pairs"]);
  });

  test("every bundled config is valid against it, as it is for failoverd", () => {
    const files = readdirSync(packagePath("config")).filter((f) => f.endsWith(".yaml"));
    assert.ok(files.includes("sandbox.yaml") && files.length >= 2, `bundled configs: ${files.join(", ")}`);
    for (const f of files) {
      const text = readFileSync(packagePath("config", f), "utf8");
      parseTopology(text, f);
      assert.deepEqual(errorsOf(text), [], `config/${f}`);
    }
  });

  test("the test topologies (local and AWS providers) are valid against it", () => {
    assert.deepEqual(errorsOf(sandboxYaml()), []);
    assert.deepEqual(errorsOf(awsTopologyYaml({ net: 165 })), []);
    const template = awsTopologyYaml({ net: 165, provider: "  launchTemplate: { name: redis-node, version: $Latest }" });
    assert.deepEqual(errorsOf(template), []);
  });

  const bad: [string, string, RegExp][] = [
    ["a port out of range", SANDBOX.replace("ports: [9001, 9002] }   # starts as primary", "ports: [9001, 70000] }"), /^\/hosts\/redis1\/ports\/1 must be <= 65535$/m],
    ["an unknown top-level key", `${SANDBOX}\nfailover: yes\n`, /^\/ must NOT have additional properties$/m],
    ["a host role failoverd does not know", SANDBOX.replace("role: app", "role: mysql"), /^\/hosts\/app /m],
    ["no pairs", SANDBOX.replace("pairs:\n  - [redis1, redis2]\n", ""), /^\/ must have required property 'pairs'$/m],
    ["an address that is not IPv4", SANDBOX.replace("address: 127.0.1.1", "address: redis1.internal"), /^\/hosts\/redis1\/address must match format "ipv4"$/m],
    ["a check interval as a string", SANDBOX.replace("intervalMs: 200", 'intervalMs: "200ms"'), /^\/checks\/intervalMs must be (integer|number)$/m],
  ];
  for (const [what, text, expected] of bad) {
    test(`rejects ${what}, as failoverd does`, () => {
      assert.notEqual(text, SANDBOX, "the test's edit did not apply");
      assert.throws(() => parseTopology(text, "bad.yaml"), { name: "ConfigError" });
      const errors = errorsOf(text);
      assert.ok(errors.length > 0, "the schema accepted it");
      assert.match(errors.join("\n"), expected);
    });
  }
});
