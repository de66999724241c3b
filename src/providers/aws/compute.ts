/**
 * EC2 as a ComputeProvider. A managed machine is an instance tagged `failoverd:topology` = the topology's name,
 * `failoverd:host` = the host it serves and `failoverd:role`. Only such an instance is ever found or terminated.
 *
 * launch: RunInstances from the AMI (or launch template) with the config's type, subnet, security groups, key pair,
 * instance profile, user data and tags; on InsufficientInstanceCapacity the next (instance type, subnet) of the
 * config; then the SDK's waiter until the instance runs, the Elastic IP moved to it (HAProxy hosts that have one),
 * the Redis preparation commands (over SSH), and the role's ports answering. A ClientToken per attempt makes a
 * retried RunInstances return the same instance instead of a second one.
 */
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import {
  AssociateAddressCommand,
  type AssociateAddressCommandInput,
  CreateTagsCommand,
  DescribeAddressesCommand,
  DescribeInstancesCommand,
  type DescribeInstancesCommandInput,
  type DescribeInstancesCommandOutput,
  type EC2Client,
  type Instance,
  ModifyInstanceAttributeCommand,
  RunInstancesCommand,
  type RunInstancesCommandInput,
  StartInstancesCommand,
  StopInstancesCommand,
  type Tag,
  TerminateInstancesCommand,
  waitUntilInstanceRunning,
} from "@aws-sdk/client-ec2";
import { errorMessage, ProviderError } from "../../errors.ts";
import { type Logger, silentLogger } from "../../log.ts";
import type { AwsProviderConfig } from "../../topology/schema.ts";
import type { ComputeProvider, KeepMode, KeptMachine, LaunchRequest, Machine, MachineRole, Spare, SpareState } from "../types.ts";
import { awsCode, isCapacityCode, isThrottlingOrTransient } from "./errors.ts";
import { DEFAULT_RETRY, type RetryPolicy, withRetry } from "./retry.ts";

export const TAG_TOPOLOGY = "failoverd:topology";
export const TAG_HOST = "failoverd:host";
export const TAG_ROLE = "failoverd:role";
/** A warm spare: `spare` while in the pool, `claimed` once a launch took it for a host. */
export const TAG_POOL = "failoverd:pool";
/** A failed machine kept for the post-mortem: the mode (`stop`, `quarantine`); with the recovery id and the time. */
export const TAG_KEPT = "failoverd:kept";
export const TAG_RECOVERY = "failoverd:recovery-id";
export const TAG_KEPT_AT = "failoverd:kept-at";

/** Whether a port of a new machine answers: `true`, or why not yet. Redis ports answer PING; SSH accepts. */
export type PortProbe = (target: { address: string; port: number; kind: "redis" | "ssh" }, signal: AbortSignal) => Promise<true | string>;

/** The SDK waiter's polling, in seconds (its unit). The step's AbortSignal ends a wait sooner. */
export interface WaiterTiming {
  readonly minDelaySec: number;
  readonly maxDelaySec: number;
  readonly maxWaitSec: number;
}

export const DEFAULT_WAITER: WaiterTiming = { minDelaySec: 2, maxDelaySec: 15, maxWaitSec: 1800 };

export interface Ec2ComputeOptions {
  readonly topology: string;
  /** The declared role of a host (when an instance lacks the role tag). */
  readonly roleOf: (host: string) => MachineRole;
  readonly config: AwsProviderConfig;
  readonly ec2: EC2Client;
  readonly probe: PortProbe;
  /** The SSH port: what answers on an unconfigured HAProxy machine. */
  readonly sshPort: number;
  /** Runs provider.redisPrepareCommands on a new Redis machine; absent when there are none. */
  readonly prepareRedis?: (machine: Machine, signal: AbortSignal) => Promise<void>;
  /** Describes prepareRedis for dry-run. */
  readonly describePrepare?: (host: string) => readonly string[];
  readonly retry?: RetryPolicy;
  readonly waiter?: WaiterTiming;
  readonly probeEveryMs?: number;
  readonly log?: Logger;
}

const LIVE_STATES = ["pending", "running"];
/** The states of an instance that still exists (kept machines and spares may be stopped). */
const EXISTING_STATES = ["pending", "running", "stopping", "stopped"];

export class Ec2Compute implements ComputeProvider {
  readonly kind = "aws";
  private readonly retry: RetryPolicy;
  private readonly waiter: WaiterTiming;
  private readonly log: Logger;
  /** Claims run one at a time: two recoveries never take the same spare (EC2 tags have no compare-and-set). */
  private claiming: Promise<unknown> = Promise.resolve();

