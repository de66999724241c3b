/**
 * The provider contract on dry-run wrapped around the local sandbox (loopback net 41): every call resolves, every
 * write is described, and nothing changes. Real machines (seeded and stranger) are started through the unwrapped
 * sandbox, so "nothing changes" is checked against real processes.
 */
import { join } from "node:path";
import { canConnect } from "../../src/admin/tcp.ts";
import { DryRunRecorder, dryRun } from "../../src/providers/dry-run.ts";
import { LocalCompute, LocalDns, LocalProxies } from "../../src/providers/local/index.ts";
import { Sandbox } from "../../src/providers/local/sandbox.ts";
import { NetHaproxyAdmin, NetRedisAdmin } from "../../src/providers/net-admin.ts";
import type { Machine } from "../../src/providers/types.ts";
import { assertAddressesFree, testTopology } from "../helpers/sandbox.ts";
import { providerContract } from "./providers.contract.ts";

providerContract("dry-run(local sandbox)", async () => {
  const tt = testTopology({ net: 41, name: "contract41" });
  await assertAddressesFree(tt.topology);
  const p = tt.topology.config.provider;
  if (p.kind !== "local") throw new Error("expected a local provider");
  const sandbox = new Sandbox(tt.topology.name, p);
  const strangers = new Sandbox("someone-else", { ...p, runDir: join(tt.dir, "stranger"), addressPool: { redis: ["127.41.9.1", "127.41.9.3"], haproxy: ["127.41.9.2"] } });
  const real = new LocalCompute(sandbox);
  const redis = new NetRedisAdmin(1000);
  const recorder = new DryRunRecorder();
  const wrapped = dryRun(
    { compute: real, dns: new LocalDns(sandbox), proxies: new LocalProxies(sandbox), redis, haproxy: new NetHaproxyAdmin(1000), close: async () => redis.close() },
    recorder,
  );
  // A record that exists before the dry run: it must still say the same afterwards.
  await sandbox.setDns("haproxy1.contract41.internal", "127.41.2.1");
  return {
    compute: wrapped.compute,
    dns: wrapped.dns,
    launchRequest: { host: "redis1", role: "redis", ports: [9001] },
    dnsName: "haproxy1.contract41.internal",
    addresses: ["127.41.2.11", "127.41.2.12"],
    changesTheWorld: false,
    described: () => recorder.actions.map((a) => a.description),
    seedSpare: (state) => real.addSpare("redis", state, [9001], AbortSignal.timeout(20_000)),
    seedMachine: () => real.launch({ host: "redis2", role: "redis", ports: [9001] }, AbortSignal.timeout(20_000)),
    stranger: () => new LocalCompute(strangers).launch({ host: "redis1", role: "redis", ports: [9001] }, AbortSignal.timeout(20_000)),
    isRunning: (m: Machine) => canConnect(m.address, 9001, 1000),
    cleanup: async () => {
      await wrapped.close();
      await sandbox.down();
      await strangers.down();
      tt.cleanup();
    },
  };
});
