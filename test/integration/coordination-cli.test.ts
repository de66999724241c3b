/**
 * `failoverd run` with a bad coordination setup: one clear line, exit 2, nothing half-started (no check round, no
 * state written). etcd endpoints on 127.182.9.1 where nothing listens (checked first).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { BIN_PATH } from "../../src/package-root.ts";
import { whyNotFree } from "../../src/providers/local/processes.ts";
import { testTopology, type TestTopology } from "../helpers/sandbox.ts";


function run(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN_PATH, ...args], { env: { ...process.env, NO_COLOR: "1" } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 90_000);
    child.on("exit", (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

function assertOneLine(r: { status: number | null; stdout: string; stderr: string }, mention: RegExp): void {
  const detail = `status ${r.status}\nstderr: ${r.stderr}\nstdout: ${r.stdout.slice(-2000)}`;
  assert.equal(r.status, 2, detail);
  const lines = r.stderr.split("\n").filter((l) => l !== "");
  assert.equal(lines.length, 1, `one line on stderr\n${detail}`);
  assert.match(lines[0]!, /^failoverd: /, detail);
  assert.match(lines[0]!, mention, detail);
  assert.doesNotMatch(r.stderr, /\n {4}at /, `no stack trace\n${detail}`);
  assert.doesNotMatch(r.stdout, /failoverd started|roles discovered/, `nothing started\n${detail}`);
}

describe("failoverd run with a bad coordination setup", { timeout: 300_000 }, () => {
  let tt: TestTopology;
  before(async () => {
    assert.equal(await whyNotFree("127.182.9.1", 2379), null, "127.182.9.1:2379 must be free");
    tt = testTopology({ net: 182, extra: "coordination: { endpoints: [http://127.182.9.1:2379], leaseTtlSeconds: 2 }" });
  });
  after(() => tt.cleanup());

  test("unreachable etcd endpoints: exit 2, one line naming them, no state written", async () => {
    const r = await run(["run", "--config", tt.path, "--instance", "m1"]);
    assertOneLine(r, /cannot reach etcd at http:\/\/127\.182\.9\.1:2379/);
    assert.ok(!existsSync(join(tt.topology.config.stateDir, "daemon.json")), "no daemon state written");
  });

  test("a bad coordination section: exit 2, one line naming the field", async () => {
    const bad = join(tt.dir, "bad.yaml");
    writeFileSync(bad, tt.yaml.replace("leaseTtlSeconds: 2", "leaseTtlSeconds: 1"));
    assertOneLine(await run(["run", "--config", bad]), /coordination\.leaseTtlSeconds: must be at least 2/);
  });

  test("--instance without a coordination section: exit 2, one line", async () => {
    const single = join(tt.dir, "single.yaml");
    writeFileSync(single, tt.yaml.replace(/^coordination:.*$/m, ""));
    assertOneLine(await run(["run", "--config", single, "--instance", "m1"]), /--instance m1: the config has no coordination section/);
  });
});
