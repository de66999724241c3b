/** What every command shares: the --config option, loading, exit codes, output. */
import { type Command, InvalidArgumentError } from "commander";
import { ConfigError } from "../errors.ts";
import { loadTopology } from "../topology/load.ts";
import { unsetSecretVariables } from "../topology/secrets.ts";
import { stateDirProblem } from "../topology/state-dir.ts";
import type { Topology } from "../topology/topology.ts";
import { isStdoutClosed } from "./stdio.ts";

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

/** A commander parser of a whole number of milliseconds, at least `min`: `--timeout 5000`. */
export function parseMs(min: number): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min) {
      throw new InvalidArgumentError(`must be a whole number of milliseconds${min > 0 ? ` (at least ${min})` : ""}`);
    }
    return n;
  };
}

export function loadFrom(opts: ConfigOpts): Topology {
  return loadTopology(opts.config);
}

/**
 * What a config needs of this host beyond its own text: every `{env: NAME}` secret set, and a writable state
 * directory. `run` creates the directory; `validate` judges it only when it exists.
 */
export function assertRunnable(t: Topology, mode: "run" | "validate"): void {
  const problems = unsetSecretVariables(t.config);
  const dir = stateDirProblem(t.config.stateDir, mode === "run");
  if (dir) problems.push(dir);
  if (problems.length > 0) throw new ConfigError(t.source, problems);
}

export function out(line = ""): void {
  if (!isStdoutClosed()) process.stdout.write(`${line}\n`);
}

/** Formats rows as an aligned text table. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const fmt = (r: readonly string[]) => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join("  ").trimEnd();
  return [fmt(header), ...rows.map(fmt)].join("\n");
}
