/**
 * An in-memory EC2 + Route 53 behind aws-sdk-client-mock: the SDK clients are real, only `send` answers from this
 * state, with the shapes and error codes AWS uses. Nothing here reaches the network.
 *
 * EC2: RunInstances creates a `pending` instance (private address 10.99.x.y, never contacted: the port probe is a
 * fake too); the first DescribeInstances after it sees it `running` (unless `stayPending`); TerminateInstances makes
 * it `shutting-down`; an unknown id is InvalidInstanceID.NotFound. Route 53: a change is PENDING for
 * `pendingPolls` GetChange calls, then INSYNC; ListResourceRecordSets answers in Route 53's order from
 * StartRecordName, with fully qualified names.
 */
import {
  AssociateAddressCommand,
  CreateTagsCommand,
  DescribeAddressesCommand,
  DescribeInstancesCommand,
  type DescribeInstancesCommandInput,
  EC2Client,
  EC2ServiceException,
  type Instance,
  ModifyInstanceAttributeCommand,
  RunInstancesCommand,
  type RunInstancesCommandInput,
  StartInstancesCommand,
  StopInstancesCommand,
  TerminateInstancesCommand,
} from "@aws-sdk/client-ec2";
import {
  ChangeResourceRecordSetsCommand,
  type ChangeResourceRecordSetsCommandInput,
  GetChangeCommand,
  ListResourceRecordSetsCommand,
  type ListResourceRecordSetsCommandInput,
  Route53Client,
  Route53ServiceException,
} from "@aws-sdk/client-route-53";
import { mockClient } from "aws-sdk-client-mock";

/** An SDK service error as AWS sends it: `name` is the code. */
export function ec2Error(code: string, message = code, status = 400): EC2ServiceException {
  return new EC2ServiceException({ name: code, message, $fault: status >= 500 ? "server" : "client", $metadata: { httpStatusCode: status } });
}

export function route53Error(code: string, message = code, status = 400): Route53ServiceException {
  return new Route53ServiceException({ name: code, message, $fault: status >= 500 ? "server" : "client", $metadata: { httpStatusCode: status } });
}

/** Clients with static (fake) credentials: the SDK never looks for real ones. */
export function fakeClients(): { ec2: EC2Client; route53: Route53Client } {
  process.env["AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED"] ??= "true";
  const common = { region: "eu-west-1", maxAttempts: 1, credentials: { accessKeyId: "AKIDFAKEFAKEFAKE", secretAccessKey: "fake-secret-never-printed" } };
  return { ec2: new EC2Client(common), route53: new Route53Client(common) };
}

interface FakeInstance {
  InstanceId: string;
  State: { Name: string };
  Tags: { Key: string; Value: string }[];
  PrivateIpAddress: string;
  LaunchTime: Date;
  InstanceType?: string;
  SubnetId?: string;
  SecurityGroups?: { GroupId: string }[];
}

export class FakeAws {
  readonly clients = fakeClients();
  readonly ec2 = mockClient(this.clients.ec2);
  readonly route53 = mockClient(this.clients.route53);
  readonly instances = new Map<string, FakeInstance>();
  /** Elastic IP allocation -> the instance it is attached to. */
  readonly addresses = new Map<string, string>();
  /** zone -> fqdn (with trailing dot) -> address */
  readonly records = new Map<string, Map<string, string>>();
  readonly zones = new Set<string>(["Z0000000000TEST"]);
  pendingPolls = 1;
  stayPending = false;
  /** A stopping instance stays stopping (a slow OS shutdown). */
  stayStopping = false;
  private readonly changes = new Map<string, number>();
  private seq = 0;
  private readonly tokens = new Map<string, string>();

