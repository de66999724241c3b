/**
 * `failoverd sandbox up --monitors 3` starts the sandbox and a 3-member etcd on the coordination section's endpoints
 * (127.183.9.1-3); `sandbox down` stops both, by PID.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, test } from "node:test";
import { Etcd3 } from "etcd3";
import { sandboxDown } from "../../src/providers/local/up.ts";
import { BIN_PATH } from "../../src/package-root.ts";
import { whyNotFree } from "../../src/providers/local/processes.ts";
import { EtcdCluster } from "../../src/simulate/etcd-cluster.ts";
import { assertAddressesFree, testTopology, type TestTopology } from "../helpers/sandbox.ts";

const ADDRESSES = [1, 2, 3].map((i) => `127.183.9.${i}`);

function cli(args: string[]): Promise<{ status: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN_PATH, ...args], { env: { ...process.env, NO_COLOR: "1" } });
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
    });
    child.stderr.on("data", (d) => {
      out += d;
    });
    child.on("exit", (status) => resolve({ status, out }));
  });
}

describe("sandbox up --monitors 3", { timeout: 300_000 }, () => {
  let tt: TestTopology;
  before(async () => {
    tt = testTopology({ net: 183, extra: `coordination: { endpoints: [${ADDRESSES.map((a) => `http://${a}:2379`).join(", ")}], instances: 3 }` });
    await assertAddressesFree(tt.topology);
    for (const a of ADDRESSES) assert.equal(await whyNotFree(a, 2379), null);
  });
  after(async () => {
    await sandboxDown(tt.topology);
    await EtcdCluster.stopSaved(`${tt.dir}/sandbox/etcd.json`);
    tt.cleanup();
  });

  test("starts a 3-member etcd beside the sandbox; sandbox down stops it", async () => {
    const up = await cli(["sandbox", "up", "--config", tt.path, "--monitors", "3"]);
    assert.equal(up.status, 0, up.out);
    assert.match(up.out, /failoverd run --config .* --instance m1/);
    const client = new Etcd3({ hosts: ADDRESSES.map((a) => `http://${a}:2379`), defaultCallOptions: () => ({ deadline: Date.now() + 5000 }) });
    try {
      await client.put("/failoverd-test").value("ok");
      assert.equal(await client.get("/failoverd-test").string(), "ok");
    } finally {
      client.close();
    }
    const down = await cli(["sandbox", "down", "--config", tt.path]);
    assert.equal(down.status, 0, down.out);
    for (const a of ADDRESSES) {
      let busy = await whyNotFree(a, 2379);
      for (let i = 0; i < 100 && busy !== null; i++) {
        await sleep(100);
        busy = await whyNotFree(a, 2379);
      }
      assert.equal(busy, null, `etcd still listens on ${a}`);
    }
  });

  test("--monitors without a coordination section: exit 2, one line", async () => {
    const single = testTopology({ net: 183 });
    try {
      const r = await cli(["sandbox", "up", "--config", single.path, "--monitors", "3"]);
      assert.equal(r.status, 2, r.out);
      assert.match(r.out, /^failoverd: --monitors 3: the config has no coordination section/);
      assert.equal(r.out.trim().split("\n").length, 1, r.out);
    } finally {
      single.cleanup();
    }
  });
});
