/**
 * Keeping the failed machine and warm spares on EC2, against the SDK's mock: the exact requests (DescribeInstances
 * filters, CreateTags, ModifyInstanceAttribute groups, StopInstances, StartInstances) and AWS's real error codes
 * (IncorrectInstanceState, InvalidInstanceID.NotFound, InsufficientInstanceCapacity).
 */
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import {
  CreateTagsCommand,
  ModifyInstanceAttributeCommand,
  RunInstancesCommand,
  StartInstancesCommand,
  StopInstancesCommand,
  TerminateInstancesCommand,
} from "@aws-sdk/client-ec2";
import { ProviderError } from "../../src/errors.ts";
import { Ec2Compute } from "../../src/providers/aws/compute.ts";
import { awsConfigOf } from "../../src/providers/aws/index.ts";
import { parseTopology } from "../../src/topology/load.ts";
import { awsTopologyYaml, ec2Error, FakeAws } from "../helpers/fake-aws.ts";

const QUARANTINE = "sg-0eeeeeeeeeeeeeee1";
const REDIS1 = { host: "redis1", role: "redis" as const, ports: [9001, 9002] };
const OURS = { "failoverd:topology": "barton", "failoverd:host": "redis1", "failoverd:role": "redis" };
const signal = () => AbortSignal.timeout(5000);

let fake: FakeAws;
afterEach(() => fake?.restore());

function compute(): Ec2Compute {
  const t = parseTopology(awsTopologyYaml({ net: 46, name: "barton", provider: `  imageId: ami-0123456789abcdef0\n  quarantineSecurityGroupId: ${QUARANTINE}` }), "unit.yaml");
  fake = new FakeAws();
  return new Ec2Compute({
    topology: t.name,
    roleOf: () => "redis",
    config: awsConfigOf(t),
    ec2: fake.clients.ec2,
    probe: async () => true,
    sshPort: 22,
    retry: { attempts: 4, baseDelayMs: 1, maxDelayMs: 2 },
    waiter: { minDelaySec: 0.001, maxDelaySec: 0.002, maxWaitSec: 5 },
    probeEveryMs: 1,
  });
}

/** Every EC2 request after the setup, as `Command input`. */
const requests = () =>
  fake.ec2.calls().map((c) => {
    const cmd = c.args[0] as { constructor: { name: string }; input: unknown };
    return `${cmd.constructor.name.replace(/Command$/, "")} ${JSON.stringify(cmd.input)}`;
  });

const machine = (id: string) => ({ id, host: "redis1", role: "redis" as const, address: fake.instances.get(id)!.PrivateIpAddress });

