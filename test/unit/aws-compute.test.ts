/**
 * Ec2Compute against the SDK's mock: the exact requests of launch, the waiter, terminate and find, and each error
 * code AWS sends (throttling, capacity, eventual consistency, permissions, a bad AMI), with zero-ish backoff.
 */
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import {
  AssociateAddressCommand,
  DescribeAddressesCommand,
  DescribeInstancesCommand,
  RunInstancesCommand,
  type RunInstancesCommandInput,
  TerminateInstancesCommand,
} from "@aws-sdk/client-ec2";
import { ProviderError } from "../../src/errors.ts";
import { Ec2Compute, type PortProbe } from "../../src/providers/aws/compute.ts";
import { awsConfigOf } from "../../src/providers/aws/index.ts";
import { parseTopology } from "../../src/topology/load.ts";
import { awsTopologyYaml, ec2Error, FakeAws } from "../helpers/fake-aws.ts";

const FAST_WAITER = { minDelaySec: 0.001, maxDelaySec: 0.002, maxWaitSec: 5 };
const FAST_RETRY = { attempts: 4, baseDelayMs: 1, maxDelayMs: 2 };
const REDIS1 = { host: "redis1", role: "redis" as const, ports: [9001, 9002] };

function topology(provider?: string) {
  return parseTopology(awsTopologyYaml({ net: 45, name: "barton", ...(provider ? { provider } : {}) }), "unit.yaml");
}

interface Setup {
  fake: FakeAws;
  compute: Ec2Compute;
  probes: string[];
  events: string[];
}

function setup(o: { provider?: string; probe?: PortProbe; prepare?: boolean; retry?: typeof FAST_RETRY; events?: string[] } = {}): Setup {
  const t = topology(o.provider);
  const fake = new FakeAws();
  const probes: string[] = [];
  const events: string[] = o.events ?? [];
  const probe: PortProbe =
    o.probe ??
    (async (target) => {
      probes.push(`${target.kind}:${target.port}`);
      events.push(`probe ${target.kind}:${target.port}`);
      return true;
    });
  const compute = new Ec2Compute({
    topology: t.name,
    roleOf: () => "redis",
    config: awsConfigOf(t),
    ec2: fake.clients.ec2,
    probe,
    sshPort: 22,
    retry: o.retry ?? FAST_RETRY,
    waiter: FAST_WAITER,
    probeEveryMs: 1,
    ...(o.prepare
      ? {
          prepareRedis: async (m) => {
            events.push(`prepare ${m.host} ${m.address}`);
          },
        }
      : {}),
  });
  return { fake, compute, probes, events };
}

const runInputs = (f: FakeAws): RunInstancesCommandInput[] => f.ec2.commandCalls(RunInstancesCommand).map((c) => c.args[0].input);

const expectedTags = (host: string, role: string) => [
  { Key: "Name", Value: `barton-${host}` },
  { Key: "failoverd:topology", Value: "barton" },
  { Key: "failoverd:host", Value: host },
  { Key: "failoverd:role", Value: role },
];

let s: Setup;
afterEach(() => s?.fake.restore());

