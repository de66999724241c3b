import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { redisAuthOf } from "../providers/index.ts";
import { sandboxDown, sandboxStatus, sandboxUp } from "../providers/local/up.ts";
import { UsageError } from "../errors.ts";
import type { EtcdCluster } from "../simulate/etcd-cluster.ts";
import type { Topology } from "../topology/topology.ts";
import { type ConfigOpts, EXIT_FAILED, loadFrom, out, setExitCode, table, withConfig } from "./common.ts";

export function registerSandbox(program: Command): void {
  const sandbox = program
    .command("sandbox")
    .description("run the topology as real redis-server and haproxy processes on loopback addresses");
  withConfig(sandbox.command("up").description("start every machine of the topology, wait until it serves, and return"))
    .option("--monitors <n>", "also start an etcd cluster of n members for n coordinated failoverd instances, on the coordination section's endpoints")
    .action(async (opts: ConfigOpts & { monitors?: string }) => {
      const t = loadFrom(opts);
      const cluster = opts.monitors !== undefined ? await etcdFor(t, opts.monitors) : null;
      if (cluster) {
        await cluster.start();
        cluster.save(etcdFile(t));
        out(`  etcd: ${cluster.endpoints.join(", ")}`);
      }
      const s = await sandboxUp(t, { auth: redisAuthOf(t), onProgress: (l) => out(`  ${l}`) }).catch(async (e: unknown) => {
        await stopEtcd(t);
        throw e;
      });
      if (cluster) out(`start the instances with: failoverd run${opts.config ? ` --config ${opts.config}` : ""} --instance m1 (m2, m3, ...)`);
      out(`sandbox '${t.name}' is up; run state in ${s.runDir}. Stop it with: failoverd sandbox down${opts.config ? ` --config ${opts.config}` : ""}`);
    });
  withConfig(sandbox.command("down").description("stop every process the sandbox started (by PID)"))
    .action(async (opts: ConfigOpts) => {
      const t = loadFrom(opts);
      const n = (await sandboxDown(t)) + (await stopEtcd(t));
      out(`sandbox stopped (${n} process${n === 1 ? "" : "es"})`);
    });
  withConfig(sandbox.command("status").description("list the sandbox's machines and processes (exit 1 when a process is gone or stopped)"))
    .option("--json", "print JSON")
    .action((opts: ConfigOpts & { json?: boolean }) => {
      const st = sandboxStatus(loadFrom(opts));
      const unhealthy = st.machines.length === 0 || st.machines.some((m) => m.processes.some((p) => p.state !== "running"));
      if (opts.json) out(JSON.stringify(st));
      else if (st.machines.length === 0) out(`no sandbox is running (run dir ${st.runDir})`);
      else {
        out(
          table(
            ["HOST", "MACHINE", "ADDRESS", "PROCESSES"],
            st.machines.map((m) => [
              m.host,
              m.id,
              m.address,
              m.processes.map((p) => `${p.kind}${p.port ? `:${p.port}` : ""} pid ${p.pid} ${p.state}`).join(", ") || "(none)",
            ]),
          ),
        );
      }
      if (unhealthy) setExitCode(EXIT_FAILED);
    });
}

function etcdFile(t: Topology): string {
  return join(t.config.provider.kind === "local" ? t.config.provider.runDir : t.config.stateDir, "etcd.json");
}

/** The etcd cluster `--monitors n` starts: one member per endpoint of the coordination section (loopback, port 2379). */
/** Stops the etcd members `up --monitors` started (loaded only then: the etcd client is not needed otherwise). */
async function stopEtcd(t: Topology): Promise<number> {
  if (!existsSync(etcdFile(t))) return 0;
  return (await import("../simulate/etcd-cluster.ts")).EtcdCluster.stopSaved(etcdFile(t));
}

async function etcdFor(t: Topology, monitors: string): Promise<EtcdCluster> {
  const n = Number(monitors);
  if (!/^\d+$/.test(monitors) || n < 1 || n > 9) throw new UsageError(`--monitors ${monitors}: give the number of instances (1 to 9)`);
  const c = t.config.coordination;
  if (!c) throw new UsageError(`--monitors ${monitors}: the config has no coordination section (see config/sandbox-monitors.yaml)`);
  const addresses = c.endpoints.map((e) => /^http:\/\/(127\.\d+\.\d+\.\d+):2379$/.exec(e)?.[1]);
  if (addresses.some((a) => a === undefined) || addresses.length !== n) {
    throw new UsageError(`--monitors ${monitors}: the coordination section must list ${n} endpoints http://127.x.y.z:2379, one per etcd member the sandbox starts`);
  }
  if (c.instances !== n) throw new UsageError(`--monitors ${monitors}: coordination.instances is ${c.instances}`);
  const dir = join(t.config.provider.kind === "local" ? t.config.provider.runDir : t.config.stateDir, "etcd");
  return (await import("../simulate/etcd-cluster.ts")).EtcdCluster.onAddresses(addresses as string[], dir, false);
}
