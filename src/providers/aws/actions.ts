/**
 * Every EC2 action the AWS provider calls, by what it is for, with the tag condition that scopes it. `render
 * iam-policy` and the README's policy are built from these; a new call in compute.ts gets its line here.
 */
export interface Ec2ActionUse {
  readonly action: string;
  readonly why: string;
  /** Condition keys that scope the action (the topology's tag), when the action supports them. */
  readonly scopedBy?: "topology-tag" | "create-action-RunInstances";
}

/** Launching a replacement (or a spare) and moving the Elastic IP to it. */
export const EC2_LAUNCH_ACTIONS: readonly Ec2ActionUse[] = [
  { action: "ec2:RunInstances", why: "launch a replacement or a warm spare from the AMI" },
  { action: "ec2:CreateTags", why: "tag it at launch (failoverd:topology, :host or :pool, :role)", scopedBy: "create-action-RunInstances" },
  { action: "ec2:DescribeInstances", why: "find machines by their tags, wait until one runs" },
  { action: "ec2:DescribeAddresses", why: "check who holds an Elastic IP before moving it" },
  { action: "ec2:AssociateAddress", why: "move an HAProxy host's Elastic IP to its replacement" },
];

/** Terminating the failed machine (recovery.failedMachine: terminate) and releasing kept ones (`cleanup`). */
export const EC2_TERMINATE_ACTIONS: readonly Ec2ActionUse[] = [
  { action: "ec2:TerminateInstances", why: "terminate a failed machine, or a kept one older than cleanup's --older-than", scopedBy: "topology-tag" },
];

/** Keeping the failed machine for the post-mortem (recovery.failedMachine: stop | quarantine). */
export const EC2_KEEP_ACTIONS: readonly Ec2ActionUse[] = [
  { action: "ec2:CreateTags", why: "tag a kept machine failoverd:kept, :recovery-id, :kept-at", scopedBy: "topology-tag" },
  { action: "ec2:StopInstances", why: "stop the failed machine (its volumes stay)", scopedBy: "topology-tag" },
  { action: "ec2:ModifyInstanceAttribute", why: "quarantine: replace its security groups by provider.quarantineSecurityGroupId", scopedBy: "topology-tag" },
];

/** Warm spares (provider.spares): keeping the pool, and claiming a spare for a host. */
export const EC2_SPARE_ACTIONS: readonly Ec2ActionUse[] = [
  { action: "ec2:CreateTags", why: "claim a spare: tag it for its new host (failoverd:host, failoverd:pool=claimed)", scopedBy: "topology-tag" },
  { action: "ec2:StartInstances", why: "start a stopped spare when a launch takes it", scopedBy: "topology-tag" },
  { action: "ec2:StopInstances", why: "stop a new spare once it is prepared (spares kept stopped)", scopedBy: "topology-tag" },
];