  constructor(private readonly o: Ec2ComputeOptions) {
    this.retry = o.retry ?? DEFAULT_RETRY;
    this.waiter = o.waiter ?? DEFAULT_WAITER;
    this.log = o.log ?? silentLogger();
  }

  async launch(req: LaunchRequest, signal: AbortSignal): Promise<Machine> {
    if (req.role === "app") throw new ProviderError(`failoverd does not launch app machines (${req.host})`, false);
    const id = await this.runInstance(req, signal);
    const machine = await this.finish(id, req, signal, false);
    this.log.info({ host: req.host, instanceId: id, address: machine.address }, `launched ${id} for ${req.host} at ${machine.address}`);
    return machine;
  }

  async ready(machine: Machine, req: LaunchRequest, signal: AbortSignal): Promise<Machine> {
    const m = await this.finish(machine.id, req, signal, true);
    this.log.info({ host: req.host, instanceId: m.id, address: m.address }, `finished ${m.id} for ${req.host}, launched by an earlier attempt`);
    return m;
  }

  /**
   * Everything after RunInstances, each part idempotent: wait until it runs, attach the Elastic IP, prepare Redis
   * and wait for its ports. `resumed`: an earlier attempt may have prepared it already; then it is not prepared again
   * (preparation commands need not be idempotent) if every Redis port answers.
   */
  private async finish(id: string, req: LaunchRequest, signal: AbortSignal, resumed: boolean): Promise<Machine> {
    const instance = await this.waitRunning(id, req.host, signal);
    const address = instance.PrivateIpAddress;
    if (!address) throw new ProviderError(`instance ${id} for ${req.host} runs but has no private address`, true, "NoAddress");
    const machine: Machine = { id, host: req.host, role: req.role, address };
    const allocation = this.o.config.elasticIps[req.host];
    if (allocation) await this.associateAddress(this.associateInput(allocation, id), req.host, signal);
    const ports = req.ports ?? [];
    if (req.role === "redis" && this.o.prepareRedis && !(resumed && (await this.allAnswer(machine, ports, signal)))) {
      await this.waitForPorts(machine, "ssh", [this.o.sshPort], signal);
      await this.o.prepareRedis(machine, signal);
    }
    if (req.role === "redis") await this.waitForPorts(machine, "redis", ports, signal);
    else await this.waitForPorts(machine, "ssh", [this.o.sshPort], signal);
    return machine;
  }

  private async allAnswer(m: Machine, ports: readonly number[], signal: AbortSignal): Promise<boolean> {
    const answers = await Promise.all(ports.map((port) => this.o.probe({ address: m.address, port, kind: "redis" }, signal).catch(() => false)));
    return answers.every((a) => a === true);
  }

  async terminate(machine: Machine, signal: AbortSignal): Promise<void> {
    // Gone long ago: idempotent.
    const instance = await this.guarded(machine, "terminate", signal);
    if (!instance) return;
    const state = instance.State?.Name;
    if (state === "terminated" || state === "shutting-down") return;
    try {
      await this.call(
        `EC2 TerminateInstances of ${machine.id} (${machine.host})`,
        () => this.o.ec2.send(new TerminateInstancesCommand({ InstanceIds: [machine.id] }), { abortSignal: signal }),
        signal,
      );
    } catch (e) {
      if (e instanceof ProviderError && e.code === "InvalidInstanceID.NotFound") return;
      throw e;
    }
    this.log.info({ host: machine.host, instanceId: machine.id }, `terminated ${machine.id} (${machine.host})`);
  }

  /** The newest pending or running instance tagged for `host`: after a launch that is the replacement. */
  async find(host: string, signal: AbortSignal): Promise<Machine | null> {
    const found = await this.describeAll(`EC2 DescribeInstances for ${host}`, this.findInput(host), signal);
    const live = found
      .filter((i) => i.InstanceId && LIVE_STATES.includes(i.State?.Name ?? "") && this.whyNotOurs(i, host) === null)
      .sort((a, b) => (b.LaunchTime?.getTime() ?? 0) - (a.LaunchTime?.getTime() ?? 0));
    const i = live[0];
    if (!i) return null;
    return { id: i.InstanceId!, host, role: taggedRole(i) ?? this.o.roleOf(host), address: i.PrivateIpAddress ?? "" };
  }