describe("launch: the exact requests", () => {
  it("RunInstances from the AMI with type, subnet, groups, tags and a client token; the waiter; then the ports", async () => {
    s = setup();
    const m = await s.compute.launch(REDIS1, AbortSignal.timeout(5000));
    const [input, ...more] = runInputs(s.fake);
    assert.equal(more.length, 0);
    const { ClientToken, ...rest } = input!;
    assert.match(ClientToken ?? "", /^failoverd-[0-9a-f-]{36}-0$/);
    assert.deepEqual(rest, {
      MinCount: 1,
      MaxCount: 1,
      ImageId: "ami-0123456789abcdef0",
      InstanceType: "m6i.large",
      SubnetId: "subnet-0aaaaaaaaaaaaaaa1",
      SecurityGroupIds: ["sg-0123456789abcdef0"],
      TagSpecifications: [
        { ResourceType: "instance", Tags: expectedTags("redis1", "redis") },
        { ResourceType: "volume", Tags: expectedTags("redis1", "redis") },
      ],
    });
    const waits = s.fake.ec2.commandCalls(DescribeInstancesCommand).map((c) => c.args[0].input);
    assert.ok(waits.length >= 1);
    for (const w of waits) assert.deepEqual(w, { InstanceIds: [m.id] });
    assert.deepEqual(m, { id: m.id, host: "redis1", role: "redis", address: s.fake.instances.get(m.id)!.PrivateIpAddress });
    assert.deepEqual(s.probes.sort(), ["redis:9001", "redis:9002"]);
    assert.equal(s.fake.ec2.commandCalls(AssociateAddressCommand).length, 0);
  });

  it("a launch template, key pair, instance profile (name or ARN), user data and the config's tags", async () => {
    s = setup({
      provider: [
        "  launchTemplate: { name: barton-node, version: '3' }",
        "  keyName: barton-ops",
        "  instanceProfile: arn:aws:iam::123456789012:instance-profile/barton-node",
        "  userData: \"#!/bin/sh\\necho hi\\n\"",
        "  tags: { Project: barton, failoverd:host: spoofed }",
      ].join("\n"),
    });
    await s.compute.launch({ host: "haproxy1", role: "haproxy" }, AbortSignal.timeout(5000));
    const input = runInputs(s.fake)[0]!;
    assert.equal(input.ImageId, undefined);
    assert.deepEqual(input.LaunchTemplate, { LaunchTemplateName: "barton-node", Version: "3" });
    assert.equal(input.KeyName, "barton-ops");
    assert.deepEqual(input.IamInstanceProfile, { Arn: "arn:aws:iam::123456789012:instance-profile/barton-node" });
    assert.equal(Buffer.from(input.UserData ?? "", "base64").toString(), "#!/bin/sh\necho hi\n");
    // The config's tags are kept, but never override failoverd's own.
    assert.deepEqual(input.TagSpecifications?.[0]?.Tags, [
      { Key: "Name", Value: "barton-haproxy1" },
      { Key: "Project", Value: "barton" },
      { Key: "failoverd:host", Value: "haproxy1" },
      { Key: "failoverd:topology", Value: "barton" },
      { Key: "failoverd:role", Value: "haproxy" },
    ]);
    // An unconfigured HAProxy machine answers on SSH.
    assert.deepEqual(s.probes, ["ssh:22"]);
  });

  it("an instance profile by name", async () => {
    s = setup({ provider: "  imageId: ami-0123456789abcdef0\n  instanceProfile: barton-node" });
    await s.compute.launch(REDIS1, AbortSignal.timeout(5000));
    assert.deepEqual(runInputs(s.fake)[0]!.IamInstanceProfile, { Name: "barton-node" });
  });

  it("an HAProxy host with an Elastic IP gets it re-associated to the new instance", async () => {
    s = setup({ provider: "  imageId: ami-0123456789abcdef0\n  elasticIps: { haproxy1: eipalloc-0123456789abcdef0 }" });
    const m = await s.compute.launch({ host: "haproxy1", role: "haproxy" }, AbortSignal.timeout(5000));
    const calls = s.fake.ec2.commandCalls(AssociateAddressCommand).map((c) => c.args[0].input);
    assert.deepEqual(calls, [{ AllocationId: "eipalloc-0123456789abcdef0", InstanceId: m.id, AllowReassociation: true }]);
  });

  it("the Elastic IP moves from the failed machine of the same host (tagged so), never from a stranger's", async () => {
    const provider = "  imageId: ami-0123456789abcdef0\n  elasticIps: { haproxy1: eipalloc-0123456789abcdef0 }";
    const eip = "eipalloc-0123456789abcdef0";
    // From the failed haproxy1 of this topology: moved.
    s = setup({ provider });
    const failed = s.fake.addInstance({ "failoverd:topology": "barton", "failoverd:host": "haproxy1", "failoverd:role": "haproxy" });
    s.fake.addresses.set(eip, failed);
    const m = await s.compute.launch({ host: "haproxy1", role: "haproxy" }, AbortSignal.timeout(5000));
    assert.deepEqual(s.fake.ec2.commandCalls(DescribeAddressesCommand).map((c) => c.args[0].input), [{ AllocationIds: [eip] }]);
    assert.equal(s.fake.addresses.get(eip), m.id);
    s.fake.restore();
    // From another host's machine, or another topology's: refused, not retried, and nothing moved.
    const strangers: Record<string, string>[] = [
      { "failoverd:topology": "barton", "failoverd:host": "haproxy2", "failoverd:role": "haproxy" },
      { "failoverd:topology": "other", "failoverd:host": "haproxy1" },
      { Name: "someone-elses" },
    ];
    for (const tags of strangers) {
      s = setup({ provider });
      const holder = s.fake.addInstance(tags);
      s.fake.addresses.set(eip, holder);
      await assert.rejects(s.compute.launch({ host: "haproxy1", role: "haproxy" }, AbortSignal.timeout(5000)), (e: unknown) => {
        assert.ok(e instanceof ProviderError, String(e));
        assert.equal(e.retryable, false);
        assert.equal(e.code, "NotManaged");
        assert.match(e.message, new RegExp(`refusing to move Elastic IP ${eip} to i-[0-9a-f]+ \\(haproxy1\\): it is attached to ${holder}, and (its tag|it has no)`));
        return true;
      });
      assert.equal(s.fake.ec2.commandCalls(AssociateAddressCommand).length, 0, JSON.stringify(tags));
      assert.equal(s.fake.addresses.get(eip), holder);
      s.fake.restore();
    }
  });

  it("resolves only once every Redis port answers, after the preparation commands ran", async () => {
    let calls = 0;
    const events: string[] = [];
    s = setup({
      prepare: true,
      events,
      probe: async (target) => {
        events.push(`probe ${target.kind}:${target.port}`);
        if (target.kind === "redis") calls += 1;
        return target.kind === "ssh" || calls > 4 ? true : "ECONNREFUSED";
      },
    });
    await s.compute.launch(REDIS1, AbortSignal.timeout(5000));
    assert.ok(calls >= 5, `probed until the ports answered (${calls} probes)`);
    assert.equal(events[0], "probe ssh:22", "SSH answers before the preparation commands run");
    assert.match(events[1] ?? "", /^prepare redis1 10\.99\./);
    assert.ok(events.slice(2).every((e) => e.startsWith("probe redis:")));
    assert.deepEqual([...new Set(events.slice(-2))].sort(), ["probe redis:9001", "probe redis:9002"]);
  });

  it("ports that never answer fail the launch at the deadline, naming the instance and what to check", async () => {
    s = setup({ probe: async () => "ECONNREFUSED" });
    await assert.rejects(s.compute.launch(REDIS1, AbortSignal.timeout(150)), (e: unknown) => {
      assert.ok(e instanceof ProviderError);
      assert.equal(e.code, "NotAnswering");
      assert.equal(e.retryable, true);
      assert.match(e.message, /i-[0-9a-f]+ \(redis1 at 10\.99\.[0-9.]+\) runs, but .*9001, 9002 answer PING.*ECONNREFUSED.*provider\.redisPrepareCommands/);
      return true;
    });
  });
});

