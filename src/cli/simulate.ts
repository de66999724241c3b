import { InvalidArgumentError, type Command } from "commander";
import { formatReport } from "../simulate/report.ts";
import { type Fault, simulate } from "../simulate/scenario.ts";
import { type ConfigOpts, EXIT_FAILED, loadFrom, out, parseMs, setExitCode, withConfig } from "./common.ts";

function parseFault(v: string): Fault {
  if (v !== "crash" && v !== "hang" && v !== "vanish") throw new InvalidArgumentError("must be crash, hang or vanish");
  return v;
}

export function registerSimulate(program: Command): void {
  withConfig(
    program
      .command("simulate")
      .description("start the sandbox, drive traffic, inject a fault, let the daemon recover, and report (exit 1 unless recovered with nothing lost)"),
  )
    .requiredOption("-t, --target <host>", "the host to fail (redis1, redis2, haproxy1, haproxy2 in the sandbox)")
    .option("--fault <kind>", "crash (SIGKILL every process of the host), hang (SIGSTOP, SIGCONT after --hang-ms) or vanish (every packet to and from the host dropped for --hang-ms: iptables, as root)", parseFault, "crash")
    .option("--hang-ms <ms>", "how long a hang (or a vanished host) lasts", parseMs(0), 10_000)
    .option("--json", "print one JSON object as the last line of stdout")
    .action(async (opts: ConfigOpts & { target: string; fault: Fault; hangMs: number; json?: boolean }) => {
      const t = loadFrom(opts);
      const report = await simulate(t, {
        target: opts.target,
        fault: opts.fault,
        hangMs: opts.hangMs,
        onEvent: (line) => out(line),
      });
      out(formatReport(report));
      if (opts.json) out(JSON.stringify(report));
      if (!report.recovered || report.lostAckedWrites > 0) setExitCode(EXIT_FAILED);
    });
}
