/**
 * switchover: a planned move of a pair's primaries to the other host, asked for by an operator (`failoverd
 * switchover`) or a drill. The precautions are those of shared/notes/haproxy-redis.md; `host` is the target.
 */
import { checkSwitchover, failOver, moveHaproxies } from "../steps/switchover.ts";
import type { Playbook } from "../types.ts";

export function switchover(host: string): Playbook {
  return {
    name: "switchover",
    host,
    steps: [
      checkSwitchover, // 1. PING the target; it must be an in-sync replica of its twin on every port.
      failOver, //        2. FAILOVER TO the target with a TIMEOUT; watch ROLE of both; FAILOVER ABORT if needed. (point of no return)
      moveHaproxies, //   3. Move every HAProxy in step to the new primary.
    ],
  };
}
