/** The daemon as a child process: how `simulate` and the crash tests run it. */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, openSync, readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { FailoverdError } from "../errors.ts";
import { BIN_PATH } from "../package-root.ts";
import type { Topology } from "../topology/topology.ts";

/** Starts `failoverd run` for the topology as its own process, its log appended to `logFile`. */
export function startDaemon(
  t: Topology,
  logFile: string,
  env: NodeJS.ProcessEnv = {},
  args: readonly string[] = [],
  /** Run as another user (tests that cut the monitor off with an owner-matched firewall rule). */
  user?: { readonly uid: number; readonly gid: number },
): ChildProcess {
  const fd = openSync(logFile, "a");
  const child = spawn(process.execPath, [BIN_PATH, "run", "--config", t.source, ...args], {
    stdio: ["ignore", fd, fd],
    ...(user ?? {}),
    env: { ...process.env, FAILOVERD_LOG_LEVEL: process.env["FAILOVERD_LOG_LEVEL"] ?? "debug", ...env },
  });
  child.on("error", () => {});
  return child;
}

/** Resolves once the daemon has discovered the roles (its first round of checks is done). */
export async function waitForDaemon(logFile: string, child: ChildProcess, marker = "roles discovered", timeoutMs = 20_000): Promise<void> {
  const start = Date.now();
  while (Date.now() - start < timeoutMs) {
    if (child.exitCode !== null) throw new FailoverdError(`the daemon exited at start (code ${child.exitCode}); see ${logFile}`);
    if (existsSync(logFile) && readFileSync(logFile, "utf8").includes(marker)) return;
    await sleep(50);
  }
  throw new FailoverdError(`the daemon did not start within ${timeoutMs / 1000} s; see ${logFile}`);
}

/** SIGTERM, then SIGKILL after 10 s; resolves when the process has exited. */
export async function stopDaemon(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

