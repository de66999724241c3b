/**
 * The provider contract on the local sandbox: real redis-server processes on loopback net 40 (127.40.x.y). The
 * stranger is a machine of another sandbox (another topology, its own run directory) on 127.40.9.1.
 */
import { join } from "node:path";
import { canConnect } from "../../src/admin/tcp.ts";
import { LocalCompute, LocalDns } from "../../src/providers/local/index.ts";
import { Sandbox } from "../../src/providers/local/sandbox.ts";
import type { Machine } from "../../src/providers/types.ts";
import { assertAddressesFree, testTopology } from "../helpers/sandbox.ts";
import { providerContract } from "./providers.contract.ts";

providerContract("local sandbox", async () => {
  const tt = testTopology({ net: 40, name: "contract40" });
  await assertAddressesFree(tt.topology);
  const p = tt.topology.config.provider;
  if (p.kind !== "local") throw new Error("expected a local provider");
  const sandbox = new Sandbox(tt.topology.name, p);
  const strangers = new Sandbox("someone-else", { ...p, runDir: join(tt.dir, "stranger"), addressPool: { redis: ["127.40.9.1", "127.40.9.3"], haproxy: ["127.40.9.2"] } });
  const compute = new LocalCompute(sandbox);
  return {
    compute,
    dns: new LocalDns(sandbox),
    launchRequest: { host: "redis1", role: "redis", ports: [9001] },
    dnsName: "haproxy1.contract40.internal",
    addresses: ["127.40.2.11", "127.40.2.12"],
    changesTheWorld: true,
    seedSpare: (state) => compute.addSpare("redis", state, [9001], AbortSignal.timeout(20_000)),
    seedMachine: () => compute.launch({ host: "redis2", role: "redis", ports: [9001] }, AbortSignal.timeout(20_000)),
    stranger: () => new LocalCompute(strangers).launch({ host: "redis1", role: "redis", ports: [9001] }, AbortSignal.timeout(20_000)),
    isRunning: (m: Machine) => canConnect(m.address, 9001, 1000),
    cleanup: async () => {
      await sandbox.down();
      await strangers.down();
      tt.cleanup();
    },
  };
});
