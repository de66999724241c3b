/**
 * Preflight with the AWS clients mocked: DryRun answers as EC2 gives them (DryRunOperation = allowed,
 * UnauthorizedOperation = denied), the AMI, the zone and its records, the tagged instances; SSH and the Runtime API
 * are fakes here (test/integration/ssh.test.ts and the CLI test cover the real ones). One result per check.
 */
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { DescribeImagesCommand, RunInstancesCommand, TerminateInstancesCommand } from "@aws-sdk/client-ec2";
import { GetHostedZoneCommand } from "@aws-sdk/client-route-53";
import { ProviderError } from "../../src/errors.ts";
import { createAwsProviders } from "../../src/providers/aws/index.ts";
import { type CheckResult, preflight } from "../../src/providers/preflight.ts";
import type { HaproxyAdmin, Machine, RemoteShell } from "../../src/providers/types.ts";
import { Inventory } from "../../src/topology/inventory.ts";
import { parseTopology } from "../../src/topology/load.ts";
import { awsTopologyYaml, ec2Error, FakeAws } from "../helpers/fake-aws.ts";

const t = parseTopology(awsTopologyYaml({ net: 46, name: "barton" }), "preflight.yaml");
let fake: FakeAws;
afterEach(() => fake?.restore());

const okShell: RemoteShell = { run: async () => ({ code: 0, stdout: "", stderr: "" }) };
const okHaproxy = { serversState: async () => [] } as unknown as HaproxyAdmin;

function world(): FakeAws {
  fake = new FakeAws();
  for (const h of ["redis1", "redis2", "haproxy1", "haproxy2"]) {
    fake.addInstance({ "failoverd:topology": "barton", "failoverd:host": h, "failoverd:role": h.replace(/\d$/, "") }, "running", t.hosts.get(h)!.address);
  }
  fake.records.set("Z0000000000TEST", new Map([
    ["haproxy1.barton.internal.", t.hosts.get("haproxy1")!.address],
    ["haproxy2.barton.internal.", t.hosts.get("haproxy2")!.address],
  ]));
  fake.ec2.on(RunInstancesCommand).rejects(ec2Error("DryRunOperation", "Request would have succeeded, but DryRun flag is set.", 412));
  fake.ec2.on(TerminateInstancesCommand).rejects(ec2Error("DryRunOperation", "Request would have succeeded, but DryRun flag is set.", 412));
  fake.ec2.on(DescribeImagesCommand).resolves({ Images: [{ ImageId: "ami-0123456789abcdef0", Name: "barton-node-2026", State: "available" }] });
  fake.route53.on(GetHostedZoneCommand).resolves({ HostedZone: { Id: "/hostedzone/Z0000000000TEST", Name: "barton.internal.", CallerReference: "x", Config: { PrivateZone: true } } });
  return fake;
}

async function run(f: FakeAws, shell: RemoteShell = okShell, haproxy: HaproxyAdmin = okHaproxy): Promise<CheckResult[]> {
  const aws = createAwsProviders(t, {}, { clients: f.clients, probe: async () => true, retry: { attempts: 2, baseDelayMs: 1, maxDelayMs: 1 } });
  return preflight(t, { inventory: new Inventory(t), haproxy, aws, shell, timeoutMs: 3000 });
}

const byName = (rs: CheckResult[], name: string) => {
  const r = rs.find((x) => x.name === name);
  assert.ok(r, `a check named ${name} (have: ${rs.map((x) => x.name).join(", ")})`);
  return r;
};

