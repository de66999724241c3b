/**
 * The IAM policy failoverd's own role needs on AWS, from the config: exactly the EC2 and Route 53 actions the provider
 * sends (compute.ts, dns.ts, preflight.ts), on the resources of the config, and every action that changes an existing
 * instance only on instances tagged `failoverd:topology` = the topology (the tag failoverd puts on every machine it
 * launches and looks for before it acts). `failoverd render iam-policy` prints it.
 *
 * The actions are listed once, in POLICY_ACTIONS, so a test can hold them against the commands the source sends.
 */
import type { AwsProviderConfig } from "../../topology/schema.ts";
import type { Topology } from "../../topology/topology.ts";
import { normalise } from "./dns.ts";
import { TAG_TOPOLOGY } from "./compute.ts";

export interface IamStatement {
  readonly Sid: string;
  readonly Effect: "Allow";
  readonly Action: string | readonly string[];
  readonly Resource: string | readonly string[];
  readonly Condition?: Record<string, Record<string, string | readonly string[]>>;
}

export interface IamPolicy {
  readonly Version: "2012-10-17";
  readonly Statement: readonly IamStatement[];
}

export interface IamPolicyOptions {
  /** The AWS account id of the ARNs; `*` when not given (any account: the role's own is the only one it acts in). */
  readonly account?: string | undefined;
  /** The role the instance profile carries (name or ARN), for iam:PassRole; by default the profile's own name. */
  readonly passRole?: string | undefined;
}

/**
 * Every action a statement may grant, by what uses it. `stop`, `start` and the attribute change are the failed
 * machine kept for the post-mortem and warm spares (recovery.failedMachine, provider.spares): they act only on
 * instances of the topology, like terminate.
 */
export const POLICY_ACTIONS = {
  launch: ["ec2:RunInstances"],
  tagAtLaunch: ["ec2:CreateTags"],
  read: ["ec2:DescribeInstances", "ec2:DescribeImages", "ec2:DescribeLaunchTemplates"],
  ownInstances: ["ec2:TerminateInstances", "ec2:StopInstances", "ec2:StartInstances", "ec2:ModifyInstanceAttribute", "ec2:CreateTags"],
  elasticIp: ["ec2:DescribeAddresses", "ec2:AssociateAddress"],
  dns: ["route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets", "route53:GetHostedZone", "route53:GetChange"],
  passRole: ["iam:PassRole"],
} as const;

