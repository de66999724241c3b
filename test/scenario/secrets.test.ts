/**
 * Security on the real sandbox (127.72.x.y): Redis AUTH with an ACL user and a password for every connection
 * failoverd makes, through a full recovery; the password never appears in a log line or a report.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Redis } from "ioredis";
import { simulate } from "../../src/simulate/scenario.ts";
import { type TestTopology, testTopology } from "../helpers/sandbox.ts";

describe("secrets", { timeout: 120_000 }, () => {
  const password = `pw-${randomBytes(12).toString("hex")}`;
  let tt: TestTopology;
  before(() => {
    process.env["FAILOVERD_TEST_REDIS_PASSWORD"] = password;
    tt = testTopology({ net: 72, extra: "redis: { username: failoverd, password: { env: FAILOVERD_TEST_REDIS_PASSWORD } }" });
  });
  after(() => {
    delete process.env["FAILOVERD_TEST_REDIS_PASSWORD"];
    tt.cleanup();
  });

  test("a full recovery with Redis AUTH (ACL user + password) succeeds, and the password is in no log line, report or world-readable file", async () => {
    const events: string[] = [];
    const report = await simulate(tt.topology, { target: "redis1", fault: "crash", warmupMs: 500, onEvent: (l) => events.push(l) });
    assert.equal(report.recovered, true, report.why);
    assert.equal(report.lostAckedWrites, 0);

    const runDir = join(tt.dir, "sandbox");
    const daemonLog = readFileSync(join(runDir, "daemon.log"), "utf8");
    assert.match(daemonLog, /recovery succeeded/, "the daemon log is the one of this recovery");
    assert.ok(!daemonLog.includes(password), "the password is in the daemon log");
    assert.ok(!events.join("\n").includes(password), "the password is in simulate's output");
    assert.ok(!JSON.stringify(report).includes(password), "the password is in the report");
    // Files that must hold it (the rendered HAProxy check, Redis' own config) are readable by their owner only.
    const files = walk(runDir).filter((f) => readFileSync(f, "utf8").includes(password));
    assert.ok(files.length > 0, "the sandbox's configs hold the password");
    for (const f of files) assert.equal(statSync(f).mode & 0o077, 0, `${f} is readable by others`);
    for (const f of walk(join(tt.dir, "state"))) assert.ok(!readFileSync(f, "utf8").includes(password), `${f} holds the password`);
  });

  test("the servers really require the credentials: without them a client is refused", async () => {
    const { sandboxDown, sandboxUp } = await import("../../src/providers/local/up.ts");
    const { redisAuthOf } = await import("../../src/providers/index.ts");
    await sandboxUp(tt.topology, { auth: redisAuthOf(tt.topology) });
    try {
      const anonymous = new Redis({ host: "127.72.1.1", port: 9001, lazyConnect: true, enableReadyCheck: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
      anonymous.on("error", () => {});
      await anonymous.connect();
      await assert.rejects(anonymous.set("k", "v"), /NOAUTH/);
      anonymous.disconnect();
      const user = new Redis({ host: "127.72.3.1", port: 7001, username: "failoverd", password, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      user.on("error", () => {});
      await user.connect();
      assert.equal(await user.set("k", "v"), "OK");
      user.disconnect();
    } finally {
      await sandboxDown(tt.topology);
    }
  });
});

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else if (e.isFile() && !e.name.endsWith(".rdb")) out.push(p);
  }
  return out;
}
