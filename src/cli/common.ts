/** What every command shares: the --config option, loading, exit codes, output. */
import type { Command } from "commander";
import { loadTopology } from "../topology/load.ts";
import type { Topology } from "../topology/topology.ts";

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

let exitCode = EXIT_OK;

/** Sets the exit code main() returns after the command's action. */
export function setExitCode(code: number): void {
  exitCode = code;
}

export function takeExitCode(): number {
  const c = exitCode;
  exitCode = EXIT_OK;
  return c;
}

export interface ConfigOpts {
  config?: string;
}

export function withConfig(cmd: Command): Command {
  return cmd.option("-c, --config <file>", "topology config (default: the bundled sandbox, config/sandbox.yaml)");
}

export function loadFrom(opts: ConfigOpts): Topology {
  return loadTopology(opts.config);
}

export function out(line = ""): void {
  process.stdout.write(`${line}\n`);
}

/** Formats rows as an aligned text table. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const fmt = (r: readonly string[]) => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join("  ").trimEnd();
  return [fmt(header), ...rows.map(fmt)].join("\n");
}