  /**
   * stop: tagged as kept (before anything else, so an interrupted call leaves it recognisable), then StopInstances
   * (no Force: the file systems are flushed for the post-mortem). quarantine: its security groups are replaced by
   * provider.quarantineSecurityGroupId (no ingress) before it stops. Its Elastic IP, if any, moves to the
   * replacement at launch. Guarded like terminate.
   */
  async keep(machine: Machine, how: { mode: KeepMode; recoveryId: string }, signal: AbortSignal): Promise<void> {
    const instance = await this.guarded(machine, how.mode === "stop" ? "stop" : "quarantine", signal);
    if (!instance) return;
    const state = instance.State?.Name;
    if (state === "terminated" || state === "shutting-down") return;
    const tags = new Map((instance.Tags ?? []).map((t) => [t.Key, t.Value]));
    if (tags.get(TAG_KEPT) !== how.mode) {
      await this.call(`EC2 CreateTags on ${machine.id} (${machine.host}, kept)`, () => this.o.ec2.send(new CreateTagsCommand(this.keepTagsInput(machine.id, how)), { abortSignal: signal }), signal, notFoundToo);
    }
    if (how.mode === "quarantine") {
      const group = this.o.config.quarantineSecurityGroupId;
      if (!group) throw new ProviderError("recovery.failedMachine is quarantine but provider.quarantineSecurityGroupId is not set", false, "NoQuarantineGroup");
      await this.call(
        `EC2 ModifyInstanceAttribute of ${machine.id} (${machine.host}, quarantine)`,
        () => this.o.ec2.send(new ModifyInstanceAttributeCommand({ InstanceId: machine.id, Groups: [group] }), { abortSignal: signal }),
        signal,
        notFoundToo,
      );
    }
    if (state !== "stopped" && state !== "stopping") await this.stopInstance(machine.id, machine.host, signal);
    this.log.info({ host: machine.host, instanceId: machine.id, mode: how.mode, recoveryId: how.recoveryId }, `kept ${machine.id} (${machine.host}) for the post-mortem: ${how.mode}`);
  }

  async kept(signal: AbortSignal): Promise<KeptMachine[]> {
    const found = await this.describeAll("EC2 DescribeInstances of the kept machines", this.keptInput(), signal);
    return found
      .filter((i) => i.InstanceId && EXISTING_STATES.includes(i.State?.Name ?? ""))
      .map((i) => {
        const tags = new Map((i.Tags ?? []).map((t) => [t.Key, t.Value]));
        const mode = tags.get(TAG_KEPT) === "quarantine" ? "quarantine" : "stop";
        const at = Date.parse(tags.get(TAG_KEPT_AT) ?? "");
        const host = tags.get(TAG_HOST) ?? "";
        return {
          id: i.InstanceId!,
          host,
          role: taggedRole(i) ?? this.o.roleOf(host),
          address: i.PrivateIpAddress ?? "",
          mode,
          recoveryId: tags.get(TAG_RECOVERY) ?? "",
          // Untagged time: as old as its launch (cleanup then releases it rather than never).
          keptAt: Number.isFinite(at) ? at : (i.LaunchTime?.getTime() ?? 0),
        } satisfies KeptMachine;
      })
      .sort((a, b) => a.keptAt - b.keptAt);
  }

  async spares(role: MachineRole, signal: AbortSignal): Promise<Spare[]> {
    const found = await this.describeAll(`EC2 DescribeInstances of the ${role} spares`, this.sparesInput(role), signal);
    return found
      .filter((i) => i.InstanceId && EXISTING_STATES.includes(i.State?.Name ?? ""))
      .map((i) => {
        const state = i.State?.Name;
        return { id: i.InstanceId!, role, address: i.PrivateIpAddress ?? "", state: state === "running" ? "running" : state === "stopped" ? "stopped" : "pending" };
      });
  }

  async addSpare(role: MachineRole, state: SpareState, ports: readonly number[], signal: AbortSignal): Promise<Spare> {
    if (role === "app") throw new ProviderError("failoverd does not launch app machines", false);
    const host = `spare-${role}`;
    const id = await this.runInstance({ host, role, ports }, signal, this.spareTags(role));
    const instance = await this.waitRunning(id, host, signal);
    const machine: Machine = { id, host, role, address: instance.PrivateIpAddress ?? "" };
    if (role === "redis" && this.o.prepareRedis) {
      await this.waitForPorts(machine, "ssh", [this.o.sshPort], signal);
      await this.o.prepareRedis(machine, signal);
    }
    if (role === "redis") await this.waitForPorts(machine, "redis", ports, signal);
    else await this.waitForPorts(machine, "ssh", [this.o.sshPort], signal);
    if (state === "stopped") await this.stopInstance(id, host, signal);
    this.log.info({ role, instanceId: id, state }, `added ${id} to the ${role} spares (${state})`);
    return { id, role, address: machine.address, state };
  }

