/**
 * Preflight: checks, without changing anything, what a recovery will need. AWS: credentials resolve; EC2 says
 * RunInstances and TerminateInstances would be allowed (DryRun); the AMI or launch template and the Elastic IPs
 * exist; every managed host has its tagged instance at its recorded address; the hosted zone and each DNS record
 * exist. SSH reaches every managed host with a trusted host key; on HAProxy and app hosts sudo grants the SSH user
 * every command of the rule `failoverd render sudoers` prints. Every HAProxy Runtime API answers.
 *
 * Each check has its own deadline and one outcome line; checks run concurrently and are reported in order.
 */
import { DescribeAddressesCommand, DescribeImagesCommand, DescribeLaunchTemplatesCommand, RunInstancesCommand, TerminateInstancesCommand } from "@aws-sdk/client-ec2";
import { GetHostedZoneCommand } from "@aws-sdk/client-route-53";
import { withDeadline } from "../admin/redis.ts";
import { errorMessage } from "../errors.ts";
import type { Inventory } from "../topology/inventory.ts";
import type { AwsProviderConfig } from "../topology/schema.ts";
import type { Topology } from "../topology/topology.ts";
import { awsCode, PERMISSION_CODES, toProviderError } from "./aws/errors.ts";
import { type AwsProviderSet, whyNoCredentials } from "./aws/index.ts";
import { hostCommands, privilegedCommands } from "./host-commands.ts";
import { shellQuote } from "./ssh.ts";
import type { HaproxyAdmin, Machine, RemoteShell } from "./types.ts";