  constructor() {
    this.ec2.on(RunInstancesCommand).callsFake(async (input: RunInstancesCommandInput) => this.runInstances(input));
    this.ec2.on(DescribeInstancesCommand).callsFake(async (input: DescribeInstancesCommandInput) => this.describeInstances(input));
    this.ec2.on(TerminateInstancesCommand).callsFake(async (input: { InstanceIds?: string[] }) => this.terminateInstances(input.InstanceIds ?? []));
    this.ec2.on(AssociateAddressCommand).callsFake(async (input: { AllocationId?: string; InstanceId?: string }) => {
      this.addresses.set(input.AllocationId ?? "", input.InstanceId ?? "");
      return { AssociationId: "eipassoc-0123456789abcdef0" };
    });
    this.ec2.on(DescribeAddressesCommand).callsFake(async (input: { AllocationIds?: string[] }) => ({
      Addresses: (input.AllocationIds ?? []).map((a) => ({ AllocationId: a, ...(this.addresses.get(a) ? { InstanceId: this.addresses.get(a) } : {}) })),
    }));
    this.ec2.on(StopInstancesCommand).callsFake(async (input: { InstanceIds?: string[] }) => this.transition(input.InstanceIds ?? [], "stop"));
    this.ec2.on(StartInstancesCommand).callsFake(async (input: { InstanceIds?: string[] }) => this.transition(input.InstanceIds ?? [], "start"));
    this.ec2.on(CreateTagsCommand).callsFake(async (input: { Resources?: string[]; Tags?: { Key?: string; Value?: string }[] }) => {
      for (const id of input.Resources ?? []) {
        const i = this.instances.get(id);
        if (!i) throw ec2Error("InvalidInstanceID.NotFound", `The instance ID '${id}' does not exist`);
        for (const t of input.Tags ?? []) {
          const at = i.Tags.findIndex((x) => x.Key === t.Key);
          if (at >= 0) i.Tags.splice(at, 1);
          i.Tags.push({ Key: t.Key ?? "", Value: t.Value ?? "" });
        }
      }
      return {};
    });
    this.ec2.on(ModifyInstanceAttributeCommand).callsFake(async (input: { InstanceId?: string; Groups?: string[] }) => {
      const i = this.instances.get(input.InstanceId ?? "");
      if (!i) throw ec2Error("InvalidInstanceID.NotFound", `The instance ID '${input.InstanceId}' does not exist`);
      i.SecurityGroups = (input.Groups ?? []).map((GroupId) => ({ GroupId }));
      return {};
    });
    this.route53.on(ChangeResourceRecordSetsCommand).callsFake(async (input: ChangeResourceRecordSetsCommandInput) => this.change(input));
    this.route53.on(GetChangeCommand).callsFake(async (input: { Id?: string }) => this.getChange(input.Id ?? ""));
    this.route53.on(ListResourceRecordSetsCommand).callsFake(async (input: ListResourceRecordSetsCommandInput) => this.list(input));
  }