  /**
   * A spare claimed for this host by an interrupted attempt first, else a running spare, else a stopped one: tagged
   * for the host (CreateTags, before it starts: a claim is never lost), started if stopped, then finished like a
   * launch (waiter, Elastic IP, preparation unless its Redis ports answer already, ports).
   */
  async claim(req: LaunchRequest, signal: AbortSignal): Promise<Machine | null> {
    const take = async (): Promise<{ id: string; state: string } | null> => {
      const earlier = (await this.describeAll(`EC2 DescribeInstances of a spare claimed for ${req.host}`, this.claimedInput(req.host), signal)).find(
        (i) => i.InstanceId && !(i.Tags ?? []).some((t) => t.Key === TAG_KEPT),
      );
      if (earlier) return { id: earlier.InstanceId!, state: earlier.State?.Name ?? "" };
      const pool = (await this.spares(req.role, signal)).filter((s) => s.state !== "pending");
      const spare = pool.find((s) => s.state === "running") ?? pool[0];
      if (!spare) return null;
      await this.call(`EC2 CreateTags on ${spare.id} (claimed for ${req.host})`, () => this.o.ec2.send(new CreateTagsCommand(this.claimTagsInput(spare.id, req)), { abortSignal: signal }), signal, notFoundToo);
      return { id: spare.id, state: spare.state };
    };
    const turn = this.claiming.then(take, take);
    this.claiming = turn.catch(() => {});
    const taken = await turn;
    if (!taken) return null;
    if (taken.state !== "running" && taken.state !== "pending") {
      await this.call(
        `EC2 StartInstances of ${taken.id} (spare for ${req.host})`,
        () => this.o.ec2.send(new StartInstancesCommand({ InstanceIds: [taken.id] }), { abortSignal: signal }),
        signal,
        incorrectStateToo,
      );
    }
    const m = await this.finish(taken.id, req, signal, true);
    this.log.info({ host: req.host, instanceId: m.id, address: m.address }, `took spare ${m.id} for ${req.host} at ${m.address}`);
    return m;
  }

  describeKeep(machine: Machine, how: { mode: KeepMode; recoveryId: string }): readonly string[] {
    const group = this.o.config.quarantineSecurityGroupId ?? "<provider.quarantineSecurityGroupId>";
    return [
      `EC2 DescribeInstances {"InstanceIds":["${machine.id}"]}: refuse unless tagged ${TAG_TOPOLOGY}=${this.o.topology} and ${TAG_HOST}=${machine.host}`,
      `EC2 CreateTags ${JSON.stringify(this.keepTagsInput(machine.id, how)).replace(/"failoverd:kept-at","Value":"[^"]*"/, '"failoverd:kept-at","Value":"<now>"')}`,
      ...(how.mode === "quarantine" ? [`EC2 ModifyInstanceAttribute ${JSON.stringify({ InstanceId: machine.id, Groups: [group] })}`] : []),
      `EC2 StopInstances {"InstanceIds":["${machine.id}"]}`,
    ];
  }

  describeClaim(spare: Spare, req: LaunchRequest): readonly string[] {
    return [
      `EC2 CreateTags ${JSON.stringify(this.claimTagsInput(spare.id, req))}`,
      ...(spare.state === "stopped" ? [`EC2 StartInstances {"InstanceIds":["${spare.id}"]}`] : []),
      `EC2 DescribeInstances {"InstanceIds":["${spare.id}"]} until its state is running (waitUntilInstanceRunning)`,
      ...(this.o.config.elasticIps[req.host] ? [`EC2 AssociateAddress ${show(this.associateInput(this.o.config.elasticIps[req.host]!, spare.id))}`] : []),
      req.role === "redis" ? `wait until ports ${(req.ports ?? []).join(", ")} of ${spare.id} answer PING` : `wait until ${spare.id} accepts SSH on port ${this.o.sshPort}`,
    ];
  }

  keepTagsInput(id: string, how: { mode: KeepMode; recoveryId: string }, at = new Date()) {
    return {
      Resources: [id],
      Tags: [
        { Key: TAG_KEPT, Value: how.mode },
        { Key: TAG_RECOVERY, Value: how.recoveryId },
        { Key: TAG_KEPT_AT, Value: at.toISOString() },
      ],
    };
  }

  claimTagsInput(id: string, req: LaunchRequest) {
    return {
      Resources: [id],
      Tags: [
        { Key: "Name", Value: `${this.o.topology}-${req.host}` },
        { Key: TAG_HOST, Value: req.host },
        { Key: TAG_POOL, Value: "claimed" },
      ],
    };
  }

