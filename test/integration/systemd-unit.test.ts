/**
 * config/failoverd.service: `systemd-analyze verify` accepts it without a single warning (it exits 0 even for an
 * unknown key, so its stderr must be empty too), and `systemd-analyze security` rates its hardening OK.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { after, before, describe, test } from "node:test";
import { packagePath } from "../../src/package-root.ts";

const execFileP = promisify(execFile);
const UNIT = packagePath("config", "failoverd.service");

describe("the systemd unit", () => {
  let dir: string;
  let unit: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "failoverd-unit-"));
    unit = join(dir, "failoverd.service");
    // verify needs ExecStart's binary to exist; where Node lives elsewhere than /usr/bin/node, point at this one.
    const text = readFileSync(UNIT, "utf8");
    writeFileSync(unit, existsSync("/usr/bin/node") ? text : text.replace("/usr/bin/node", process.execPath));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("systemd-analyze verify passes with no warning", async () => {
    const r = await execFileP("systemd-analyze", ["verify", unit], { cwd: dir });
    assert.equal(r.stderr.trim(), "");
  });

  test("the unit is what the daemon implements: notify with a watchdog, restarts on failure, hardened, a state directory", () => {
    const text = readFileSync(UNIT, "utf8");
    for (const line of [
      "Type=notify",
      "NotifyAccess=all",
      "WatchdogSec=30s",
      "Restart=on-failure",
      "User=failoverd",
      "StateDirectory=failoverd",
      "ReadWritePaths=/var/lib/failoverd",
      "EnvironmentFile=-/etc/failoverd/env",
      "NoNewPrivileges=yes",
      "ProtectSystem=strict",
      "ProtectHome=yes",
      "PrivateTmp=yes",
      "ExecReload=/bin/kill -HUP $MAINPID",
    ]) {
      assert.ok(text.split("\n").includes(line), `the unit has ${line}`);
    }
  });

  test("a mistake in the unit is caught (the check is not blind)", async () => {
    mkdirSync(join(dir, "bad"), { recursive: true });
    const bad = join(dir, "bad", "failoverd.service");
    writeFileSync(bad, readFileSync(unit, "utf8").replace("NoNewPrivileges=yes", "NoNewPrivilege=yes"));
    const r = await execFileP("systemd-analyze", ["verify", bad], { cwd: dir });
    assert.match(r.stderr, /Unknown key 'NoNewPrivilege'/);
  });

  test("systemd-analyze security rates the hardening OK", async () => {
    const r = await execFileP("systemd-analyze", ["security", "--offline=yes", unit], { cwd: dir }).catch((e: { stdout: string }) => e);
    const m = /Overall exposure level for failoverd\.service: (\d+(?:\.\d+)?) (\w+)/.exec(r.stdout);
    assert.ok(m, `an exposure level in: ${r.stdout.slice(-300)}`);
    assert.ok(Number(m[1]) <= 3.0, `exposure ${m[1]} ${m[2]}`);
  });
});