export interface CheckResult {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

export interface PreflightDeps {
  readonly inventory: Inventory;
  readonly haproxy: HaproxyAdmin;
  /** The AWS provider set (provider.kind aws). */
  readonly aws?: AwsProviderSet;
  /** SSH: the aws set's shell unless given. */
  readonly shell?: RemoteShell;
  readonly timeoutMs?: number;
}

type Check = { readonly name: string; readonly run: (signal: AbortSignal) => Promise<string> };

/** A check passes when `run` resolves (with what it found) and fails when it throws (with why). */
export async function preflight(t: Topology, deps: PreflightDeps): Promise<CheckResult[]> {
  const checks: Check[] = [];
  const p = t.config.provider;
  if (p.kind === "aws" && deps.aws) checks.push(...awsChecks(t, p, deps.aws, deps.inventory));
  const shell = deps.shell ?? deps.aws?.shell;
  if (shell) {
    for (const h of [...t.redisHosts, ...t.haproxyHosts]) {
      const machine: Machine = { id: h.name, host: h.name, role: h.role, address: deps.inventory.addressOf(h.name) };
      checks.push({
        name: `ssh ${h.name}`,
        run: async (signal) => {
          const r = await shell.run(machine, "true", signal);
          if (r.code !== 0) throw new Error(`\`true\` exited ${r.code}`);
          return `reached ${machine.address} with a trusted host key`;
        },
      });
    }
  }
  if (shell && p.kind === "aws") {
    // The sudoers rule: `sudo -l <command>` says, without running it, whether the SSH user may run it.
    const commands = privilegedCommands(hostCommands(p.hostHaproxy, p.ssh.user)).map((w) => w.join(" "));
    const probe = commands.map((c) => `sudo -n -l ${c} > /dev/null 2>&1 || echo ${shellQuote(c)}`).join("; ");
    for (const h of [...t.haproxyHosts, ...t.appHosts]) {
      const machine: Machine = { id: h.name, host: h.name, role: h.role, address: deps.inventory.addressOf(h.name) };
      checks.push({
        name: `sudo ${h.name}`,
        run: async (signal) => {
          const r = await shell.run(machine, probe, signal);
          const refused = r.stdout.split("\n").filter((l) => commands.includes(l));
          if (r.code !== 0 || refused.length > 0) {
            throw new Error(
              `sudo refuses ${p.ssh.user} ${refused.length || "some"} of the ${commands.length} commands failoverd runs there${refused[0] ? ` (first: \`${refused[0]}\`)` : ""}: install the rule \`failoverd render sudoers\` prints as /etc/sudoers.d/failoverd`,
            );
          }
          return `${p.ssh.user} may run the ${commands.length} commands of the rule (and failoverd writes only ${p.hostHaproxy.config})`;
        },
      });
    }
  }
  for (const h of [...t.haproxyHosts, ...t.appHosts]) {
    const admin = { address: deps.inventory.addressOf(h.name), port: h.adminPort };
    checks.push({
      name: `runtime api ${h.name}`,
      run: async () => {
        const rows = await deps.haproxy.serversState(admin);
        return `${admin.address}:${admin.port} answers (${rows.length} servers)`;
      },
    });
  }
  const timeoutMs = deps.timeoutMs ?? 10_000;
  return Promise.all(checks.map((c) => runCheck(c, timeoutMs)));
}

async function runCheck(c: Check, timeoutMs: number): Promise<CheckResult> {
  try {
    // The signal asks the check to stop; the deadline (a moment later) stops waiting for one that does not listen.
    return { name: c.name, ok: true, detail: await withDeadline(c.run(AbortSignal.timeout(timeoutMs)), timeoutMs + 100, c.name) };
  } catch (e) {
    return { name: c.name, ok: false, detail: errorMessage(e).split("\n")[0] ?? "" };
  }
}

/** A DryRun request: EC2 answers DryRunOperation when the call would be allowed. */
async function dryRun(send: () => Promise<unknown>, operation: string): Promise<string> {
  try {
    await send();
  } catch (e) {
    if (awsCode(e) === "DryRunOperation") return "allowed (DryRun)";
    const code = awsCode(e) ?? "";
    if (PERMISSION_CODES.has(code)) throw toProviderError(e, operation);
    throw toProviderError(e, `${operation} (DryRun)`);
  }
  throw new Error(`${operation} with DryRun succeeded without DryRunOperation: unexpected`);
}

function awsChecks(t: Topology, p: AwsProviderConfig, aws: AwsProviderSet, inventory: Inventory): Check[] {
  const { ec2, route53 } = aws.clients;
  const credentials = whyNoCredentials(ec2, 5000);
  // Without credentials every AWS check would fail the same way: each says so in one short line instead.
  const withCredentials = (c: Check): Check => ({
    name: c.name,
    run: async (signal) => {
      if ((await credentials) !== null) throw new Error("not checked: no AWS credentials (see aws credentials)");
      return c.run(signal);
    },
  });
  const checks: Check[] = [];
  const credentialsCheck: Check = {
    name: "aws credentials",
    run: async () => {
      const why = await credentials;
      if (why) throw new Error(`${why}. failoverd uses the SDK's default chain (environment, shared config/profile, SSO, web identity, the instance profile): give the monitoring host an instance profile`);
      return `resolve (SDK default chain), region ${p.region}`;
    },
  };
  const managed = [...t.redisHosts, ...t.haproxyHosts];
  const probeHost = t.redisHosts[0] ?? t.haproxyHosts[0];
  if (probeHost) {
    checks.push({
      name: "ec2 RunInstances",
      run: (signal) => {
        const [type, subnet] = [p.instanceTypes[0]!, p.subnetIds[0]!];
        const req = { host: probeHost.name, role: probeHost.role, ...(probeHost.role === "redis" ? { ports: probeHost.ports } : {}) };
        const { ClientToken: _, ...input } = aws.compute.runInput(req, type, subnet, "");
        return dryRun(() => ec2.send(new RunInstancesCommand({ ...input, DryRun: true }), { abortSignal: signal }), "EC2 RunInstances");
      },
    });
  }
  // The instances the playbooks would terminate: tagged for their host, at the address failoverd has for it.
  const found = new Map<string, Promise<Machine | null>>();
  const findOnce = (host: string, signal: AbortSignal) => {
    let f = found.get(host);
    if (!f) {
      f = aws.compute.find(host, signal);
      found.set(host, f);
    }
    return f;
  };
  for (const h of managed) {
    checks.push({
      name: `instance ${h.name}`,
      run: async (signal) => {
        const m = await findOnce(h.name, signal);
        const address = inventory.addressOf(h.name);
        if (!m) throw new Error(`no pending or running instance is tagged failoverd:topology=${t.name}, failoverd:host=${h.name}: tag the machine at ${address} (and failoverd:role=${h.role}), or failoverd cannot terminate it`);
        if (m.address !== address) throw new Error(`the instance tagged for ${h.name} is ${m.id} at ${m.address}, but failoverd has ${h.name} at ${address}`);
        return `${m.id} at ${m.address}`;
      },
    });
  }
  checks.push({
    name: "ec2 TerminateInstances",
    run: async (signal) => {
      const ids = (await Promise.all(managed.map((h) => findOnce(h.name, signal).catch(() => null)))).filter((m): m is Machine => m !== null).map((m) => m.id);
      if (ids.length === 0) throw new Error(`no tagged instance of topology ${t.name} to ask about (see the instance checks)`);
      return dryRun(() => ec2.send(new TerminateInstancesCommand({ InstanceIds: ids, DryRun: true }), { abortSignal: signal }), "EC2 TerminateInstances");
    },
  });
  if (p.imageId) {
    const imageId = p.imageId;
    checks.push({
      name: "ec2 image",
      run: async (signal) => {
        const out = await ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] }), { abortSignal: signal }).catch((e: unknown) => {
          throw toProviderError(e, "EC2 DescribeImages");
        });
        const img = out.Images?.[0];
        if (!img) throw new Error(`provider.imageId ${imageId} is not visible in ${p.region}`);
        if (img.State !== "available") throw new Error(`${imageId} is ${img.State}, not available`);
        return `${imageId} (${img.Name ?? "unnamed"}) is available`;
      },
    });
  }
  if (p.launchTemplate) {
    const lt = p.launchTemplate;
    checks.push({
      name: "ec2 launch template",
      run: async (signal) => {
        const input = lt.id ? { LaunchTemplateIds: [lt.id] } : { LaunchTemplateNames: [lt.name!] };
        const out = await ec2.send(new DescribeLaunchTemplatesCommand(input), { abortSignal: signal }).catch((e: unknown) => {
          throw toProviderError(e, "EC2 DescribeLaunchTemplates");
        });
        const found = out.LaunchTemplates?.[0];
        if (!found) throw new Error(`provider.launchTemplate ${lt.id ?? lt.name} does not exist in ${p.region}`);
        return `${found.LaunchTemplateName} (${found.LaunchTemplateId}), default version ${found.DefaultVersionNumber}`;
      },
    });
  }
  const allocations = Object.values(p.elasticIps);
  if (allocations.length > 0) {
    checks.push({
      name: "ec2 elastic ips",
      run: async (signal) => {
        const out = await ec2.send(new DescribeAddressesCommand({ AllocationIds: allocations }), { abortSignal: signal }).catch((e: unknown) => {
          throw toProviderError(e, "EC2 DescribeAddresses");
        });
        return (out.Addresses ?? []).map((a) => `${a.AllocationId} = ${a.PublicIp}`).join(", ");
      },
    });
  }
  const named = t.haproxyHosts.filter((h) => h.dnsName !== undefined);
  if (p.hostedZoneId) {
    const zoneId = p.hostedZoneId;
    checks.push({
      name: "route53 hosted zone",
      run: async (signal) => {
        const out = await route53.send(new GetHostedZoneCommand({ Id: zoneId }), { abortSignal: signal }).catch((e: unknown) => {
          throw toProviderError(e, "Route 53 GetHostedZone");
        });
        return `${zoneId} is ${out.HostedZone?.Name ?? "?"}${out.HostedZone?.Config?.PrivateZone ? " (private)" : ""}`;
      },
    });
  }
  for (const h of named) {
    checks.push({
      name: `route53 record ${h.dnsName}`,
      run: async (signal) => {
        const address = await aws.dns.resolve(h.dnsName!, signal);
        if (address === null) throw new Error(`no A record ${h.dnsName} in ${p.hostedZoneId}: create it (it names ${h.name})`);
        return `A ${address}${address === inventory.addressOf(h.name) ? "" : ` (failoverd has ${h.name} at ${inventory.addressOf(h.name)})`}`;
      },
    });
  }
  return [credentialsCheck, ...checks.map(withCredentials)];
}
