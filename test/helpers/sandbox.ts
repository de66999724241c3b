/**
 * Test topologies on loopback. Each test file takes its own second octet (127.N.x.y), so files never share an
 * address, and checks the addresses are free before starting anything: a sandbox left running never breaks a test.
 */
import { loopbackTopology, type LoopbackTopology, type LoopbackTopologyOptions } from "../../src/simulate/topologies.ts";
import type { Topology } from "../../src/topology/topology.ts";
import { declaredListeners, sandboxDown, sandboxUp } from "../../src/providers/local/up.ts";
import { whyNotFree } from "../../src/providers/local/processes.ts";

/** `net` is the second octet: 127.<net>.x.y, unique per test file. */
export type TestTopologyOptions = LoopbackTopologyOptions;
export type TestTopology = LoopbackTopology;

export function testTopology(o: TestTopologyOptions): TestTopology {
  return loopbackTopology(o);
}

/** Throws when any address:port of the topology (or of its replacement pools) is in use. */
export async function assertAddressesFree(t: Topology): Promise<void> {
  const busy = (await Promise.all(declaredListeners(t).map((l) => whyNotFree(l.address, l.port)))).filter(Boolean);
  if (busy.length > 0) throw new Error(`test addresses are busy (a sandbox left running?): ${busy.join("; ")}`);
}

/** Starts the sandbox for a test topology; the returned function stops every process it started. */
export async function startSandbox(tt: TestTopology): Promise<() => Promise<void>> {
  await assertAddressesFree(tt.topology);
  try {
    await sandboxUp(tt.topology);
  } catch (e) {
    await sandboxDown(tt.topology);
    throw e;
  }
  return async () => {
    await sandboxDown(tt.topology);
  };
}
