/** failed_haproxy, as in the runbook (shared/seeds/002_*.txt, shared/DESIGN.md), with step 5 automated. */
import { confirmStillFailed, failedTargets } from "../steps/confirm.ts";
import { verifyConverged } from "../steps/converge.ts";
import { configureLikeSurvivor, pointDnsAtReplacement } from "../steps/haproxy.ts";
import { launchReplacement, terminateFailedMachine } from "../steps/machines.ts";
import { monitorHost, unmonitorHost } from "../steps/monitoring.ts";
import type { Playbook, Step } from "../types.ts";

/**
 * Terminating is what cannot be undone here: after it, only forward. Right before it the HAProxy is checked once
 * more: one that answers again is left alone (the recovery rolls back, saying why).
 */
const terminate: Step = {
  ...terminateFailedMachine,
  pointOfNoReturn: true,
  async run(ctx) {
    const confirmation = await confirmStillFailed(ctx, failedTargets(ctx, [ctx.host]), "termination");
    return { ...((await terminateFailedMachine.run(ctx)) as object), confirmed: confirmation.evidence };
  },
};

export function failedHaproxy(host: string): Playbook {
  return {
    name: "failed_haproxy",
    host,
    steps: [
      unmonitorHost, //          1. Unmonitor the failed machine.
      terminate, //              2. Terminate it.                                 (point of no return)
      launchReplacement, //      3. Launch a new machine from the AMI with an unconfigured HAProxy.
      configureLikeSurvivor, //  4. Configure it exactly like the surviving HAProxy.
      pointDnsAtReplacement, //  5. Point DNS at the new machine (and the app-side HAProxies).
      verifyConverged, //        Check it routes to every primary and the app-side HAProxies relay to it.
      monitorHost, //            6. Start monitoring the new HAProxy.
    ],
  };
}
