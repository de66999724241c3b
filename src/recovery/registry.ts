/**
 * Diagnosis -> playbook, or alert only. A Record over every DiagnosisName, so adding a diagnosis makes the compiler
 * ask for a decision here.
 */
import type { DiagnosisName } from "../checks/detector.ts";
import { failedHaproxy } from "./playbooks/failed-haproxy.ts";
import { failedRedis } from "./playbooks/failed-redis.ts";
import { switchover } from "./playbooks/switchover.ts";
import type { Playbook, PlaybookName } from "./types.ts";

export const PLAYBOOK_FOR: Readonly<Record<DiagnosisName, PlaybookName | null>> = {
  NoProblem: null,
  DeadPrimary: "failed_redis",
  PrimaryRestartedEmpty: "failed_redis",
  PrimaryRestarted: null,
  ReplicaLinkDown: null,
  ReplicaLagging: null,
  UnreachablePrimary: null,
  DeadReplica: "failed_redis",
  UnreachableReplica: null,
  PairDown: null,
  TwoPrimaries: null,
  HaproxyDown: "failed_haproxy",
  UnreachableHaproxy: null,
  AppProxyDown: null,
};

export function playbookFor(name: PlaybookName, host: string): Playbook {
  if (name === "switchover") return switchover(host);
  return name === "failed_redis" ? failedRedis(host) : failedHaproxy(host);
}