  keptInput(): DescribeInstancesCommandInput {
    return {
      Filters: [
        { Name: `tag:${TAG_TOPOLOGY}`, Values: [this.o.topology] },
        { Name: "tag-key", Values: [TAG_KEPT] },
        { Name: "instance-state-name", Values: [...EXISTING_STATES] },
      ],
    };
  }

  sparesInput(role: MachineRole): DescribeInstancesCommandInput {
    return {
      Filters: [
        { Name: `tag:${TAG_TOPOLOGY}`, Values: [this.o.topology] },
        { Name: `tag:${TAG_POOL}`, Values: ["spare"] },
        { Name: `tag:${TAG_ROLE}`, Values: [role] },
        { Name: "instance-state-name", Values: [...EXISTING_STATES] },
      ],
    };
  }

  claimedInput(host: string): DescribeInstancesCommandInput {
    return {
      Filters: [
        { Name: `tag:${TAG_TOPOLOGY}`, Values: [this.o.topology] },
        { Name: `tag:${TAG_HOST}`, Values: [host] },
        { Name: `tag:${TAG_POOL}`, Values: ["claimed"] },
        { Name: "instance-state-name", Values: ["stopping", "stopped"] },
      ],
    };
  }

  /** DescribeInstances of one machine, refused unless it is this topology's machine of its host; null when gone. */
  private async guarded(machine: Machine, verb: string, signal: AbortSignal): Promise<Instance | null> {
    if (!/^i-[0-9a-f]{8,17}$/.test(machine.id)) {
      throw new ProviderError(`refusing to ${verb} '${machine.id}' (${machine.host}): not an EC2 instance id`, false, "InvalidInstanceID.Malformed");
    }
    let instance: Instance | undefined;
    try {
      const out = await this.call(`EC2 DescribeInstances of ${machine.id} (${machine.host})`, () => this.o.ec2.send(new DescribeInstancesCommand({ InstanceIds: [machine.id] }), { abortSignal: signal }), signal);
      instance = instancesOf(out)[0];
    } catch (e) {
      if (e instanceof ProviderError && e.code === "InvalidInstanceID.NotFound") return null;
      throw e;
    }
    if (!instance) return null;
    const why = this.whyNotOurs(instance, machine.host);
    if (why) {
      throw new ProviderError(
        `refusing to ${verb} ${machine.id} (${machine.host}): ${why}. Only a machine tagged ${TAG_TOPOLOGY}=${this.o.topology}, ${TAG_HOST}=${machine.host} is touched; tag it so if it is, or fix the config`,
        false,
        "NotManaged",
      );
    }
    return instance;
  }

  /** StopInstances; IncorrectInstanceState (still pending) is waited out until the deadline. */
  private async stopInstance(id: string, host: string, signal: AbortSignal): Promise<void> {
    try {
      await this.call(`EC2 StopInstances of ${id} (${host})`, () => this.o.ec2.send(new StopInstancesCommand({ InstanceIds: [id] }), { abortSignal: signal }), signal, incorrectStateToo);
    } catch (e) {
      if (e instanceof ProviderError && e.code === "InvalidInstanceID.NotFound") return; // gone: nothing left to stop
      throw e;
    }
  }

  private async describeAll(operation: string, input: DescribeInstancesCommandInput, signal: AbortSignal): Promise<Instance[]> {
    const found: Instance[] = [];
    let token: string | undefined;
    do {
      const page: DescribeInstancesCommandInput = token ? { ...input, NextToken: token } : input;
      const out = await this.call(operation, () => this.o.ec2.send(new DescribeInstancesCommand(page), { abortSignal: signal }), signal);
      found.push(...instancesOf(out));
      token = out.NextToken;
    } while (token);
    return found;
  }

  private spareTags(role: MachineRole): Tag[] {
    const own: Record<string, string> = { Name: `${this.o.topology}-spare-${role}`, ...this.o.config.tags, [TAG_TOPOLOGY]: this.o.topology, [TAG_ROLE]: role, [TAG_POOL]: "spare" };
    return Object.entries(own).map(([Key, Value]) => ({ Key, Value }));
  }

