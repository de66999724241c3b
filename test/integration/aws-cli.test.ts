/**
 * The AWS provider from the command line with no AWS credentials at all (an empty HOME, no AWS_* keys, IMDS
 * disabled, and any AWS endpoint pointed at a closed loopback port): `plan` prints the full resolved playbooks for
 * config/barton.yaml without contacting anything, `preflight` prints one line per check and exits 1, and neither
 * hangs. The barton addresses are never contacted: plan goes offline without credentials, and preflight runs on a
 * loopback copy of the topology.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { awsTopologyYaml } from "../helpers/fake-aws.ts";
import { PACKAGE_ROOT } from "../../src/package-root.ts";

const ROOT = PACKAGE_ROOT;
const home = mkdtempSync(join(tmpdir(), "failoverd-nocreds-"));
after(() => rmSync(home, { recursive: true, force: true }));

/** The CLI in an environment where the SDK's default chain finds nothing and could reach nothing. */
function failoverd(args: readonly string[]) {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env["PATH"],
    HOME: home,
    // The secret barton.yaml names (http.token): validate and run refuse an unset one.
    FAILOVERD_HTTP_TOKEN: "a-test-token",
    AWS_EC2_METADATA_DISABLED: "true",
    AWS_CONFIG_FILE: join(home, "no-config"),
    AWS_SHARED_CREDENTIALS_FILE: join(home, "no-credentials"),
    AWS_ENDPOINT_URL: "http://127.0.0.1:9",
  };
  const started = Date.now();
  const r = spawnSync(process.execPath, [join(ROOT, "bin/failoverd.js"), ...args], { cwd: ROOT, env, encoding: "utf8", timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, ms: Date.now() - started };
}