export function renderIamPolicy(t: Topology, p: AwsProviderConfig, o: IamPolicyOptions = {}): IamPolicy {
  const account = o.account ?? "*";
  const ec2 = (resource: string) => `arn:aws:ec2:${p.region}:${account}:${resource}`;
  const ownTag = { StringEquals: { [`aws:ResourceTag/${TAG_TOPOLOGY}`]: t.name } };
  const statements: IamStatement[] = [
    {
      // The instance and its volumes must be tagged with the topology in the request itself (failoverd always does).
      Sid: "LaunchOnlyTaggedForThisTopology",
      Effect: "Allow",
      Action: "ec2:RunInstances",
      Resource: [ec2("instance/*"), ec2("volume/*")],
      Condition: { StringEquals: { [`aws:RequestTag/${TAG_TOPOLOGY}`]: t.name } },
    },
    {
      Sid: "LaunchFromTheConfiguredResources",
      Effect: "Allow",
      Action: "ec2:RunInstances",
      Resource: [
        p.imageId ? `arn:aws:ec2:${p.region}::image/${p.imageId}` : `arn:aws:ec2:${p.region}::image/*`,
        ...p.subnetIds.map((s) => ec2(`subnet/${s}`)),
        ...p.securityGroupIds.map((g) => ec2(`security-group/${g}`)),
        ec2("network-interface/*"),
        ...(p.keyName ? [ec2(`key-pair/${p.keyName}`)] : []),
        ...(p.launchTemplate ? [ec2(`launch-template/${p.launchTemplate.id ?? "*"}`)] : []),
      ],
    },
    {
      Sid: "TagOnlyAtLaunch",
      Effect: "Allow",
      Action: "ec2:CreateTags",
      Resource: [ec2("instance/*"), ec2("volume/*")],
      Condition: { StringEquals: { "ec2:CreateAction": "RunInstances" } },
    },
    {
      // Describe* actions support no resource-level permission.
      Sid: "Read",
      Effect: "Allow",
      Action: [...POLICY_ACTIONS.read, ...(Object.keys(p.elasticIps).length > 0 ? ["ec2:DescribeAddresses"] : [])],
      Resource: "*",
    },
    {
      // Terminate, stop, start, move to the quarantine security group, tag (a recovery id, a spare taken): only
      // machines of this topology. A config typo cannot reach a stranger's instance.
      Sid: "ChangeOnlyThisTopologysInstances",
      Effect: "Allow",
      Action: [...POLICY_ACTIONS.ownInstances],
      Resource: ec2("instance/*"),
      Condition: ownTag,
    },
    {
      // Changing an instance's groups is also authorised on the groups it is given.
      Sid: "QuarantineSecurityGroups",
      Effect: "Allow",
      Action: "ec2:ModifyInstanceAttribute",
      Resource: ec2("security-group/*"),
    },
  ];
  const eips = Object.values(p.elasticIps);
  if (eips.length > 0) {
    statements.push(
      { Sid: "FloatingIpsOfTheConfig", Effect: "Allow", Action: "ec2:AssociateAddress", Resource: eips.map((a) => ec2(`elastic-ip/${a}`)) },
      { Sid: "FloatingIpsOnlyToThisTopology", Effect: "Allow", Action: "ec2:AssociateAddress", Resource: ec2("instance/*"), Condition: ownTag },
    );
  }
  if (p.hostedZoneId) {
    const zone = `arn:aws:route53:::hostedzone/${p.hostedZoneId.replace(/^\/?hostedzone\//, "")}`;
    const names = t.haproxyHosts.flatMap((h) => (h.dnsName ? [normalise(h.dnsName)] : []));
    statements.push({ Sid: "DnsRead", Effect: "Allow", Action: ["route53:ListResourceRecordSets", "route53:GetHostedZone"], Resource: zone });
    if (names.length > 0) {
      statements.push({
        // Only UPSERTs of the A records of the config's dnsName entries.
        Sid: "DnsOnlyTheseRecords",
        Effect: "Allow",
        Action: "route53:ChangeResourceRecordSets",
        Resource: zone,
        Condition: {
          "ForAllValues:StringEquals": {
            "route53:ChangeResourceRecordSetsNormalizedRecordNames": [...new Set(names)].sort(),
            "route53:ChangeResourceRecordSetsRecordTypes": ["A"],
            "route53:ChangeResourceRecordSetsActions": ["UPSERT"],
          },
        },
      });
    }
    statements.push({ Sid: "DnsWait", Effect: "Allow", Action: "route53:GetChange", Resource: "arn:aws:route53:::change/*" });
  }
  if (p.instanceProfile) {
    statements.push({
      Sid: "PassTheMachinesRole",
      Effect: "Allow",
      Action: "iam:PassRole",
      Resource: roleArn(o.passRole ?? profileName(p.instanceProfile), account),
      Condition: { StringEquals: { "iam:PassedToService": "ec2.amazonaws.com" } },
    });
  }
  return { Version: "2012-10-17", Statement: statements };
}

/** The name of an instance profile given as a name or an ARN (`arn:aws:iam::1234:instance-profile/path/name`). */
export function profileName(profile: string): string {
  return profile.startsWith("arn:") ? (profile.split("/").pop() ?? profile) : profile;
}

function roleArn(role: string, account: string): string {
  return role.startsWith("arn:") ? role : `arn:aws:iam::${account}:role/${role}`;
}