  describeLaunch(req: LaunchRequest): readonly string[] {
    const [first, ...rest] = this.candidates();
    const lines = [`EC2 RunInstances ${show(this.runInput(req, first!.type, first!.subnet, "<unique per launch>"))}`];
    for (const c of rest) lines.push(`  on InsufficientInstanceCapacity, the same with InstanceType=${c.type} SubnetId=${c.subnet}`);
    lines.push(`EC2 DescribeInstances {"InstanceIds":["<new instance>"]} until its state is running (waitUntilInstanceRunning)`);
    const allocation = this.o.config.elasticIps[req.host];
    if (allocation) {
      lines.push(`EC2 DescribeAddresses {"AllocationIds":["${allocation}"]}: refuse if it is attached to an instance not tagged for ${req.host}`);
      lines.push(`EC2 AssociateAddress ${show(this.associateInput(allocation, "<new instance>"))}`);
    }
    if (req.role === "redis") {
      lines.push(...(this.o.describePrepare?.(req.host) ?? []));
      lines.push(`wait until ports ${(req.ports ?? []).join(", ")} of the new instance answer PING`);
    } else lines.push(`wait until the new instance accepts SSH on port ${this.o.sshPort}`);
    return lines;
  }

  describeTerminate(machine: Machine): readonly string[] {
    return [
      `EC2 DescribeInstances {"InstanceIds":["${machine.id}"]}: refuse unless tagged ${TAG_TOPOLOGY}=${this.o.topology} and ${TAG_HOST}=${machine.host}`,
      `EC2 TerminateInstances {"InstanceIds":["${machine.id}"]}`,
    ];
  }

  /** The exact RunInstances request for one (instance type, subnet). */
  runInput(req: LaunchRequest, instanceType: string, subnetId: string, clientToken: string, spareTags?: Tag[]): RunInstancesCommandInput {
    const c = this.o.config;
    const tags = spareTags ?? this.tagsOf(req.host, req.role);
    const lt = c.launchTemplate;
    return {
      MinCount: 1,
      MaxCount: 1,
      ...(c.imageId ? { ImageId: c.imageId } : {}),
      ...(lt
        ? { LaunchTemplate: { ...(lt.id ? { LaunchTemplateId: lt.id } : { LaunchTemplateName: lt.name! }), Version: lt.version ?? "$Default" } }
        : {}),
      InstanceType: instanceType as RunInstancesCommandInput["InstanceType"],
      SubnetId: subnetId,
      ...(c.securityGroupIds.length > 0 ? { SecurityGroupIds: [...c.securityGroupIds] } : {}),
      ...(c.keyName ? { KeyName: c.keyName } : {}),
      ...(c.instanceProfile
        ? { IamInstanceProfile: c.instanceProfile.startsWith("arn:") ? { Arn: c.instanceProfile } : { Name: c.instanceProfile } }
        : {}),
      ...(c.userData ? { UserData: Buffer.from(c.userData, "utf8").toString("base64") } : {}),
      TagSpecifications: [
        { ResourceType: "instance", Tags: tags },
        { ResourceType: "volume", Tags: tags },
      ],
      ClientToken: clientToken,
    };
  }

  findInput(host: string): DescribeInstancesCommandInput {
    return {
      Filters: [
        { Name: `tag:${TAG_TOPOLOGY}`, Values: [this.o.topology] },
        { Name: `tag:${TAG_HOST}`, Values: [host] },
        { Name: "instance-state-name", Values: [...LIVE_STATES] },
      ],
    };
  }

  private associateInput(allocationId: string, instanceId: string): AssociateAddressCommandInput {
    return { AllocationId: allocationId, InstanceId: instanceId, AllowReassociation: true };
  }

  private tagsOf(host: string, role: MachineRole): Tag[] {
    const own: Record<string, string> = {
      Name: `${this.o.topology}-${host}`,
      ...this.o.config.tags,
      [TAG_TOPOLOGY]: this.o.topology,
      [TAG_HOST]: host,
      [TAG_ROLE]: role,
    };
    return Object.entries(own).map(([Key, Value]) => ({ Key, Value }));
  }

  /** Instance types in order of preference, each tried in every subnet before the next type. */
  private candidates(): { type: string; subnet: string }[] {
    return this.o.config.instanceTypes.flatMap((type) => this.o.config.subnetIds.map((subnet) => ({ type, subnet })));
  }

