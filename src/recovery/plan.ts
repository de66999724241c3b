/**
 * A recovery resolved against the current topology without acting: the playbook runs in dry-run against the real
 * providers wrapped by the dry-run provider (reads pass through, writes are described). Needs no cloud credentials:
 * a read that fails is answered "looked up at run time".
 */
import { join } from "node:path";
import { silentLogger } from "../log.ts";
import { type DescribedAction, DryRunRecorder, dryRun } from "../providers/dry-run.ts";
import { offlineReads } from "../providers/offline.ts";
import type { Providers } from "../providers/types.ts";
import { Inventory } from "../topology/inventory.ts";
import { getHost, type Topology } from "../topology/topology.ts";
import { MemoryJournal } from "./journal.ts";
import { playbookFor } from "./registry.ts";
import { Runner, type RunOutcome } from "./runner.ts";
import type { PlaybookName } from "./types.ts";

export interface PlannedStep {
  readonly name: string;
  readonly title: string;
  readonly pointOfNoReturn: boolean;
  readonly actions: readonly string[];
  readonly error?: string;
}

export interface Plan {
  readonly playbook: PlaybookName;
  readonly host: string;
  readonly steps: readonly PlannedStep[];
  readonly outcome: RunOutcome;
}

export function playbookNameFor(t: Topology, host: string): PlaybookName {
  const h = getHost(t, host);
  if (h.role === "redis") return "failed_redis";
  if (h.role === "haproxy") return "failed_haproxy";
  throw new Error(`${host} is an app host: failoverd has no playbook for it`);
}

export interface PlanOptions {
  /** Contact nothing: machines are stand-ins at their recorded addresses, live state is looked up at run time. */
  readonly offline?: boolean;
}

export async function planRecovery(t: Topology, host: string, real: Providers, options: PlanOptions = {}): Promise<Plan> {
  const name = playbookNameFor(t, host);
  const playbook = playbookFor(name, host);
  const byStep = new Map<string, DescribedAction[]>();
  let current = "";
  const recorder = new DryRunRecorder((a) => byStep.get(current)?.push(a));
  const note = (text: string) => {
    byStep.get(current)?.push({ provider: "compute", description: text });
  };
  const inventory = Inventory.load(t, join(t.config.stateDir, "inventory.json"));
  const runner = new Runner({
    topology: t,
    inventory,
    providers: dryRun(options.offline ? offlineReads(real, (h) => ({ address: inventory.addressOf(h), role: getHost(t, h).role })) : real, recorder),
    journal: new MemoryJournal(),
    monitor: {
      unmonitor: async (h) => note(`would stop monitoring ${h} (${inventory.addressOf(h)})`),
      monitor: async (h) => note(`would start monitoring ${h} at its new address`),
      statusOf: () => "unknown",
      rules: { fall: t.config.checks.fall, rise: t.config.checks.rise, intervalMs: t.config.checks.intervalMs },
      recheck: async (target) => ({ type: "redis", target, host: target.split(":")[0]!, port: 0, address: "", at: Date.now(), ok: false, latencyMs: 0, failure: { kind: "refused", message: "planned" } }),
      failuresOf: () => t.config.checks.fall,
      lastGood: () => undefined,
      firstAbove: () => undefined,
      noteRole: () => {},
    },
    log: silentLogger(),
    dryRun: true,
  });
  const errors = new Map<string, string>();
  runner.on("step-start", (e: { step: string }) => {
    current = e.step;
    if (!byStep.has(e.step)) byStep.set(e.step, []);
  });
  runner.on("step-end", (e: { step: string; ok: boolean; error?: string }) => {
    if (!e.ok && e.error) errors.set(e.step, e.error);
  });
  const outcome = await runner.run(playbook, { diagnosis: "plan" });
  return {
    playbook: name,
    host,
    outcome,
    steps: playbook.steps.map((s) => ({
      name: s.name,
      title: s.title,
      pointOfNoReturn: s.pointOfNoReturn === true,
      actions: (byStep.get(s.name) ?? []).map((a) => a.description),
      ...(errors.has(s.name) ? { error: errors.get(s.name)! } : {}),
    })),
  };
}