describe("keep: the failed machine stays for the post-mortem", () => {
  it("stop: DescribeInstances (guard), CreateTags (kept, recovery id, time), StopInstances; find() forgets it", async () => {
    const c = compute();
    const id = fake.addInstance(OURS);
    const before = Date.now();
    await c.keep(machine(id), { mode: "stop", recoveryId: "20261202-redis1-abc" }, signal());
    const tags = fake.ec2.commandCalls(CreateTagsCommand)[0]!.args[0].input;
    const at = tags.Tags?.find((t) => t.Key === "failoverd:kept-at")?.Value ?? "";
    assert.ok(Date.parse(at) >= before - 1000 && Date.parse(at) <= Date.now(), `kept-at ${at} is now`);
    assert.deepEqual(requests(), [
      `DescribeInstances {"InstanceIds":["${id}"]}`,
      `CreateTags {"Resources":["${id}"],"Tags":[{"Key":"failoverd:kept","Value":"stop"},{"Key":"failoverd:recovery-id","Value":"20261202-redis1-abc"},{"Key":"failoverd:kept-at","Value":"${at}"}]}`,
      `StopInstances {"InstanceIds":["${id}"]}`,
    ]);
    assert.equal(fake.ec2.commandCalls(TerminateInstancesCommand).length, 0, "never terminated");
    assert.equal(await c.find("redis1", signal()), null);
    assert.equal(fake.instances.get(id)!.State.Name, "stopped", "its volumes stay: stopped, not terminated");
  });

  it("quarantine: its security groups become the quarantine group (ModifyInstanceAttribute) before it stops", async () => {
    const c = compute();
    const id = fake.addInstance(OURS);
    await c.keep(machine(id), { mode: "quarantine", recoveryId: "r-1" }, signal());
    const names = requests().map((r) => r.split(" ")[0]);
    assert.deepEqual(names, ["DescribeInstances", "CreateTags", "ModifyInstanceAttribute", "StopInstances"]);
    assert.deepEqual(fake.ec2.commandCalls(ModifyInstanceAttributeCommand)[0]!.args[0].input, { InstanceId: id, Groups: [QUARANTINE] });
    assert.deepEqual(fake.instances.get(id)!.SecurityGroups, [{ GroupId: QUARANTINE }]);
    const kept = await c.kept(signal());
    assert.deepEqual(kept.map((k) => [k.id, k.host, k.mode, k.recoveryId]), [[id, "redis1", "quarantine", "r-1"]]);
  });

  it("kept(): DescribeInstances filtered by the topology tag, the kept tag key and the existing states", async () => {
    const c = compute();
    await c.kept(signal());
    assert.deepEqual(requests(), [
      'DescribeInstances {"Filters":[{"Name":"tag:failoverd:topology","Values":["barton"]},{"Name":"tag-key","Values":["failoverd:kept"]},{"Name":"instance-state-name","Values":["pending","running","stopping","stopped"]}]}',
    ]);
  });

  it("a machine of another topology is refused before any change (NotManaged, not retryable)", async () => {
    const c = compute();
    const id = fake.addInstance({ ...OURS, "failoverd:topology": "someone-else" });
    await assert.rejects(c.keep(machine(id), { mode: "quarantine", recoveryId: "r" }, signal()), (e: unknown) => {
      assert.ok(e instanceof ProviderError);
      assert.equal(e.code, "NotManaged");
      assert.equal(e.retryable, false);
      assert.match(e.message, /refusing to quarantine/);
      return true;
    });
    assert.deepEqual(requests().map((r) => r.split(" ")[0]), ["DescribeInstances"]);
    assert.equal(fake.instances.get(id)!.State.Name, "running");
  });

  it("IncorrectInstanceState from StopInstances (the instance is still pending) is waited out", async () => {
    const c = compute();
    const id = fake.addInstance(OURS);
    fake.ec2.on(StopInstancesCommand).rejectsOnce(ec2Error("IncorrectInstanceState", `The instance '${id}' is not in a state from which it can be stopped.`)).resolves({});
    await c.keep(machine(id), { mode: "stop", recoveryId: "r" }, signal());
    assert.equal(fake.ec2.commandCalls(StopInstancesCommand).length, 2);
  });

  it("InvalidInstanceID.NotFound: the machine is gone already, nothing to keep (idempotent)", async () => {
    const c = compute();
    await c.keep({ id: "i-0123456789abcdef0", host: "redis1", role: "redis", address: "10.99.0.9" }, { mode: "stop", recoveryId: "r" }, signal());
    assert.deepEqual(requests().map((r) => r.split(" ")[0]), ["DescribeInstances"]);
  });

  it("keeping again changes nothing: no second tag (its time stays), no second stop", async () => {
    const c = compute();
    const id = fake.addInstance(OURS);
    await c.keep(machine(id), { mode: "stop", recoveryId: "r" }, signal());
    await c.keep(machine(id), { mode: "stop", recoveryId: "r" }, signal());
    assert.equal(fake.ec2.commandCalls(CreateTagsCommand).length, 1);
    assert.equal(fake.ec2.commandCalls(StopInstancesCommand).length, 1);
  });
});