  private async runInstance(req: LaunchRequest, signal: AbortSignal, tags?: Tag[]): Promise<string> {
    const token = randomUUID();
    const refused: string[] = [];
    let i = 0;
    for (const c of this.candidates()) {
      // A new token per (type, subnet): the same token with other parameters is IdempotentParameterMismatch.
      const input = this.runInput(req, c.type, c.subnet, `failoverd-${token}-${i++}`, tags);
      try {
        const out = await this.call(
          `EC2 RunInstances for ${req.host} (${c.type} in ${c.subnet})`,
          () => this.o.ec2.send(new RunInstancesCommand(input), { abortSignal: signal }),
          signal,
        );
        const id = out.Instances?.[0]?.InstanceId;
        if (!id) throw new ProviderError(`EC2 RunInstances for ${req.host} returned no instance`, true, "NoInstance");
        return id;
      } catch (e) {
        if (!(e instanceof ProviderError) || !isCapacityCode(e.code)) throw e;
        refused.push(`${c.type} in ${c.subnet}: ${e.code}`);
        this.log.warn({ host: req.host, instanceType: c.type, subnet: c.subnet, code: e.code }, "no capacity; trying the next instance type / subnet");
      }
    }
    throw new ProviderError(
      `EC2 RunInstances for ${req.host} failed: InsufficientInstanceCapacity for every instance type and subnet of the config (${refused.join("; ")}). ` +
        "What to do: list more types in provider.instanceTypes and subnets in other zones in provider.subnetIds, or retry later",
      true,
      "InsufficientInstanceCapacity",
    );
  }

  private async waitRunning(id: string, host: string, signal: AbortSignal): Promise<Instance> {
    try {
      const result = await waitUntilInstanceRunning(
        {
          client: this.o.ec2,
          minDelay: this.waiter.minDelaySec,
          maxDelay: this.waiter.maxDelaySec,
          maxWaitTime: this.waiter.maxWaitSec,
          abortSignal: signal,
        },
        { InstanceIds: [id] },
      );
      const instance = instancesOf(result.reason as DescribeInstancesCommandOutput | undefined).find((i) => i.InstanceId === id);
      if (instance) return instance;
    } catch (e) {
      if (signal.aborted) {
        throw new ProviderError(`instance ${id} for ${host} was launched but did not run before the step's deadline; a retry of the step reuses it`, true, "Deadline");
      }
      if (awsCode(e) !== "TimeoutError") return this.whyNotRunning(id, host, signal, e);
      throw new ProviderError(`instance ${id} for ${host} did not run within ${this.waiter.maxWaitSec} s`, true, "WaiterTimeout");
    }
    return this.describeInstance(id, signal);
  }

  /** The waiter failed: say in which state the instance is, and why AWS says it got there. */
  private async whyNotRunning(id: string, host: string, signal: AbortSignal, e: unknown): Promise<never> {
    const instance = await this.describeInstance(id, signal).catch(() => undefined);
    const state = instance?.State?.Name ?? "unknown";
    const reason = instance?.StateReason ? ` (${instance.StateReason.Code}: ${instance.StateReason.Message})` : "";
    const serverSide = instance?.StateReason?.Code?.startsWith("Server.") ?? false;
    throw new ProviderError(
      `instance ${id} for ${host} did not reach running: it is ${state}${reason}. What to do: ${
        serverSide ? "an AWS-side failure; the step is retried with a new instance" : "check the AMI, its volumes and the instance type (EC2 console: the instance's state reason)"
      }${instance ? "" : ` (${errorMessage(e).slice(0, 200)})`}`,
      serverSide,
      instance?.StateReason?.Code ?? "InstanceNotRunning",
    );
  }