  /** An instance that already runs (a machine of the declared topology, or a stranger). */
  addInstance(tags: Record<string, string>, state = "running", address = `10.99.0.${++this.seq}`): string {
    const id = `i-${(0xa000000 + ++this.seq).toString(16).padStart(17, "0")}`;
    this.instances.set(id, {
      InstanceId: id,
      State: { Name: state },
      Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })),
      PrivateIpAddress: address,
      LaunchTime: new Date(Date.now() - 3_600_000 + this.seq),
    });
    return id;
  }

  restore(): void {
    this.ec2.restore();
    this.route53.restore();
  }

  private runInstances(input: RunInstancesCommandInput) {
    // Idempotency: the same ClientToken returns the same instance.
    const known = input.ClientToken ? this.tokens.get(input.ClientToken) : undefined;
    if (known) return { Instances: [{ ...this.instances.get(known)! }] };
    this.seq += 1;
    const id = `i-${(0xb000000 + this.seq).toString(16).padStart(17, "0")}`;
    const tags = (input.TagSpecifications ?? []).find((t) => t.ResourceType === "instance")?.Tags ?? [];
    const inst: FakeInstance = {
      InstanceId: id,
      State: { Name: "pending" },
      Tags: tags.map((t) => ({ Key: t.Key ?? "", Value: t.Value ?? "" })),
      PrivateIpAddress: `10.99.${1 + Math.floor(this.seq / 250)}.${1 + (this.seq % 250)}`,
      LaunchTime: new Date(Date.now() + this.seq),
      ...(input.InstanceType ? { InstanceType: input.InstanceType } : {}),
      ...(input.SubnetId ? { SubnetId: input.SubnetId } : {}),
    };
    this.instances.set(id, inst);
    if (input.ClientToken) this.tokens.set(input.ClientToken, id);
    return { Instances: [{ ...inst }] };
  }

  private describeInstances(input: DescribeInstancesCommandInput) {
    let list: FakeInstance[];
    if (input.InstanceIds?.length) {
      const missing = input.InstanceIds.find((id) => !this.instances.has(id));
      if (missing) throw ec2Error("InvalidInstanceID.NotFound", `The instance ID '${missing}' does not exist`);
      list = input.InstanceIds.map((id) => this.instances.get(id)!);
    } else list = [...this.instances.values()];
    for (const f of input.Filters ?? []) {
      const values = f.Values ?? [];
      if (f.Name === "instance-state-name") list = list.filter((i) => values.includes(this.advance(i).State.Name));
      else if (f.Name === "tag-key") list = list.filter((i) => i.Tags.some((t) => values.includes(t.Key)));
      else if (f.Name?.startsWith("tag:")) {
        const key = f.Name.slice(4);
        list = list.filter((i) => i.Tags.some((t) => t.Key === key && values.includes(t.Value)));
      }
    }
    const instances = list.map((i) => ({ ...this.advance(i), State: { Name: this.advance(i).State.Name } })) as Instance[];
    return { Reservations: instances.length > 0 ? [{ Instances: instances }] : [] };
  }

  private advance(i: FakeInstance): FakeInstance {
    if (i.State.Name === "pending" && !this.stayPending) i.State.Name = "running";
    if (i.State.Name === "stopping" && !this.stayStopping) i.State.Name = "stopped";
    return i;
  }

  /**
   * StopInstances / StartInstances as EC2 answers them: stop goes running -> stopping (-> stopped at the next
   * describe), start goes stopped -> pending (-> running); a stop of a pending instance, or a start of a stopping
   * one, is IncorrectInstanceState; a terminated one too.
   */
  private transition(ids: string[], action: "stop" | "start") {
    const missing = ids.find((id) => !this.instances.has(id));
    if (missing) throw ec2Error("InvalidInstanceID.NotFound", `The instance ID '${missing}' does not exist`);
    const changes = ids.map((id) => {
      const i = this.instances.get(id)!;
      const previous = i.State.Name;
      const ok = action === "stop" ? ["running", "stopping", "stopped"] : ["stopped", "pending", "running"];
      if (!ok.includes(previous)) {
        throw ec2Error("IncorrectInstanceState", `The instance '${id}' is not in a state from which it can be ${action === "stop" ? "stopped" : "started"}.`);
      }
      if (action === "stop" && previous === "running") i.State.Name = "stopping";
      if (action === "start" && previous === "stopped") i.State.Name = "pending";
      return { InstanceId: id, PreviousState: { Name: previous }, CurrentState: { Name: i.State.Name } };
    });
    return action === "stop" ? { StoppingInstances: changes } : { StartingInstances: changes };
  }

  private terminateInstances(ids: string[]) {
    const missing = ids.find((id) => !this.instances.has(id));
    if (missing) throw ec2Error("InvalidInstanceID.NotFound", `The instance ID '${missing}' does not exist`);
    return {
      TerminatingInstances: ids.map((id) => {
        const i = this.instances.get(id)!;
        const previous = i.State.Name;
        i.State.Name = previous === "terminated" ? "terminated" : "shutting-down";
        return { InstanceId: id, PreviousState: { Name: previous }, CurrentState: { Name: i.State.Name } };
      }),
    };
  }

  private change(input: ChangeResourceRecordSetsCommandInput) {
    const zone = input.HostedZoneId ?? "";
    if (!this.zones.has(zone)) throw route53Error("NoSuchHostedZone", `No hosted zone found with ID: ${zone}`, 404);
    const records = this.records.get(zone) ?? new Map<string, string>();
    for (const c of input.ChangeBatch?.Changes ?? []) {
      const name = fqdn(c.ResourceRecordSet?.Name ?? "");
      if (c.Action === "UPSERT" || c.Action === "CREATE") records.set(name, c.ResourceRecordSet?.ResourceRecords?.[0]?.Value ?? "");
      else records.delete(name);
    }
    this.records.set(zone, records);
    const id = `/change/C${String(++this.seq).padStart(12, "0")}`;
    this.changes.set(id, this.pendingPolls);
    return { ChangeInfo: { Id: id, Status: "PENDING", SubmittedAt: new Date() } };
  }

  private getChange(id: string) {
    const left = this.changes.get(id);
    if (left === undefined) throw route53Error("NoSuchChange", `A change with the specified change ID does not exist: ${id}`, 404);
    this.changes.set(id, left - 1);
    return { ChangeInfo: { Id: id, Status: left > 0 ? "PENDING" : "INSYNC", SubmittedAt: new Date() } };
  }

  private list(input: ListResourceRecordSetsCommandInput) {
    const zone = input.HostedZoneId ?? "";
    if (!this.zones.has(zone)) throw route53Error("NoSuchHostedZone", `No hosted zone found with ID: ${zone}`, 404);
    const start = fqdn(input.StartRecordName ?? "");
    const names = [...(this.records.get(zone) ?? new Map<string, string>()).entries()].filter(([n]) => n >= start).sort(([a], [b]) => a.localeCompare(b));
    const max = input.MaxItems ?? 100;
    return {
      ResourceRecordSets: names.slice(0, max).map(([Name, Value]) => ({ Name, Type: "A", TTL: 30, ResourceRecords: [{ Value }] })),
      IsTruncated: names.length > max,
      MaxItems: max,
    };
  }
}

