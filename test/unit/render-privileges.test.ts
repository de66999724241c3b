/**
 * `failoverd render sudoers` and `failoverd render iam-policy`: the least privileges, generated from the config.
 * The sudoers rule is checked by the real `visudo -c -f` and holds exactly the commands SshProxies runs; the IAM
 * policy names every EC2 and Route 53 action the AWS provider's source sends (read from the source itself, so an
 * action added there without the policy fails here), each a real SDK command, and every change to an existing
 * instance only on instances tagged with the topology. (The SSH path under that sudoers rule, as an unprivileged
 * user: test/integration/host-haproxy.test.ts.)
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import * as ec2Sdk from "@aws-sdk/client-ec2";
import * as route53Sdk from "@aws-sdk/client-route-53";
import { type IamStatement, POLICY_ACTIONS, renderIamPolicy } from "../../src/providers/aws/iam-policy.ts";
import { hostCommands, privilegedCommands, renderSudoers, sudoLine } from "../../src/providers/host-commands.ts";
import { PACKAGE_ROOT } from "../../src/package-root.ts";
import { parseTopology } from "../../src/topology/load.ts";
import type { AwsProviderConfig } from "../../src/topology/schema.ts";

const REPO = PACKAGE_ROOT;
const BARTON = join(REPO, "config/barton.yaml");
const tmp = mkdtempSync(join(tmpdir(), "failoverd-render-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

function failoverd(...args: string[]) {
  const r = spawnSync(process.execPath, ["bin/failoverd.js", ...args], { cwd: REPO, encoding: "utf8", timeout: 120_000 });
  assert.equal(r.error, undefined, `could not run the CLI: ${r.error?.message}`);
  return r;
}

function visudo(text: string): { status: number | null; output: string } {
  const f = join(tmp, `sudoers-${Math.random().toString(36).slice(2)}`);
  writeFileSync(f, text, { mode: 0o440 });
  const r = spawnSync("visudo", ["-c", "-f", f], { encoding: "utf8" });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

/** barton.yaml with extra YAML under provider: (indented by the caller). */
function bartonWith(providerExtra: string): string {
  const yaml = readFileSync(BARTON, "utf8").replace(/^provider:\n/m, `provider:\n${providerExtra}`).replace(/^ {2}hostHaproxy:\n( {4}.*\n)+/m, "");
  const f = join(tmp, `barton-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(f, yaml);
  return f;
}

const barton = parseTopology(readFileSync(BARTON, "utf8"), BARTON);
const aws = barton.config.provider as AwsProviderConfig;

describe("render sudoers", () => {
  test("the CLI prints the rule for barton: visudo accepts it; it grants exactly the five fixed commands, as root, no password", () => {
    const r = failoverd("render", "sudoers", "--config", BARTON);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, renderSudoers({ topology: "barton", user: "admin", host: aws.hostHaproxy }));
    const v = visudo(r.stdout);
    assert.equal(v.status, 0, v.output);
    const rules = r.stdout.split("\n").filter((l) => !l.startsWith("#"));
    assert.deepEqual(rules, [
      "Cmnd_Alias FAILOVERD_BARTON = \\",
      "    /usr/bin/install -m 600 -o root -g root /home/admin/.failoverd/failoverd.cfg /etc/haproxy/failoverd.cfg.new, \\",
      "    /usr/sbin/haproxy -c -f /etc/haproxy/haproxy.cfg -f /etc/haproxy/failoverd.cfg.new, \\",
      "    /usr/bin/mv -f /etc/haproxy/failoverd.cfg.new /etc/haproxy/failoverd.cfg, \\",
      "    /usr/bin/systemctl reload-or-restart haproxy, \\",
      "    /usr/bin/systemctl start haproxy",
      "admin ALL = (root) NOPASSWD: FAILOVERD_BARTON",
      "",
    ]);
    assert.doesNotMatch(rules.join("\n"), /tee|\/sh|bash|\bALL\s*$|\*/m, "no shell, no tee, no wildcard, no ALL command");
    assert.doesNotMatch(rules.join("\n"), /-f \/etc\/haproxy\/haproxy\.cfg(,|$)|> |\/etc\/haproxy\/haproxy\.cfg \\/, "the host's config is only ever an input of haproxy -c");
  });

  test("the rule's commands are exactly the ones SshProxies sends through sudo", () => {
    const c = hostCommands(aws.hostHaproxy, "admin");
    const fromRule = renderSudoers({ topology: "barton", user: "admin", host: aws.hostHaproxy })
      .split("\n")
      .filter((l) => l.startsWith("    /"))
      .map((l) => `sudo -n ${l.trim().replace(/, \\$/, "")}`);
    assert.deepEqual(fromRule, privilegedCommands(c).map(sudoLine));
  });

  test("the paths, the user and the reload of the config are the rule's", () => {
    const f = bartonWith(
      "  hostHaproxy: { mainConfig: /etc/haproxy/main.cfg, config: /etc/haproxy/conf.d/failoverd.cfg, stagingPath: /var/lib/fo/stage.cfg, reload: [/usr/sbin/service, haproxy, reload] }\n",
    );
    const yaml = readFileSync(f, "utf8").replace("user: admin", "user: fo-deploy");
    writeFileSync(f, yaml);
    const r = failoverd("render", "sudoers", "--config", f);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(visudo(r.stdout).status, 0, r.stdout);
    assert.match(r.stdout, /\/usr\/bin\/install -m 600 -o root -g root \/var\/lib\/fo\/stage\.cfg \/etc\/haproxy\/conf\.d\/failoverd\.cfg\.new/);
    assert.match(r.stdout, /\/usr\/sbin\/haproxy -c -f \/etc\/haproxy\/main\.cfg -f \/etc\/haproxy\/conf\.d\/failoverd\.cfg\.new/);
    assert.match(r.stdout, /\/usr\/sbin\/service haproxy reload/);
    assert.match(r.stdout, /^fo-deploy ALL = \(root\) NOPASSWD: FAILOVERD_BARTON$/m);
  });

  test("a path or word sudoers would read otherwise is a config error, one line, exit 2", () => {
    for (const [extra, field] of [
      ["  hostHaproxy: { config: '/etc/haproxy/fail overd.cfg' }\n", "provider.hostHaproxy.config"],
      ["  hostHaproxy: { mainConfig: '/etc/haproxy/*.cfg' }\n", "provider.hostHaproxy.mainConfig"],
      ["  hostHaproxy: { reload: [systemctl, reload, haproxy] }\n", "provider.hostHaproxy.reload"],
      ["  hostHaproxy: { start: [/usr/bin/systemctl, 'start,ALL', haproxy] }\n", "provider.hostHaproxy.start"],
    ] as const) {
      const r = failoverd("render", "sudoers", "--config", bartonWith(extra));
      assert.equal(r.status, 2, `${extra}: ${r.stdout}`);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
      assert.ok(r.stderr.includes(field), r.stderr);
      assert.match(r.stderr, /sudoers/);
    }
  });

  test("the sandbox has no hosts to grant anything on: exit 2, one line", () => {
    const r = failoverd("render", "sudoers");
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^failoverd: render sudoers is for machines failoverd manages on AWS; .* provider\.kind local/);
  });

  test("visudo does reject a broken rule (the check can fail)", () => {
    assert.notEqual(visudo("admin ALL = (root) NOPASSWD: /usr/bin/systemctl reload, \n").status, 0);
  });
});

/** The actions the AWS provider's source sends: every `new XCommand(` and the waiters' polls. */
function actionsInSource(): Set<string> {
  const files = [
    ...readdirSync(join(REPO, "src/providers/aws")).filter((f) => f.endsWith(".ts")).map((f) => join(REPO, "src/providers/aws", f)),
    join(REPO, "src/providers/preflight.ts"),
  ];
  const out = new Set<string>();
  for (const f of files) {
    const text = readFileSync(f, "utf8");
    const service = /client-route-53/.test(text) && !/client-ec2/.test(text) ? "route53" : null;
    for (const m of text.matchAll(/new (\w+)Command\(/g)) {
      const name = m[1]!;
      const isEc2 = `${name}Command` in ec2Sdk;
      const isRoute53 = `${name}Command` in route53Sdk;
      assert.ok(isEc2 || isRoute53, `${name}Command in ${f} is neither an EC2 nor a Route 53 command`);
      out.add(`${isEc2 && service !== "route53" ? "ec2" : "route53"}:${name}`);
    }
    if (text.includes("waitUntilInstanceRunning(")) out.add("ec2:DescribeInstances");
    if (text.includes("waitUntilResourceRecordSetsChanged(")) out.add("route53:GetChange");
    // Tags at launch (RunInstances' TagSpecifications) are authorised as ec2:CreateTags.
    if (text.includes("TagSpecifications")) out.add("ec2:CreateTags");
  }
  return out;
}

function actionsOf(s: IamStatement): string[] {
  return typeof s.Action === "string" ? [s.Action] : [...s.Action];
}

describe("render iam-policy", () => {
  const policy = renderIamPolicy(barton, aws, { account: "123456789012" });
  const granted = new Set(policy.Statement.flatMap(actionsOf));

  test("every action the AWS provider sends is granted (read from its source), with every optional feature on", () => {
    const path = bartonWith("  elasticIps: { haproxy1: eipalloc-0123456789abcdef0 }\n");
    const full = parseTopology(readFileSync(path, "utf8"), path);
    const all = renderIamPolicy(full, full.config.provider as AwsProviderConfig, { account: "123456789012" });
    const granted = new Set(all.Statement.flatMap(actionsOf));
    assert.ok(JSON.stringify(all).includes("arn:aws:ec2:eu-west-1:123456789012:elastic-ip/eipalloc-0123456789abcdef0"));
    const used = actionsInSource();
    assert.ok(used.has("ec2:RunInstances") && used.has("route53:ChangeResourceRecordSets"), [...used].join(" "));
    const missing = [...used].filter((a) => !granted.has(a));
    assert.deepEqual(missing, [], `the policy lacks ${missing.join(", ")}`);
  });

  test("nothing beyond POLICY_ACTIONS, and each is a real EC2 / Route 53 operation (or iam:PassRole)", () => {
    const declared = new Set(Object.values(POLICY_ACTIONS).flat());
    for (const a of granted) {
      assert.ok(declared.has(a as never), `${a} is not in POLICY_ACTIONS`);
      const [svc, op] = a.split(":") as [string, string];
      if (svc === "ec2") assert.ok(`${op}Command` in ec2Sdk, a);
      else if (svc === "route53") assert.ok(`${op}Command` in route53Sdk, a);
      else assert.equal(a, "iam:PassRole");
    }
    for (const a of ["ec2:StopInstances", "ec2:StartInstances", "ec2:ModifyInstanceAttribute"]) assert.ok(granted.has(a), a);
  });

  test("terminate, stop, start, attribute changes and tags of existing instances: only on instances tagged with the topology", () => {
    for (const s of policy.Statement) {
      for (const a of actionsOf(s)) {
        if (!["ec2:TerminateInstances", "ec2:StopInstances", "ec2:StartInstances", "ec2:ModifyInstanceAttribute", "ec2:CreateTags"].includes(a)) continue;
        const resources = typeof s.Resource === "string" ? [s.Resource] : s.Resource;
        if (resources.every((r) => r.includes(":security-group/"))) continue;
        const tagged = s.Condition?.["StringEquals"]?.["aws:ResourceTag/failoverd:topology"] === "barton";
        const atLaunch = a === "ec2:CreateTags" && s.Condition?.["StringEquals"]?.["ec2:CreateAction"] === "RunInstances";
        assert.ok(tagged || atLaunch, `${s.Sid} grants ${a} without the topology's tag condition`);
        assert.ok(resources.every((r) => r !== "*"), `${s.Sid}: ${a} on *`);
      }
    }
    const launch = policy.Statement.find((s) => s.Sid === "LaunchOnlyTaggedForThisTopology");
    assert.deepEqual(launch?.Condition, { StringEquals: { "aws:RequestTag/failoverd:topology": "barton" } });
  });

  test("the resources of the config: AMI, subnets, security groups, key pair, zone, records, the machines' role", () => {
    const text = JSON.stringify(policy);
    for (const s of [
      "arn:aws:ec2:eu-west-1::image/ami-0123456789abcdef0",
      "arn:aws:ec2:eu-west-1:123456789012:subnet/subnet-0fedcba9876543210",
      "arn:aws:ec2:eu-west-1:123456789012:security-group/sg-0123456789abcdef0",
      "arn:aws:ec2:eu-west-1:123456789012:key-pair/barton-ops",
      "arn:aws:route53:::hostedzone/Z0000000000PLACEHOLDER",
      "arn:aws:iam::123456789012:role/barton-node",
    ]) {
      assert.ok(text.includes(s), s);
    }
    const dns = policy.Statement.find((s) => s.Sid === "DnsOnlyTheseRecords");
    assert.deepEqual(dns?.Condition?.["ForAllValues:StringEquals"]?.["route53:ChangeResourceRecordSetsNormalizedRecordNames"], [
      "haproxy1.barton.example.internal",
      "haproxy2.barton.example.internal",
    ]);
    assert.ok(!text.includes("elastic-ip"), "no Elastic IP in the config: no AssociateAddress");
  });

  test("the CLI prints it as JSON; --account fills the ARNs; a bad account is a usage error", () => {
    const r = failoverd("render", "iam-policy", "--config", BARTON, "--account", "123456789012");
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), policy);
    assert.match(r.stderr, /iam:PassRole names the role barton-node/);
    const bad = failoverd("render", "iam-policy", "--config", BARTON, "--account", "12345");
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /^failoverd: --account "12345" is not an AWS account id \(12 digits\)\n$/);
  });
});