  /** DescribeInstances of one id, retrying InvalidInstanceID.NotFound (EC2 is eventually consistent after a launch). */
  private async describeInstance(id: string, signal: AbortSignal): Promise<Instance> {
    const out = await this.call(
      `EC2 DescribeInstances of ${id}`,
      () => this.o.ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }), { abortSignal: signal }),
      signal,
      notFoundToo,
    );
    const instance = instancesOf(out).find((i) => i.InstanceId === id);
    if (!instance) throw new ProviderError(`EC2 does not describe ${id} (yet)`, true, "InvalidInstanceID.NotFound");
    return instance;
  }

  private async associateAddress(input: AssociateAddressCommandInput, host: string, signal: AbortSignal): Promise<void> {
    await this.guardAddress(input.AllocationId!, input.InstanceId!, host, signal);
    await this.call(
      `EC2 AssociateAddress ${input.AllocationId} to ${input.InstanceId} (${host})`,
      () => this.o.ec2.send(new AssociateAddressCommand(input), { abortSignal: signal }),
      signal,
      notFoundToo,
    );
  }

  /**
   * The Elastic IP moves (AllowReassociation) only from an instance of this topology's `host` (the failed machine),
   * or when it is attached to nothing: a config typo must never take a stranger's address.
   */
  private async guardAddress(allocationId: string, instanceId: string, host: string, signal: AbortSignal): Promise<void> {
    const out = await this.call(
      `EC2 DescribeAddresses ${allocationId} (${host})`,
      () => this.o.ec2.send(new DescribeAddressesCommand({ AllocationIds: [allocationId] }), { abortSignal: signal }),
      signal,
    );
    const holder = out?.Addresses?.[0]?.InstanceId;
    if (!holder || holder === instanceId) return;
    let instance: Instance | undefined;
    try {
      const d = await this.call(`EC2 DescribeInstances of ${holder}`, () => this.o.ec2.send(new DescribeInstancesCommand({ InstanceIds: [holder] }), { abortSignal: signal }), signal);
      instance = instancesOf(d)[0];
    } catch (e) {
      if (e instanceof ProviderError && e.code === "InvalidInstanceID.NotFound") return; // attached to nothing that exists
      throw e;
    }
    const why = instance ? this.whyNotOurs(instance, host) : null;
    if (why) {
      throw new ProviderError(
        `refusing to move Elastic IP ${allocationId} to ${instanceId} (${host}): it is attached to ${holder}, and ${why}. ` +
          `It moves only from a machine tagged ${TAG_TOPOLOGY}=${this.o.topology}, ${TAG_HOST}=${host}; fix provider.elasticIps or detach it by hand`,
        false,
        "NotManaged",
      );
    }
  }

  private async waitForPorts(m: Machine, kind: "redis" | "ssh", ports: readonly number[], signal: AbortSignal): Promise<void> {
    const every = this.o.probeEveryMs ?? 1000;
    let why = "";
    while (!signal.aborted) {
      const results = await Promise.all(
        ports.map(async (port) => {
          const r = await this.o.probe({ address: m.address, port, kind }, signal).catch((e: unknown) => errorMessage(e));
          return r === true ? null : `${port}: ${r}`;
        }),
      );
      const waiting = results.filter((r): r is string => r !== null);
      if (waiting.length === 0) return;
      why = waiting.join("; ");
      await sleep(every, undefined, { signal }).catch(() => {});
    }
    const what = kind === "redis" ? `its Redis ports ${ports.join(", ")} answer PING` : `it accepts SSH on port ${ports.join(", ")}`;
    const todo =
      kind === "redis"
        ? "check that the AMI starts redis-server on every port of the host (or list the commands that do in provider.redisPrepareCommands) and that its security groups let the monitoring host in"
        : "check that the AMI starts sshd and that its security groups let the monitoring host in";
    throw new ProviderError(
      `instance ${m.id} (${m.host} at ${m.address}) runs, but not until the step's deadline did ${what} (${why || "no answer"}). What to do: ${todo}; a retry of the step reuses this instance`,
      true,
      "NotAnswering",
    );
  }

  private call<T>(operation: string, fn: () => Promise<T>, signal: AbortSignal, retryIf = isThrottlingOrTransient): Promise<T> {
    return withRetry(operation, fn, {
      signal,
      policy: this.retry,
      retryIf,
      onRetry: (code, attempt) => this.log.warn({ operation, code, attempt }, `${operation}: ${code}, retrying`),
    });
  }

  private whyNotOurs(i: Instance, host: string): string | null {
    const tags = new Map((i.Tags ?? []).map((t) => [t.Key, t.Value]));
    const topology = tags.get(TAG_TOPOLOGY);
    if (topology !== this.o.topology) {
      return topology === undefined ? `it has no ${TAG_TOPOLOGY} tag` : `its tag ${TAG_TOPOLOGY} is '${topology}', not '${this.o.topology}'`;
    }
    const h = tags.get(TAG_HOST);
    if (h !== host) return h === undefined ? `it has no ${TAG_HOST} tag` : `its tag ${TAG_HOST} is '${h}', not '${host}'`;
    return null;
  }
}

const notFoundToo = (e: unknown) => isThrottlingOrTransient(e) || awsCode(e) === "InvalidInstanceID.NotFound";
/** Stop or start of an instance still pending or stopping: the same request succeeds once it got there. */
const incorrectStateToo = (e: unknown) => isThrottlingOrTransient(e) || awsCode(e) === "IncorrectInstanceState";

function instancesOf(out: DescribeInstancesCommandOutput | undefined): Instance[] {
  return (out?.Reservations ?? []).flatMap((r) => r.Instances ?? []);
}

function taggedRole(i: Instance): MachineRole | undefined {
  const r = i.Tags?.find((t) => t.Key === TAG_ROLE)?.Value;
  return r === "redis" || r === "haproxy" || r === "app" ? r : undefined;
}

/** A request's parameters for dry-run: the input as JSON, user data by size only (it may hold secrets). */
export function show(input: object): string {
  return JSON.stringify(input, (k, v) => (k === "UserData" && typeof v === "string" ? `<${Buffer.from(v, "base64").length} bytes>` : v));
}