describe("failoverd plan on AWS, without credentials", () => {
  it("--target redis1 prints the resolved failed_redis playbook: terminate guarded by tags, RunInstances with AMI, type, subnet, tags", () => {
    const r = failoverd(["plan", "--target", "redis1", "--config", "config/barton.yaml"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, "");
    const o = r.stdout;
    assert.match(o, /^failed_redis for redis1 \(config\/barton\.yaml, provider aws\); nothing is changed:/);
    assert.match(o, /offline: no AWS credentials \(CredentialsProviderError.*nothing was contacted/);
    // barton keeps the failed machine quarantined (recovery.failedMachine): stopped, cut off, tagged, never terminated.
    assert.match(
      o,
      / 5\. Terminate the failed machine[^\n]*\n\s+would quarantine [^\n]*<machine of redis1> \(redis1 at 10\.0\.1\.11\)[^\n]*\n\s+EC2 DescribeInstances .*refuse unless tagged failoverd:topology=barton and failoverd:host=redis1\n(\s+EC2 (CreateTags|ModifyInstanceAttribute) [^\n]*\n)+\s+EC2 StopInstances/,
    );
    assert.doesNotMatch(o, /EC2 TerminateInstances/);
    assert.match(o, /EC2 RunInstances \{"MinCount":1,"MaxCount":1,"ImageId":"ami-0123456789abcdef0","InstanceType":"m6i\.large","SubnetId":"subnet-0123456789abcdef0"/);
    assert.match(o, /\{"Key":"failoverd:topology","Value":"barton"\},\{"Key":"failoverd:host","Value":"redis1"\},\{"Key":"failoverd:role","Value":"redis"\}/);
    assert.match(o, /on InsufficientInstanceCapacity, the same with InstanceType=m5\.large SubnetId=subnet-0fedcba9876543210/);
    assert.match(o, /waitUntilInstanceRunning/);
    assert.match(o, /for p in 9001 9002; do sudo -n systemctl start redis-server@\$p; done/);
    assert.match(o, /would send REPLICAOF 10\.0\.1\.12 9001 to <new redis1 address>:9001/);
    assert.match(o, /SSH admin@10\.0\.2\.11:22 \(host key checked against known_hosts \/etc\/failoverd\/ssh\/known_hosts\)/);
    assert.ok(r.ms < 30_000, `took ${r.ms} ms`);
  });

  it("--target haproxy1 prints the failed_haproxy playbook with the Route 53 record, zone and TTL", () => {
    const r = failoverd(["plan", "--target", "haproxy1", "--config", "config/barton.yaml"]);
    assert.equal(r.code, 0, r.stderr);
    const o = r.stdout;
    assert.match(o, /^failed_haproxy for haproxy1/);
    assert.match(o, /"failoverd:host","Value":"haproxy1"\},\{"Key":"failoverd:role","Value":"haproxy"\}/);
    assert.match(o, /wait until the new instance accepts SSH on port 22/);
    // failoverd's own file only: uploaded unprivileged, then the sudoers rule's fixed commands; the host's config is
    // only read by haproxy -c.
    assert.match(
      o,
      new RegExp(
        [
          "umask 077 && mkdir -p /home/admin/.failoverd && cat > /home/admin/.failoverd/failoverd.cfg \\(failoverd's file on stdin, \\d+ lines\\)",
          "sudo -n /usr/bin/install -m 600 -o root -g root /home/admin/.failoverd/failoverd.cfg /etc/haproxy/failoverd.cfg.new",
          "sudo -n /usr/sbin/haproxy -c -f /etc/haproxy/haproxy.cfg -f /etc/haproxy/failoverd.cfg.new",
          "sudo -n /usr/bin/mv -f /etc/haproxy/failoverd.cfg.new /etc/haproxy/failoverd.cfg",
          "sudo -n /usr/bin/systemctl reload-or-restart haproxy",
        ]
          .map((l) => l.replace(/[.]/g, "\\."))
          .join("\\n\\s+"),
      ),
    );
    assert.doesNotMatch(o, /tee|> \/etc/);
    assert.match(
      o,
      /Route 53 ChangeResourceRecordSets \{"HostedZoneId":"Z0000000000PLACEHOLDER","ChangeBatch":\{.*"Action":"UPSERT","ResourceRecordSet":\{"Name":"haproxy1\.barton\.example\.internal","Type":"A","TTL":30,"ResourceRecords":\[\{"Value":"<new haproxy1 address>"\}\]\}/,
    );
    assert.match(o, /GetChange .* until its status is INSYNC/);
    assert.match(o, /would send 'set server be_relay_7001\/haproxy1 addr <new haproxy1 address> port 8001' to HAProxy 10\.0\.3\.11:9999/);
  });

  it("config/barton.yaml validates", () => {
    const r = failoverd(["validate", "--config", "config/barton.yaml"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /valid\. topology barton: 2 Redis hosts \(4 servers\).*provider aws/);
  });
});

describe("failoverd preflight, without credentials", () => {
  it("prints one line per check, fails the AWS ones for want of credentials, and exits 1 quickly", () => {
    const dir = mkdtempSync(join(tmpdir(), "failoverd-preflight-"));
    try {
      const config = join(dir, "aws.yaml");
      writeFileSync(config, awsTopologyYaml({ net: 47, name: "barton" }));
      const r = failoverd(["preflight", "--config", config, "--timeout-ms", "5000"]);
      assert.equal(r.code, 1, r.stderr);
      assert.equal(r.stderr, "");
      const lines = r.stdout.trimEnd().split("\n");
      assert.equal(lines.length, 21, r.stdout);
      for (const l of lines) assert.match(l, /^(ok {2}|FAIL) {2}[A-Za-z0-9 .]+: \S/);
      assert.match(lines[0]!, /^FAIL {2}aws credentials: no AWS credentials \(CredentialsProviderError/);
      assert.ok(lines.some((l) => /^FAIL {2}ec2 RunInstances: not checked: no AWS credentials/.test(l)));
      assert.ok(lines.some((l) => /^FAIL {2}ssh redis1: SSH to redis1 .*provider\.ssh\.privateKey: cannot read/.test(l)));
      assert.ok(lines.some((l) => /^FAIL {2}sudo app: SSH to app .*provider\.ssh\.privateKey: cannot read/.test(l)), r.stdout);
      assert.ok(lines.some((l) => /^FAIL {2}runtime api app: .*127\.47\.3\.1:9999.*ECONNREFUSED/.test(l)));
      assert.ok(r.ms < 30_000, `took ${r.ms} ms`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
