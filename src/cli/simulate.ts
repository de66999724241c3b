import { InvalidArgumentError, type Command } from "commander";
import { formatReport } from "../simulate/report.ts";
import { DEFAULT_AT_STEP, type Fault, FAULTS, simulate } from "../simulate/scenario.ts";
import { type ConfigOpts, EXIT_FAILED, loadFrom, out, parseMs, setExitCode, withConfig } from "./common.ts";

function parseFault(v: string): Fault {
  if (!(FAULTS as readonly string[]).includes(v)) throw new InvalidArgumentError("must be crash, hang or vanish (or, with --monitors, monitor-leader or monitor-partition)");
  return v as Fault;
}

function parseMonitors(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 3 || n % 2 === 0) throw new InvalidArgumentError("must be an odd number of instances, at least 3 (3 or 5)");
  return n;
}

export function registerSimulate(program: Command): void {
  withConfig(
    program
      .command("simulate")
      .description("start the sandbox, drive traffic, inject a fault, let the daemon recover, and report (exit 1 unless recovered with nothing lost)"),
  )
    .requiredOption("-t, --target <host>", "the host to fail (redis1, redis2, haproxy1, haproxy2 in the sandbox)")
    .option(
      "--fault <kind>",
      "crash (SIGKILL every process of the host), hang (SIGSTOP, SIGCONT after --hang-ms), vanish (every packet to and from the host dropped for --hang-ms: iptables, as root); " +
        "with --monitors, the host crashes and: monitor-leader (the acting instance SIGKILLed before the recovery's step --at-step) or monitor-partition (the leader cut off from etcd and the topology for --hang-ms, before the crash or before --at-step; as root)",
      parseFault,
      "crash",
    )
    .option("--hang-ms <ms>", "how long a hang (a vanished host, a cut-off instance) lasts", parseMs(0), 10_000)
    .option("--monitors <n>", "run n coordinated instances (m1..mn, an odd number >= 3) and the etcd cluster of the config's coordination section, instead of one daemon", parseMonitors)
    .option("--at-step <step>", `the recovery's step a monitor fault strikes before (monitor-leader: ${DEFAULT_AT_STEP} when absent; monitor-partition: before the crash when absent)`)
    .option("--json", "print one JSON object as the last line of stdout")
    .action(async (opts: ConfigOpts & { target: string; fault: Fault; hangMs: number; monitors?: number; atStep?: string; json?: boolean }) => {
      const t = loadFrom(opts);
      const report = await simulate(t, {
        target: opts.target,
        fault: opts.fault,
        hangMs: opts.hangMs,
        ...(opts.monitors !== undefined ? { monitors: opts.monitors } : {}),
        ...(opts.atStep !== undefined ? { atStep: opts.atStep } : {}),
        onEvent: (line) => out(line),
      });
      out(formatReport(report));
      if (opts.json) out(JSON.stringify(report));
      if (!report.recovered || report.lostAckedWrites > 0) setExitCode(EXIT_FAILED);
    });
}