describe("preflight", () => {
  it("all is well: one passing line per check, and the DryRun requests are what a recovery would send", async () => {
    const f = world();
    const rs = await run(f);
    assert.deepEqual(
      rs.map((r) => r.name),
      [
        "aws credentials",
        "ec2 RunInstances",
        "instance redis1",
        "instance redis2",
        "instance haproxy1",
        "instance haproxy2",
        "ec2 TerminateInstances",
        "ec2 image",
        "route53 hosted zone",
        "route53 record haproxy1.barton.internal",
        "route53 record haproxy2.barton.internal",
        "ssh redis1",
        "ssh redis2",
        "ssh haproxy1",
        "ssh haproxy2",
        "sudo haproxy1",
        "sudo haproxy2",
        "sudo app",
        "runtime api haproxy1",
        "runtime api haproxy2",
        "runtime api app",
      ],
    );
    assert.deepEqual(rs.filter((r) => !r.ok), []);
    const runInput = f.ec2.commandCalls(RunInstancesCommand)[0]!.args[0].input;
    assert.equal(runInput.DryRun, true);
    assert.equal(runInput.ImageId, "ami-0123456789abcdef0");
    assert.equal(runInput.ClientToken, undefined);
    const term = f.ec2.commandCalls(TerminateInstancesCommand)[0]!.args[0].input;
    assert.equal(term.DryRun, true);
    assert.equal(term.InstanceIds?.length, 4);
    assert.match(byName(rs, "route53 hosted zone").detail, /barton\.internal\. \(private\)/);
    // The credentials are never printed.
    assert.doesNotMatch(JSON.stringify(rs), /fake-secret-never-printed|AKIDFAKEFAKEFAKE/);
  });

  it("a policy without TerminateInstances: that check fails, naming the permission", async () => {
    const f = world();
    f.ec2.on(TerminateInstancesCommand).rejects(ec2Error("UnauthorizedOperation", "You are not authorized to perform this operation."));
    const rs = await run(f);
    const r = byName(rs, "ec2 TerminateInstances");
    assert.equal(r.ok, false);
    assert.match(r.detail, /UnauthorizedOperation.*does not allow EC2 TerminateInstances/);
    assert.equal(byName(rs, "ec2 RunInstances").ok, true);
  });

  it("a machine without failoverd's tags, a missing record, a missing AMI: each its own failing line", async () => {
    const f = world();
    const redis2 = [...f.instances.values()].find((i) => i.Tags.some((x) => x.Value === "redis2"))!;
    redis2.Tags = [{ Key: "Name", Value: "redis2" }];
    f.records.get("Z0000000000TEST")!.delete("haproxy2.barton.internal.");
    f.ec2.on(DescribeImagesCommand).rejects(ec2Error("InvalidAMIID.NotFound", "The image id '[ami-0123456789abcdef0]' does not exist"));
    const rs = await run(f);
    assert.match(byName(rs, "instance redis2").detail, /no pending or running instance is tagged failoverd:topology=barton, failoverd:host=redis2/);
    assert.match(byName(rs, "route53 record haproxy2.barton.internal").detail, /no A record haproxy2\.barton\.internal/);
    assert.match(byName(rs, "ec2 image").detail, /InvalidAMIID\.NotFound.*provider\.imageId/);
    assert.equal(rs.filter((r) => !r.ok).length, 3);
  });

  it("an instance tagged for a host but at another address than failoverd's record fails", async () => {
    const f = world();
    const redis1 = [...f.instances.values()].find((i) => i.Tags.some((x) => x.Value === "redis1"))!;
    redis1.PrivateIpAddress = "127.46.1.99";
    const rs = await run(f);
    assert.match(byName(rs, "instance redis1").detail, /at 127\.46\.1\.99, but failoverd has redis1 at 127\.46\.1\.1/);
  });

  it("SSH refused and a Runtime API that does not answer fail their own lines only", async () => {
    const f = world();
    const shell: RemoteShell = {
      run: async (m: Machine) => {
        if (m.host === "haproxy2") throw new ProviderError("refusing SSH to haproxy2: it presented host key SHA256:x", false, "HostKeyMismatch");
        return { code: 0, stdout: "", stderr: "" };
      },
    };
    const haproxy = {
      serversState: async (ep: { address: string }) => {
        if (ep.address === t.hosts.get("app")!.address) throw new Error("ECONNREFUSED");
        return [];
      },
    } as unknown as HaproxyAdmin;
    const rs = await run(f, shell, haproxy);
    assert.deepEqual(
      rs.filter((r) => !r.ok).map((r) => r.name),
      ["ssh haproxy2", "sudo haproxy2", "runtime api app"],
    );
    assert.match(byName(rs, "ssh haproxy2").detail, /refusing SSH to haproxy2/);
  });

  it("a host whose sudoers lacks a command of the rule fails its sudo line, naming the command and the fix", async () => {
    const f = world();
    const asked: string[] = [];
    const shell: RemoteShell = {
      run: async (m: Machine, command: string) => {
        asked.push(command);
        // As `sudo -n -l` answers on a host whose rule lacks the reload: the probe echoes the refused command.
        return { code: 0, stdout: m.host === "haproxy1" ? "/usr/bin/systemctl reload-or-restart haproxy\n" : "", stderr: "" };
      },
    };
    const rs = await run(f, shell);
    assert.deepEqual(rs.filter((r) => !r.ok).map((r) => r.name), ["sudo haproxy1"]);
    assert.match(
      byName(rs, "sudo haproxy1").detail,
      /^sudo refuses admin 1 of the 5 commands failoverd runs there \(first: `\/usr\/bin\/systemctl reload-or-restart haproxy`\): install the rule `failoverd render sudoers` prints/,
    );
    const probe = asked.find((c) => c.startsWith("sudo -n -l "));
    assert.ok(probe?.includes("sudo -n -l /usr/sbin/haproxy -c -f /etc/haproxy/haproxy.cfg -f /etc/haproxy/failoverd.cfg.new > /dev/null"), probe);
  });

  it("no credentials: the credentials line says so, and every other AWS check says it was not checked", async () => {
    const f = world();
    f.clients.ec2.config.credentials = async () => {
      throw Object.assign(new Error("Could not load credentials from any providers"), { name: "CredentialsProviderError" });
    };
    const rs = await run(f);
    assert.match(byName(rs, "aws credentials").detail, /no AWS credentials \(CredentialsProviderError.*instance profile/);
    const aws = rs.filter((r) => /^(ec2|instance|route53)/.test(r.name));
    assert.ok(aws.length > 5);
    for (const r of aws) assert.deepEqual([r.ok, r.detail], [false, "not checked: no AWS credentials (see aws credentials)"]);
    assert.equal(f.ec2.commandCalls(RunInstancesCommand).length, 0, "no AWS request without credentials");
  });
});
