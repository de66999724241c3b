/**
 * `failoverd cleanup` on the local sandbox (loopback net 150): a failed machine kept by a recovery (stopped, its
 * directory kept) is listed, left alone while younger than --older-than, described by --dry-run, and released
 * (terminated) otherwise. Bad input: one line, exit 2.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { PACKAGE_ROOT } from "../../src/package-root.ts";
import { promisify } from "node:util";
import { LocalCompute } from "../../src/providers/local/index.ts";
import { Sandbox } from "../../src/providers/local/sandbox.ts";
import type { Machine } from "../../src/providers/types.ts";
import { assertAddressesFree, testTopology } from "../helpers/sandbox.ts";

const REPO = PACKAGE_ROOT;
const tt = testTopology({ net: 150, name: "cleanup150" });
const p = tt.topology.config.provider;
if (p.kind !== "local") throw new Error("expected the local provider");
const sandbox = new Sandbox(tt.topology.name, p);
const compute = new LocalCompute(sandbox);

async function cli(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await promisify(execFile)(process.execPath, ["bin/failoverd.js", "cleanup", ...args, "--config", tt.path], { cwd: REPO, timeout: 60_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

describe("failoverd cleanup", () => {
  let kept: Machine;
  before(async () => {
    await assertAddressesFree(tt.topology);
    kept = await compute.launch({ host: "redis1", role: "redis", ports: [9001] }, AbortSignal.timeout(20_000));
    await compute.keep(kept, { mode: "stop", recoveryId: "20261202-redis1-test" }, AbortSignal.timeout(20_000));
  });
  after(async () => {
    await sandbox.down();
    tt.cleanup();
  });

  it("younger than --older-than: listed and kept", async () => {
    const r = await cli(["--older-than", "7d"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^kept +${kept.id} \\(redis1, stop, recovery 20261202-redis1-test, kept 20\\d\\d-`, "m"));
    assert.equal((await compute.kept()).length, 1);
  });

  it("--dry-run: would release, and changes nothing", async () => {
    const r = await cli(["--older-than", "0", "--dry-run", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { machines: { id: string; action: string }[] };
    assert.deepEqual(j.machines.map((m) => [m.id, m.action]), [[kept.id, "would release"]]);
    assert.equal((await compute.kept()).length, 1);
  });

  it("older: released (terminated); its record says so and it is listed no more", async () => {
    const dir = sandbox.read().machines.find((m) => m.id === kept.id)!.dir;
    assert.ok(existsSync(dir), "a kept machine keeps its directory");
    const r = await cli(["--older-than", "0"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^released +${kept.id} `, "m"));
    assert.deepEqual(await compute.kept(), []);
    assert.equal(sandbox.read().machines.find((m) => m.id === kept.id)?.status, "terminated");
  });

  it("a bad age: one line naming the option, exit 2", async () => {
    const r = await cli(["--older-than", "7 days"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--older-than.*must be a whole number with a unit/);
    assert.equal(r.stderr.trim().split("\n").length, 1);
  });
});
