/**
 * The command line. Exit codes: 0 success / healthy, 1 unhealthy or a failed action, 2 usage or config error.
 * Errors that failoverd understands print one line on stderr; anything else is a bug and prints its stack.
 */
import { Command, CommanderError } from "commander";
import { FailoverdError } from "../errors.ts";
import { registerHistory } from "./history.ts";
import { registerCleanup } from "./cleanup.ts";
import { registerOps, registerPromote } from "./ops.ts";
import { registerPlan } from "./plan.ts";
import { registerPreflight } from "./preflight.ts";
import { registerRender } from "./render.ts";
import { registerRun } from "./run.ts";
import { registerSandbox } from "./sandbox.ts";
import { registerSchema } from "./schema.ts";
import { registerSimulate } from "./simulate.ts";
import { registerStatus } from "./status.ts";
import { registerValidate } from "./validate.ts";
import { VERSION } from "../version.ts";
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE, takeExitCode } from "./common.ts";
import { flushStdout, guardStdio, isStdoutClosed } from "./stdio.ts";

export function buildProgram(): Command {
  const program = new Command("failoverd")
    .description("Keeps Redis primary/replica pairs and the HAProxy tier in front of them alive.")
    .version(VERSION)
    .showSuggestionAfterError(true)
    .configureHelp({ sortSubcommands: false })
    .exitOverride();
  registerRun(program);
  registerSimulate(program);
  registerValidate(program);
  registerStatus(program);
  registerPlan(program);
  registerPreflight(program);
  registerRender(program);
  registerSandbox(program);
  registerOps(program);
  registerPromote(program);
  registerSchema(program);
  registerHistory(program);
  registerCleanup(program);
  for (const c of program.commands) {
    c.exitOverride();
    for (const sub of c.commands) sub.exitOverride();
  }
  return program;
}

export async function main(argv: readonly string[]): Promise<number> {
  guardStdio();
  const program = buildProgram();
  try {
    await program.parseAsync([...argv]);
    const code = takeExitCode();
    await flushStdout();
    // The reader closed stdout (`status | head -1`): it had what it wanted.
    return isStdoutClosed() ? EXIT_OK : code;
  } catch (e) {
    return handleError(e);
  }
}

function handleError(e: unknown): number {
  if (e instanceof CommanderError) {
    if (e.code === "commander.helpDisplayed" || e.code === "commander.version" || e.code === "commander.help") return EXIT_OK;
    // Commander already printed its one-line message.
    return EXIT_USAGE;
  }
  if (e instanceof FailoverdError) {
    const usage = e.name === "ConfigError" || e.name === "UsageError";
    process.stderr.write(`failoverd: ${e.message}\n`);
    return usage ? EXIT_USAGE : EXIT_FAILED;
  }
  process.stderr.write(`failoverd: internal error (a bug, please report it): ${(e as Error)?.stack ?? String(e)}\n`);
  return EXIT_FAILED;
}