describe("ready: a machine an interrupted launch left behind is finished, never launched again", () => {
  it("prepared before the deadline and serving now: the ports are checked, it is not prepared a second time", async () => {
    const events: string[] = [];
    let serving = false;
    s = setup({ prepare: true, events, probe: async (target) => (target.kind === "ssh" || serving ? true : "ECONNREFUSED") });
    await assert.rejects(s.compute.launch(REDIS1, AbortSignal.timeout(150)), (e: unknown) => e instanceof ProviderError && e.code === "NotAnswering");
    serving = true;
    const left = await s.compute.find("redis1", AbortSignal.timeout(5000));
    assert.ok(left, "the instance is found by its tags");
    const m = await s.compute.ready(left, REDIS1, AbortSignal.timeout(5000));
    assert.deepEqual([m.id, m.host], [left.id, "redis1"]);
    assert.match(m.address, /^10\.99\./);
    assert.equal(runInputs(s.fake).length, 1, "one RunInstances in all");
    assert.equal(events.filter((e) => e.startsWith("prepare")).length, 1, "prepared once, by the first attempt");
  });

  it("cut off before its preparation (SSH never answered): ready prepares it, then waits for its ports", async () => {
    const events: string[] = [];
    let sshUp = false;
    s = setup({
      prepare: true,
      events,
      probe: async (target) => {
        events.push(`probe ${target.kind}:${target.port}`);
        if (target.kind === "ssh") return sshUp ? true : "ETIMEDOUT";
        return events.some((e) => e.startsWith("prepare")) ? true : "ECONNREFUSED";
      },
    });
    await assert.rejects(s.compute.launch(REDIS1, AbortSignal.timeout(150)), (e: unknown) => e instanceof ProviderError && e.code === "NotAnswering");
    assert.equal(events.filter((e) => e.startsWith("prepare")).length, 0, "precondition: the first attempt prepared nothing");
    sshUp = true;
    const left = await s.compute.find("redis1", AbortSignal.timeout(5000));
    assert.ok(left);
    await s.compute.ready(left, REDIS1, AbortSignal.timeout(5000));
    assert.equal(events.filter((e) => e.startsWith("prepare")).length, 1);
    assert.equal(runInputs(s.fake).length, 1, "one RunInstances in all");
  });

  it("an HAProxy host's Elastic IP is associated again (idempotent: AllowReassociation to the same instance)", async () => {
    s = setup({ provider: "  imageId: ami-0123456789abcdef0\n  elasticIps: { haproxy1: eipalloc-0123456789abcdef0 }" });
    const m = await s.compute.launch({ host: "haproxy1", role: "haproxy" }, AbortSignal.timeout(5000));
    await s.compute.ready(m, { host: "haproxy1", role: "haproxy" }, AbortSignal.timeout(5000));
    const calls = s.fake.ec2.commandCalls(AssociateAddressCommand).map((c) => c.args[0].input);
    const one = { AllocationId: "eipalloc-0123456789abcdef0", InstanceId: m.id, AllowReassociation: true };
    assert.deepEqual(calls, [one, one]);
    assert.equal(runInputs(s.fake).length, 1);
  });
});

