/**
 * The AWS provider set: EC2 compute, Route 53 DNS, HAProxy configuration over SSH. Credentials come from the SDK's
 * default chain (environment, shared config, SSO, web identity, the instance profile); the region from the config.
 * Clients make one attempt per call (failoverd's retry layer does the rest) and every request has a deadline.
 */
import { EC2Client } from "@aws-sdk/client-ec2";
import { Route53Client } from "@aws-sdk/client-route-53";
import { RedisAdminClient, type RedisAuth, withDeadline } from "../../admin/redis.ts";
import { canConnect } from "../../admin/tcp.ts";
import { errorMessage, ProbeError } from "../../errors.ts";
import type { Logger } from "../../log.ts";
import { resolveSecret } from "../../topology/secrets.ts";
import type { AwsProviderConfig } from "../../topology/schema.ts";
import { getHost, type Topology } from "../../topology/topology.ts";
import { preparationCommands, runPreparation, SshProxies, SshShell } from "../ssh.ts";
import { Ec2Compute, type PortProbe, type WaiterTiming } from "./compute.ts";
import { Route53Dns } from "./dns.ts";
import type { RetryPolicy } from "./retry.ts";

export interface AwsClients {
  readonly ec2: EC2Client;
  readonly route53: Route53Client;
}

/** Everything a test (or preflight) may put in place of the real thing. */
export interface AwsProviderDeps {
  readonly clients?: AwsClients;
  readonly probe?: PortProbe;
  readonly shell?: SshShell;
  readonly retry?: RetryPolicy;
  readonly waiter?: WaiterTiming;
  readonly dnsWaiter?: WaiterTiming;
  readonly probeEveryMs?: number;
  readonly log?: Logger;
}

export interface AwsProviderSet {
  readonly compute: Ec2Compute;
  readonly dns: Route53Dns;
  readonly proxies: SshProxies;
  readonly shell: SshShell;
  readonly clients: AwsClients;
  close(): void;
}

export function awsConfigOf(t: Topology): AwsProviderConfig {
  const p = t.config.provider;
  if (p.kind !== "aws") throw new Error(`${t.source}: provider.kind is ${p.kind}, not aws`);
  return p;
}

/** SDK clients for the config's region: one attempt per call, a connection and response deadline per request. */
export function createAwsClients(p: AwsProviderConfig): AwsClients {
  // The SDK warns on every start that its releases after January 2027 need Node 22; failoverd runs on Node 20 with
  // the SDK range locked in package-lock.json (README, dependencies). Set the variable to "false" to see it.
  process.env["AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED"] ??= "true";
  const common = {
    region: p.region,
    maxAttempts: 1,
    requestHandler: { connectionTimeout: p.apiTimeoutMs, requestTimeout: p.apiTimeoutMs },
  };
  return { ec2: new EC2Client(common), route53: new Route53Client(common) };
}

export function createSshShell(t: Topology): SshShell {
  const s = awsConfigOf(t).ssh;
  return new SshShell({
    user: s.user,
    port: s.port,
    privateKey: () => resolveSecret(s.privateKey, "provider.ssh.privateKey", t.source) ?? "",
    passphrase: () => resolveSecret(s.passphrase, "provider.ssh.passphrase", t.source),
    knownHostsFile: s.knownHostsFile,
    fingerprints: s.hostKeyFingerprints,
    connectTimeoutMs: s.connectTimeoutMs,
    commandTimeoutMs: s.commandTimeoutMs,
  });
}

/** Redis ports answer PING (with the topology's credentials); SSH accepts a TCP connection. */
export function networkProbe(auth: RedisAuth, timeoutMs: number): PortProbe {
  return async ({ address, port, kind }) => {
    if (kind === "ssh") return (await canConnect(address, port, timeoutMs)) ? true : "no connection";
    const client = new RedisAdminClient({ address, port }, timeoutMs, auth);
    try {
      const reply = await client.call("PING");
      return reply === "PONG" ? true : `PING answered ${String(reply)}`;
    } catch (e) {
      return errorMessage(e);
    } finally {
      client.close();
    }
  };
}

export function createAwsProviders(t: Topology, auth: RedisAuth, deps: AwsProviderDeps = {}): AwsProviderSet {
  const p = awsConfigOf(t);
  const clients = deps.clients ?? createAwsClients(p);
  const shell = deps.shell ?? createSshShell(t);
  const prepare = p.redisPrepareCommands;
  const portsOf = (host: string) => {
    const h = getHost(t, host);
    return h.role === "redis" ? h.ports : [];
  };
  const compute = new Ec2Compute({
    topology: t.name,
    roleOf: (host) => getHost(t, host).role,
    config: p,
    ec2: clients.ec2,
    probe: deps.probe ?? networkProbe(auth, Math.max(t.config.checks.timeoutMs, 1000)),
    sshPort: p.ssh.port,
    ...(prepare.length > 0
      ? {
          prepareRedis: (m, signal) => runPreparation(shell, m, prepare, portsOf(m.host), signal),
          describePrepare: (host) => [
            `SSH ${shell.target({ id: "", host, role: "redis", address: "<new address>" })}: run in order`,
            ...preparationCommands({ host, address: "<new address>" }, prepare, portsOf(host)).map((c) => `  ${c}`),
          ],
        }
      : {}),
    ...(deps.retry ? { retry: deps.retry } : {}),
    ...(deps.waiter ? { waiter: deps.waiter } : {}),
    ...(deps.probeEveryMs !== undefined ? { probeEveryMs: deps.probeEveryMs } : {}),
    ...(deps.log ? { log: deps.log } : {}),
  });
  const dns = new Route53Dns({
    topology: t.name,
    route53: clients.route53,
    hostedZoneId: p.hostedZoneId,
    ttl: p.dnsTtl,
    ...(deps.retry ? { retry: deps.retry } : {}),
    ...(deps.dnsWaiter ? { waiter: deps.dnsWaiter } : {}),
    ...(deps.log ? { log: deps.log } : {}),
  });
  return {
    compute,
    dns,
    proxies: new SshProxies(shell, p.hostHaproxy, p.ssh.user),
    shell,
    clients,
    close: () => {
      clients.ec2.destroy();
      clients.route53.destroy();
    },
  };
}

/**
 * Whether the SDK's default chain yields credentials, within `timeoutMs`: null when it does, else why not. Never
 * returns or logs the credentials themselves.
 */
export async function whyNoCredentials(client: EC2Client, timeoutMs: number): Promise<string | null> {
  try {
    const c = await withDeadline(client.config.credentials(), timeoutMs, "the SDK's default chain");
    return c.accessKeyId ? null : "the SDK's default chain returned empty credentials";
  } catch (e) {
    if (e instanceof ProbeError) return `the SDK's default chain found no credentials within ${timeoutMs} ms`;
    return `no AWS credentials (${(e as Error).name ?? "error"}: ${errorMessage(e).split("\n")[0]})`;
  }
}

/** whyNoCredentials for a topology's region, on a client of its own. */
export async function awsCredentialsProblem(t: Topology, timeoutMs = 3000): Promise<string | null> {
  const { ec2, route53 } = createAwsClients(awsConfigOf(t));
  try {
    return await whyNoCredentials(ec2, timeoutMs);
  } finally {
    ec2.destroy();
    route53.destroy();
  }
}