describe("render haproxy", () => {
  test("failoverd's file of a host, where it lives now; valid beside Debian's own /etc/haproxy/haproxy.cfg", () => {
    const r = failoverd("render", "haproxy", "--host", "haproxy1", "--config", BARTON);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^ {4}stats socket ipv4@10\.0\.2\.11:9999 level admin$/m);
    assert.match(r.stdout, /^ {4}bind 10\.0\.2\.11:8001$/m);
    assert.doesNotMatch(r.stdout, /^\s+(user|group|chroot|maxconn|daemon)\b|^\s+log (?!global$)/m, "nothing of the host's own global settings");
    const f = join(tmp, "haproxy1.failoverd.cfg");
    writeFileSync(f, r.stdout);
    const check = spawnSync("/usr/sbin/haproxy", ["-c", "-f", "/etc/haproxy/haproxy.cfg", "-f", f], { encoding: "utf8" });
    assert.equal(check.status, 0, `${check.stdout}${check.stderr}`);
    const redis = failoverd("render", "haproxy", "--host", "redis1", "--config", BARTON);
    assert.equal(redis.status, 2);
    assert.match(redis.stderr, /^failoverd: --host redis1: not an HAProxy or app host of .* \(haproxy1, haproxy2, app\)\n$/);
  });
});