describe("spares", () => {
  it("addSpare(stopped): RunInstances tagged as a spare (no host tag), prepared, then StopInstances", async () => {
    const c = compute();
    const spare = await c.addSpare("redis", "stopped", [9001, 9002], signal());
    const run = fake.ec2.commandCalls(RunInstancesCommand)[0]!.args[0].input;
    assert.deepEqual(run.TagSpecifications?.[0]?.Tags, [
      { Key: "Name", Value: "barton-spare-redis" },
      { Key: "failoverd:topology", Value: "barton" },
      { Key: "failoverd:role", Value: "redis" },
      { Key: "failoverd:pool", Value: "spare" },
    ]);
    assert.deepEqual(fake.ec2.commandCalls(StopInstancesCommand).map((x) => x.args[0].input), [{ InstanceIds: [spare.id] }]);
    assert.equal(await c.find("redis1", signal()), null, "a spare serves no host");
    assert.deepEqual((await c.spares("redis", signal())).map((x) => [x.id, x.state]), [[spare.id, "stopped"]]);
  });

  it("claim of a stopped spare: the exact DescribeInstances filters, CreateTags for the host, StartInstances, then running", async () => {
    const c = compute();
    const id = fake.addInstance({ "failoverd:topology": "barton", "failoverd:role": "redis", "failoverd:pool": "spare" }, "stopped");
    fake.ec2.resetHistory();
    const m = await c.claim(REDIS1, signal());
    assert.deepEqual(m, { id, host: "redis1", role: "redis", address: fake.instances.get(id)!.PrivateIpAddress });
    const r = requests();
    assert.deepEqual(r.slice(0, 4), [
      'DescribeInstances {"Filters":[{"Name":"tag:failoverd:topology","Values":["barton"]},{"Name":"tag:failoverd:host","Values":["redis1"]},{"Name":"tag:failoverd:pool","Values":["claimed"]},{"Name":"instance-state-name","Values":["stopping","stopped"]}]}',
      'DescribeInstances {"Filters":[{"Name":"tag:failoverd:topology","Values":["barton"]},{"Name":"tag:failoverd:pool","Values":["spare"]},{"Name":"tag:failoverd:role","Values":["redis"]},{"Name":"instance-state-name","Values":["pending","running","stopping","stopped"]}]}',
      `CreateTags {"Resources":["${id}"],"Tags":[{"Key":"Name","Value":"barton-redis1"},{"Key":"failoverd:host","Value":"redis1"},{"Key":"failoverd:pool","Value":"claimed"}]}`,
      `StartInstances {"InstanceIds":["${id}"]}`,
    ]);
    assert.ok(r.slice(4).every((x) => x.startsWith(`DescribeInstances {"InstanceIds":["${id}"]}`)), "then the waiter");
    assert.equal(fake.instances.get(id)!.State.Name, "running");
    assert.equal((await c.find("redis1", signal()))?.id, id);
    assert.deepEqual(await c.spares("redis", signal()), []);
    assert.equal(await c.claim({ ...REDIS1, host: "redis2" }, signal()), null, "the pool is empty");
  });

  it("a running spare is taken before a stopped one, and is not started", async () => {
    const c = compute();
    fake.addInstance({ "failoverd:topology": "barton", "failoverd:role": "redis", "failoverd:pool": "spare" }, "stopped");
    const running = fake.addInstance({ "failoverd:topology": "barton", "failoverd:role": "redis", "failoverd:pool": "spare" }, "running");
    const m = await c.claim(REDIS1, signal());
    assert.equal(m?.id, running);
    assert.equal(fake.ec2.commandCalls(StartInstancesCommand).length, 0);
  });

  it("a spare of another topology or role is never taken", async () => {
    const c = compute();
    fake.addInstance({ "failoverd:topology": "someone-else", "failoverd:role": "redis", "failoverd:pool": "spare" }, "stopped");
    fake.addInstance({ "failoverd:topology": "barton", "failoverd:role": "haproxy", "failoverd:pool": "spare" }, "stopped");
    assert.equal(await c.claim(REDIS1, signal()), null);
    assert.equal(fake.ec2.commandCalls(CreateTagsCommand).length, 0);
  });

  it("IncorrectInstanceState from StartInstances (the spare is still stopping) is waited out", async () => {
    const c = compute();
    const id = fake.addInstance({ "failoverd:topology": "barton", "failoverd:role": "redis", "failoverd:pool": "spare" }, "stopped");
    fake.ec2.on(StartInstancesCommand).rejectsOnce(ec2Error("IncorrectInstanceState", `The instance '${id}' is not in a state from which it can be started.`)).callsFake(async () => {
      fake.instances.get(id)!.State.Name = "pending";
      return {};
    });
    assert.equal((await c.claim(REDIS1, signal()))?.id, id);
    assert.equal(fake.ec2.commandCalls(StartInstancesCommand).length, 2);
  });

  it("InsufficientInstanceCapacity from StartInstances: the claim fails with that code, and the spare stays claimed out of the pool", async () => {
    const c = compute();
    const id = fake.addInstance({ "failoverd:topology": "barton", "failoverd:role": "redis", "failoverd:pool": "spare" }, "stopped");
    fake.ec2.on(StartInstancesCommand).rejects(ec2Error("InsufficientInstanceCapacity", "We currently do not have sufficient m6i.large capacity in the Availability Zone you requested (eu-west-1a)."));
    await assert.rejects(c.claim(REDIS1, AbortSignal.timeout(2000)), (e: unknown) => {
      assert.ok(e instanceof ProviderError);
      assert.equal(e.code, "InsufficientInstanceCapacity");
      assert.match(e.message, /EC2 StartInstances of i-/);
      return true;
    });
    assert.deepEqual(await c.spares("redis", signal()), [], "no longer in the pool");
    // The next claim for the host takes the same spare again (an interrupted claim is resumed, never doubled).
    fake.ec2.on(StartInstancesCommand).callsFake(async () => {
      fake.instances.get(id)!.State.Name = "pending";
      return {};
    });
    assert.equal((await c.claim(REDIS1, signal()))?.id, id);
  });

  it("a kept machine is never taken as a spare nor started", async () => {
    const c = compute();
    const id = fake.addInstance({ ...OURS, "failoverd:pool": "claimed" }, "running");
    await c.keep(machine(id), { mode: "stop", recoveryId: "r" }, signal());
    assert.equal(await c.claim(REDIS1, signal()), null);
    assert.equal(fake.ec2.commandCalls(StartInstancesCommand).length, 0);
    assert.equal(fake.instances.get(id)!.State.Name, "stopped");
  });
});