function fqdn(name: string): string {
  return name.endsWith(".") ? name.toLowerCase() : `${name.toLowerCase()}.`;
}

export interface AwsTopologyOptions {
  /** The second octet of the (never contacted) loopback addresses. */
  readonly net: number;
  /** YAML lines appended under provider: (two-space indented). */
  readonly provider?: string;
  readonly name?: string;
}

/**
 * The seed topology with provider.kind aws, on loopback addresses (`allowLoopback`: most tests never connect to them;
 * those that do reach only this host).
 */
export function awsTopologyYaml(o: AwsTopologyOptions): string {
  const n = o.net;
  const name = o.name ?? `t${n}`;
  return `topology: ${name}
hosts:
  redis1: { role: redis, address: 127.${n}.1.1, ports: [9001, 9002] }
  redis2: { role: redis, address: 127.${n}.1.2, ports: [9001, 9002] }
  haproxy1: { role: haproxy, address: 127.${n}.2.1, frontends: { 8001: 9001, 8002: 9002 }, adminPort: 9999, dnsName: haproxy1.${name}.internal }
  haproxy2: { role: haproxy, address: 127.${n}.2.2, frontends: { 8001: 9001, 8002: 9002 }, adminPort: 9999, dnsName: haproxy2.${name}.internal }
  app: { role: app, address: 127.${n}.3.1, frontends: { 7001: 8001, 7002: 8002 }, upstreams: [haproxy1, haproxy2], adminPort: 9999 }
pairs:
  - [redis1, redis2]
checks: { intervalMs: 200, timeoutMs: 150 }
provider:
  kind: aws
  allowLoopback: true
  region: eu-west-1
  instanceTypes: [m6i.large, m5.large]
  subnetIds: [subnet-0aaaaaaaaaaaaaaa1, subnet-0bbbbbbbbbbbbbbb2]
  securityGroupIds: [sg-0123456789abcdef0]
  hostedZoneId: Z0000000000TEST
  dnsTtl: 30
  ssh: { user: admin, privateKey: { file: /nonexistent/failoverd-test-key }, hostKeyFingerprints: ["SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"], connectTimeoutMs: 500 }
${o.provider ?? "  imageId: ami-0123456789abcdef0"}
stateDir: /nonexistent/failoverd-state-${name}
`;
}
