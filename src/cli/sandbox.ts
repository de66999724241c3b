import type { Command } from "commander";
import { redisAuthOf } from "../providers/index.ts";
import { sandboxDown, sandboxStatus, sandboxUp } from "../providers/local/up.ts";
import { type ConfigOpts, EXIT_FAILED, loadFrom, out, setExitCode, table, withConfig } from "./common.ts";

export function registerSandbox(program: Command): void {
  const sandbox = program
    .command("sandbox")
    .description("run the topology as real redis-server and haproxy processes on loopback addresses");
  withConfig(sandbox.command("up").description("start every machine of the topology, wait until it serves, and return"))
    .action(async (opts: ConfigOpts) => {
      const t = loadFrom(opts);
      const s = await sandboxUp(t, { auth: redisAuthOf(t), onProgress: (l) => out(`  ${l}`) });
      out(`sandbox '${t.name}' is up; run state in ${s.runDir}. Stop it with: failoverd sandbox down${opts.config ? ` --config ${opts.config}` : ""}`);
    });
  withConfig(sandbox.command("down").description("stop every process the sandbox started (by PID)"))
    .action(async (opts: ConfigOpts) => {
      const n = await sandboxDown(loadFrom(opts));
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
