/**
 * `failoverd render sudoers|iam-policy|haproxy`: the least privileges failoverd needs, generated from the config
 * rather than copied from a document, so that they grant exactly what this version runs; and failoverd's own HAProxy
 * file for a host, to install it there the first time.
 */
import { join } from "node:path";
import type { Command } from "commander";
import { renderForHost } from "../admin/haproxy-config.ts";
import { UsageError } from "../errors.ts";
import { renderSudoers } from "../providers/host-commands.ts";
import { Inventory } from "../topology/inventory.ts";
import type { AwsProviderConfig } from "../topology/schema.ts";
import type { Topology } from "../topology/topology.ts";
import { type ConfigOpts, loadFrom, out, withConfig } from "./common.ts";

function awsProvider(t: Topology, what: string): AwsProviderConfig {
  const p = t.config.provider;
  if (p.kind !== "aws") {
    throw new UsageError(`${what} is for machines failoverd manages on AWS; ${t.source} has provider.kind ${p.kind} (the sandbox needs no privileges)`);
  }
  return p;
}

export function registerRender(program: Command): void {
  const render = program
    .command("render")
    .description("print what a deployment installs: the hosts' sudoers rule, failoverd's IAM policy, failoverd's HAProxy file of a host");
  withConfig(
    render
      .command("sudoers")
      .description("the sudoers drop-in for provider.ssh.user on HAProxy and app hosts: exactly the commands failoverd runs there"),
  ).action((opts: ConfigOpts) => {
    const t = loadFrom(opts);
    const p = awsProvider(t, "render sudoers");
    process.stdout.write(renderSudoers({ topology: t.name, user: p.ssh.user, host: p.hostHaproxy }));
  });
  withConfig(
    render
      .command("iam-policy")
      .description("the IAM policy of failoverd's role: the EC2 and Route 53 actions it sends, on this topology's instances only")
      .option("--account <id>", "the AWS account id in the ARNs (default: *)")
      .option("--pass-role <name|arn>", "the role of provider.instanceProfile, for iam:PassRole (default: the profile's name)"),
  ).action(async (opts: ConfigOpts & { account?: string; passRole?: string }) => {
    if (opts.account !== undefined && !/^\d{12}$/.test(opts.account)) throw new UsageError(`--account ${JSON.stringify(opts.account)} is not an AWS account id (12 digits)`);
    const t = loadFrom(opts);
    const p = awsProvider(t, "render iam-policy");
    const { profileName, renderIamPolicy } = await import("../providers/aws/iam-policy.ts");
    if (p.instanceProfile && opts.passRole === undefined) {
      process.stderr.write(`failoverd: iam:PassRole names the role ${profileName(p.instanceProfile)} (as the instance profile; --pass-role if its role is named otherwise)\n`);
    }
    out(JSON.stringify(renderIamPolicy(t, p, { account: opts.account, passRole: opts.passRole }), null, 2));
  });
  withConfig(
    render
      .command("haproxy")
      .description("failoverd's own HAProxy file for an HAProxy or app host, where the hosts live now (loaded after the host's own config)")
      .requiredOption("--host <name>", "the HAProxy or app host"),
  ).action((opts: ConfigOpts & { host: string }) => {
    const t = loadFrom(opts);
    const h = t.hosts.get(opts.host);
    if (!h || h.role === "redis") throw new UsageError(`--host ${opts.host}: not an HAProxy or app host of ${t.source} (${[...t.haproxyHosts, ...t.appHosts].map((x) => x.name).join(", ")})`);
    process.stdout.write(renderForHost(t, Inventory.load(t, join(t.config.stateDir, "inventory.json")), opts.host));
  });
}
