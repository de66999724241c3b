/**
 * failed_redis, as in the runbook (shared/seeds/002_*.txt, shared/DESIGN.md). Works whether the failed host held
 * primaries, replicas or both, for every Redis server of the host.
 */
import { verifyConverged } from "../steps/converge.ts";
import { launchReplacement, terminateFailedMachine } from "../steps/machines.ts";
import { monitorHost, unmonitorHost } from "../steps/monitoring.ts";
import { fenceFailedServers, holdSurvivorSync, promoteSurvivor, registerReplacement, replicateFromSurvivor } from "../steps/redis.ts";
import type { Playbook } from "../types.ts";

export function failedRedis(host: string): Playbook {
  return {
    name: "failed_redis",
    host,
    steps: [
      unmonitorHost, //          1. Unmonitor the whole machine with the failed Redis.
      fenceFailedServers, //     2. Unregister its Redis servers from every HAProxy.
      holdSurvivorSync, //          and keep the survivor from resyncing from the failed server.
      promoteSurvivor, //        3. Make the remaining Redis the primary.        (point of no return)
      terminateFailedMachine, // 4. Terminate the failed machine.
      launchReplacement, //      5. Launch a new machine from the AMI.
      replicateFromSurvivor, //  6. Make each new Redis server a replica of the survivor; wait until in sync.
      registerReplacement, //    7. Register the new Redis servers with every HAProxy.
      verifyConverged, //        Check the pair has converged: one primary per port, its replica in sync, routed.
      monitorHost, //            8. Start monitoring the new machine.
    ],
  };
}