describe("launch: AWS errors", () => {
  it("InsufficientInstanceCapacity falls back to the next subnet, then the next instance type, each with its own token", async () => {
    s = setup();
    s.fake.ec2
      .on(RunInstancesCommand)
      .rejectsOnce(ec2Error("InsufficientInstanceCapacity", "We currently do not have sufficient m6i.large capacity in the Availability Zone you requested (eu-west-1a)."))
      .rejectsOnce(ec2Error("InsufficientInstanceCapacity"))
      .resolves({ Instances: [{ InstanceId: "i-0000000000000c0de", State: { Name: "pending" } }] });
    s.fake.instances.set("i-0000000000000c0de", {
      InstanceId: "i-0000000000000c0de",
      State: { Name: "running" },
      Tags: [],
      PrivateIpAddress: "10.99.7.7",
      LaunchTime: new Date(),
    });
    const m = await s.compute.launch(REDIS1, AbortSignal.timeout(5000));
    assert.equal(m.id, "i-0000000000000c0de");
    const tried = runInputs(s.fake).map((i) => `${i.InstanceType} ${i.SubnetId}`);
    assert.deepEqual(tried, ["m6i.large subnet-0aaaaaaaaaaaaaaa1", "m6i.large subnet-0bbbbbbbbbbbbbbb2", "m5.large subnet-0aaaaaaaaaaaaaaa1"]);
    assert.equal(new Set(runInputs(s.fake).map((i) => i.ClientToken)).size, 3);
  });

  it("no capacity anywhere: a retryable error that lists every try and says which config keys to widen", async () => {
    s = setup();
    s.fake.ec2.on(RunInstancesCommand).rejects(ec2Error("InsufficientInstanceCapacity"));
    await assert.rejects(s.compute.launch(REDIS1, AbortSignal.timeout(5000)), (e: unknown) => {
      assert.ok(e instanceof ProviderError);
      assert.equal(e.code, "InsufficientInstanceCapacity");
      assert.equal(e.retryable, true);
      assert.match(e.message, /m6i\.large in subnet-0aaaaaaaaaaaaaaa1.*m5\.large in subnet-0bbbbbbbbbbbbbbb2/);
      assert.match(e.message, /provider\.instanceTypes.*provider\.subnetIds/);
      return true;
    });
    assert.equal(runInputs(s.fake).length, 4);
  });

  for (const code of ["RequestLimitExceeded", "Throttling", "InternalError"]) {
    it(`${code} is retried with the same client token (so a retry never launches twice)`, async () => {
      s = setup();
      s.fake.ec2.on(RunInstancesCommand).rejectsOnce(ec2Error(code, "Request limit exceeded.", code === "InternalError" ? 500 : 503)).rejectsOnce(ec2Error(code)).callsFake(async (input: RunInstancesCommandInput) => ({
        Instances: [{ InstanceId: "i-00000000000000abc", ClientToken: input.ClientToken }],
      }));
      s.fake.instances.set("i-00000000000000abc", { InstanceId: "i-00000000000000abc", State: { Name: "running" }, Tags: [], PrivateIpAddress: "10.99.8.8", LaunchTime: new Date() });
      const m = await s.compute.launch(REDIS1, AbortSignal.timeout(5000));
      assert.equal(m.id, "i-00000000000000abc");
      const inputs = runInputs(s.fake);
      assert.equal(inputs.length, 3);
      assert.equal(new Set(inputs.map((i) => i.ClientToken)).size, 1);
    });
  }

  it("throttling beyond the attempts fails retryable, with the code and what to do", async () => {
    s = setup();
    s.fake.ec2.on(RunInstancesCommand).rejects(ec2Error("RequestLimitExceeded", "Request limit exceeded.", 503));
    await assert.rejects(s.compute.launch(REDIS1, AbortSignal.timeout(5000)), (e: unknown) => {
      assert.ok(e instanceof ProviderError);
      assert.equal(e.code, "RequestLimitExceeded");
      assert.equal(e.retryable, true);
      assert.match(e.message, /RunInstances for redis1.*RequestLimitExceeded.*What to do: AWS is throttling/);
      return true;
    });
    assert.equal(runInputs(s.fake).length, FAST_RETRY.attempts);
  });

  it("throttling until the step's deadline stops at the deadline", async () => {
    s = setup({ retry: { attempts: 1000, baseDelayMs: 20, maxDelayMs: 20 } });
    s.fake.ec2.on(RunInstancesCommand).rejects(ec2Error("RequestLimitExceeded"));
    const started = Date.now();
    await assert.rejects(s.compute.launch(REDIS1, AbortSignal.timeout(200)), (e: unknown) => {
      assert.ok(e instanceof ProviderError);
      assert.equal(e.code, "RequestLimitExceeded");
      assert.match(e.message, /gave up at the step's deadline/);
      return true;
    });
    assert.ok(Date.now() - started < 2000, "no retry after the deadline");
  });

  it("InvalidInstanceID.NotFound right after the launch (eventual consistency) is waited out", async () => {
    s = setup();
    let described = 0;
    s.fake.ec2.on(DescribeInstancesCommand).callsFake(async (input: { InstanceIds?: string[] }) => {
      described += 1;
      if (described <= 2) throw ec2Error("InvalidInstanceID.NotFound", `The instance ID '${input.InstanceIds?.[0]}' does not exist`);
      const i = s.fake.instances.get(input.InstanceIds![0]!)!;
      return { Reservations: [{ Instances: [{ ...i, State: { Name: "running" } }] }] };
    });
    const m = await s.compute.launch(REDIS1, AbortSignal.timeout(5000));
    assert.ok(described >= 3);
    assert.match(m.address, /^10\.99\./);
  });

  it("an instance that dies while starting fails the launch with EC2's state reason", async () => {
    s = setup();
    s.fake.ec2.on(DescribeInstancesCommand).callsFake(async (input: { InstanceIds?: string[] }) => ({
      Reservations: [
        {
          Instances: [
            {
              InstanceId: input.InstanceIds![0]!,
              State: { Name: "terminated" },
              StateReason: { Code: "Server.InternalError", Message: "Server.InternalError: Internal error on launch" },
            },
          ],
        },
      ],
    }));
    await assert.rejects(s.compute.launch(REDIS1, AbortSignal.timeout(5000)), (e: unknown) => {
      assert.ok(e instanceof ProviderError);
      assert.equal(e.code, "Server.InternalError");
      assert.equal(e.retryable, true);
      assert.match(e.message, /did not reach running: it is terminated \(Server\.InternalError: .*\)/);
      return true;
    });
  });

  it("UnauthorizedOperation is not retried: the message names the missing permission and the README section", async () => {
    s = setup();
    s.fake.ec2
      .on(RunInstancesCommand)
      .rejects(ec2Error("UnauthorizedOperation", "You are not authorized to perform this operation. Encoded authorization failure message: AbCdEf0123"));
    await assert.rejects(s.compute.launch(REDIS1, AbortSignal.timeout(5000)), (e: unknown) => {
      assert.ok(e instanceof ProviderError);
      assert.equal(e.retryable, false);
      assert.equal(e.code, "UnauthorizedOperation");
      assert.match(e.message, /does not allow EC2 RunInstances.*Running on AWS/);
      assert.doesNotMatch(e.message, /AbCdEf0123/, "the encoded message is pointed at, not printed");
      return true;
    });
    assert.equal(runInputs(s.fake).length, 1);
  });

  it("InvalidAMIID.NotFound names provider.imageId and is not retried", async () => {
    s = setup();
    s.fake.ec2.on(RunInstancesCommand).rejects(ec2Error("InvalidAMIID.NotFound", "The image id '[ami-0123456789abcdef0]' does not exist"));
    await assert.rejects(s.compute.launch(REDIS1, AbortSignal.timeout(5000)), (e: unknown) => {
      assert.ok(e instanceof ProviderError);
      assert.equal(e.retryable, false);
      assert.match(e.message, /InvalidAMIID\.NotFound: The image id .*provider\.imageId/);
      return true;
    });
    assert.equal(runInputs(s.fake).length, 1);
  });

  it("app machines are never launched", async () => {
    s = setup();
    await assert.rejects(s.compute.launch({ host: "app", role: "app" }, AbortSignal.timeout(5000)), ProviderError);
    assert.equal(runInputs(s.fake).length, 0);
  });
});

describe("terminate: only this topology's instance of this host", () => {
  const ours = { "failoverd:topology": "barton", "failoverd:host": "redis1", "failoverd:role": "redis" };

  it("DescribeInstances of the id, then TerminateInstances of exactly that id", async () => {
    s = setup();
    const id = s.fake.addInstance(ours);
    await s.compute.terminate({ id, host: "redis1", role: "redis", address: "10.99.0.1" }, AbortSignal.timeout(5000));
    assert.deepEqual(s.fake.ec2.commandCalls(DescribeInstancesCommand).map((c) => c.args[0].input), [{ InstanceIds: [id] }]);
    assert.deepEqual(s.fake.ec2.commandCalls(TerminateInstancesCommand).map((c) => c.args[0].input), [{ InstanceIds: [id] }]);
    assert.equal(s.fake.instances.get(id)!.State.Name, "shutting-down");
  });

  const strangers: [string, Record<string, string>, RegExp][] = [
    ["another topology", { ...ours, "failoverd:topology": "staging" }, /its tag failoverd:topology is 'staging', not 'barton'/],
    ["another host", { ...ours, "failoverd:host": "redis2" }, /its tag failoverd:host is 'redis2', not 'redis1'/],
    ["no failoverd tags at all", { Name: "prod-db-1" }, /it has no failoverd:topology tag/],
  ];
  for (const [what, tags, why] of strangers) {
    it(`refuses an instance of ${what}, and sends no TerminateInstances`, async () => {
      s = setup();
      const id = s.fake.addInstance(tags);
      await assert.rejects(s.compute.terminate({ id, host: "redis1", role: "redis", address: "10.99.0.1" }, AbortSignal.timeout(5000)), (e: unknown) => {
        assert.ok(e instanceof ProviderError);
        assert.equal(e.retryable, false);
        assert.match(e.message, /refusing to terminate/);
        assert.match(e.message, why);
        return true;
      });
      assert.equal(s.fake.ec2.commandCalls(TerminateInstancesCommand).length, 0);
      assert.equal(s.fake.instances.get(id)!.State.Name, "running");
    });
  }

  it("refuses what is not an instance id without asking EC2", async () => {
    s = setup();
    await assert.rejects(s.compute.terminate({ id: "redis1", host: "redis1", role: "redis", address: "10.99.0.1" }, AbortSignal.timeout(5000)), /not an EC2 instance id/);
    assert.equal(s.fake.ec2.commandCalls(DescribeInstancesCommand).length, 0);
  });

  it("is idempotent: an instance already shutting down, terminated or unknown to EC2 resolves without a new request", async () => {
    s = setup();
    const down = s.fake.addInstance(ours, "shutting-down");
    const gone = s.fake.addInstance(ours, "terminated");
    for (const id of [down, gone, "i-0000000000000dead"]) {
      await s.compute.terminate({ id, host: "redis1", role: "redis", address: "10.99.0.1" }, AbortSignal.timeout(5000));
    }
    assert.equal(s.fake.ec2.commandCalls(TerminateInstancesCommand).length, 0);
  });

  it("throttled TerminateInstances is retried", async () => {
    s = setup();
    const id = s.fake.addInstance(ours);
    s.fake.ec2.on(TerminateInstancesCommand).rejectsOnce(ec2Error("RequestLimitExceeded", "Request limit exceeded.", 503)).resolves({});
    await s.compute.terminate({ id, host: "redis1", role: "redis", address: "10.99.0.1" }, AbortSignal.timeout(5000));
    assert.equal(s.fake.ec2.commandCalls(TerminateInstancesCommand).length, 2);
  });
});

describe("find", () => {
  it("filters by the topology and host tags and the live states; the newest wins", async () => {
    s = setup();
    const older = s.fake.addInstance({ "failoverd:topology": "barton", "failoverd:host": "redis1", "failoverd:role": "redis" });
    s.fake.instances.get(older)!.LaunchTime = new Date(1_000);
    const newer = s.fake.addInstance({ "failoverd:topology": "barton", "failoverd:host": "redis1", "failoverd:role": "redis" });
    s.fake.instances.get(newer)!.LaunchTime = new Date(2_000);
    s.fake.addInstance({ "failoverd:topology": "barton", "failoverd:host": "redis1" }, "terminated");
    const m = await s.compute.find("redis1", AbortSignal.timeout(5000));
    assert.equal(m?.id, newer);
    assert.deepEqual(s.fake.ec2.commandCalls(DescribeInstancesCommand)[0]!.args[0].input, {
      Filters: [
        { Name: "tag:failoverd:topology", Values: ["barton"] },
        { Name: "tag:failoverd:host", Values: ["redis1"] },
        { Name: "instance-state-name", Values: ["pending", "running"] },
      ],
    });
    assert.equal(await s.compute.find("redis2", AbortSignal.timeout(5000)), null);
  });

  it("follows NextToken pages", async () => {
    s = setup();
    s.fake.ec2
      .on(DescribeInstancesCommand)
      .resolvesOnce({ Reservations: [], NextToken: "page2" })
      .resolvesOnce({
        Reservations: [
          {
            Instances: [
              {
                InstanceId: "i-00000000000000f00",
                State: { Name: "running" },
                PrivateIpAddress: "10.99.9.9",
                Tags: [
                  { Key: "failoverd:topology", Value: "barton" },
                  { Key: "failoverd:host", Value: "redis1" },
                ],
              },
            ],
          },
        ],
      });
    const m = await s.compute.find("redis1", AbortSignal.timeout(5000));
    assert.deepEqual(m, { id: "i-00000000000000f00", host: "redis1", role: "redis", address: "10.99.9.9" });
    assert.equal(s.fake.ec2.commandCalls(DescribeInstancesCommand)[1]!.args[0].input.NextToken, "page2");
  });
});

describe("dry-run descriptions", () => {
  it("describe every request with its parameters, user data by size only", () => {
    s = setup({ provider: "  imageId: ami-0123456789abcdef0\n  userData: secret-bootstrap-token\n  elasticIps: { haproxy1: eipalloc-0123456789abcdef0 }" });
    const lines = s.compute.describeLaunch({ host: "haproxy1", role: "haproxy" }).join("\n");
    assert.match(lines, /EC2 RunInstances \{.*"ImageId":"ami-0123456789abcdef0","InstanceType":"m6i\.large","SubnetId":"subnet-0aaaaaaaaaaaaaaa1"/);
    assert.match(lines, /"Key":"failoverd:host","Value":"haproxy1"/);
    assert.match(lines, /"UserData":"<22 bytes>"/);
    assert.doesNotMatch(lines, /secret-bootstrap-token/);
    assert.match(lines, /InstanceType=m5\.large SubnetId=subnet-0bbbbbbbbbbbbbbb2/);
    assert.match(lines, /waitUntilInstanceRunning/);
    assert.match(lines, /EC2 AssociateAddress \{"AllocationId":"eipalloc-0123456789abcdef0","InstanceId":"<new instance>","AllowReassociation":true\}/);
    const term = s.compute.describeTerminate({ id: "i-0123", host: "redis1", role: "redis", address: "10.0.1.11" }).join("\n");
    assert.match(term, /DescribeInstances \{"InstanceIds":\["i-0123"\]\}: refuse unless tagged failoverd:topology=barton and failoverd:host=redis1/);
    assert.match(term, /TerminateInstances \{"InstanceIds":\["i-0123"\]\}/);
  });
});

beforeEach(() => {
  process.env["AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED"] = "true";
});
