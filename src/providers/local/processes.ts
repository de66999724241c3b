/**
 * Starting and stopping sandbox processes. Processes are started detached (they outlive `failoverd sandbox up`)
 * and stopped only by PID, after checking that the PID still belongs to the process we started (PID reuse).
 */
import { spawn } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { createServer } from "node:net";
import { canConnect } from "../../admin/tcp.ts";
import { setTimeout as sleep } from "node:timers/promises";
import { ProviderError } from "../../errors.ts";

export interface StartedProcess {
  readonly pid: number;
  /** A string that /proc/<pid>/cmdline must contain for the PID to still be ours. */
  readonly marker: string;
}

/**
 * Starts a process in its own session, working directory `cwd` (a sandbox machine's directory: that is how
 * `processesIn` finds it again even when the sandbox never recorded its PID).
 */
export function startDetached(command: string, args: readonly string[], logFile: string, cwd?: string): number {
  const child = spawn(command, args, { detached: true, stdio: ["ignore", "ignore", "ignore"], ...(cwd ? { cwd } : {}), ...machineGroup() });
  const pid = child.pid;
  child.on("error", () => {});
  child.unref();
  if (pid === undefined) throw new ProviderError(`cannot start ${command} (is it installed?); log: ${logFile}`, false);
  return pid;
}

/**
 * FAILOVERD_LOCAL_GID: the group the sandbox's processes run in (`simulate --monitors` runs each instance in a group
 * of its own, which a firewall rule may cut off; the machines an instance launches must not inherit that group).
 * Unset: the launching process's group.
 */
function machineGroup(): { gid?: number } {
  const v = process.env["FAILOVERD_LOCAL_GID"];
  return v !== undefined && /^\d+$/.test(v) ? { gid: Number(v) } : {};
}

/** True while the process runs (a zombie or a reused PID counts as gone). */
export function isRunning(p: StartedProcess): boolean {
  try {
    const stat = readFileSync(`/proc/${p.pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    if (state === "Z" || state === "X") return false;
    const cmdline = readFileSync(`/proc/${p.pid}/cmdline`, "utf8").replace(/\0/g, " ");
    return cmdline.includes(p.marker);
  } catch {
    return false;
  }
}

/**
 * The live processes (not zombies) whose working directory is `dir`, with their command lines (NULs as spaces).
 * Only processes of this user can be seen there, which is what the sandbox starts.
 */
export function processesIn(dir: string): { pid: number; cmdline: string }[] {
  const out: { pid: number; cmdline: string }[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    try {
      if (readlinkSync(`/proc/${pid}/cwd`) !== dir || isGone(pid)) continue;
      out.push({ pid, cmdline: readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ") });
    } catch {
      // Gone meanwhile, or another user's.
    }
  }
  return out;
}

/** True once the PID no longer exists or is a zombie: its sockets are closed. */
export function isGone(pid: number): boolean {
  // A thread-group leader shows "Z" as soon as its own thread has exited, while its other threads (redis-server's
  // bio and io threads) may still be exiting and still hold the shared file table, listening socket included. So
  // the process is gone only when every one of its threads is a zombie or has vanished.
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return true;
  }
  return [String(pid), ...tasks].every((tid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
      const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
      return state === "Z" || state === "X";
    } catch {
      return true;
    }
  });
}

/** The PIDs of a process's children, grandchildren... (HAProxy's workers under its master). */
export function descendants(pid: number): number[] {
  const out: number[] = [];
  let children: number[] = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return out;
  }
  for (const c of children) out.push(c, ...descendants(c));
  return out;
}

/** True while the process is stopped by SIGSTOP. */
export function isStopped(p: StartedProcess): boolean {
  try {
    const stat = readFileSync(`/proc/${p.pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) === "T";
  } catch {
    return false;
  }
}

/** Signals the process and its descendants (a stopped HAProxy master alone would leave its worker serving). */
export function signal(p: StartedProcess, sig: NodeJS.Signals): boolean {
  if (!isRunning(p)) return false;
  const pids = [p.pid, ...descendants(p.pid)];
  let ok = false;
  for (const pid of pids) {
    try {
      process.kill(pid, sig);
      ok = true;
    } catch {}
  }
  return ok;
}

/** Stops a process: `sig` first (SIGKILL for a crash), SIGKILL after `graceMs`; resolves once it is gone. */
export async function stop(p: StartedProcess, sig: NodeJS.Signals = "SIGTERM", graceMs = 3000): Promise<void> {
  if (!isRunning(p)) return;
  signal(p, sig);
  if (sig !== "SIGKILL") signal(p, "SIGCONT");
  const start = Date.now();
  // isRunning turns false as soon as the process releases its memory; its sockets may close a moment later.
  while (isRunning(p) || !isGone(p.pid)) {
    if (Date.now() - start > graceMs) signal(p, "SIGKILL");
    if (Date.now() - start > graceMs + 5000) throw new ProviderError(`process ${p.pid} does not stop`, true);
    await sleep(5);
  }
}

/** Resolves once a TCP connection to address:port succeeds; throws after `timeoutMs`. */
export async function waitForPort(address: string, port: number, timeoutMs: number, signal?: AbortSignal): Promise<void> {
  const start = Date.now();
  for (;;) {
    if (await canConnect(address, port, 500)) return;
    if (signal?.aborted) throw new ProviderError(`gave up waiting for ${address}:${port}: aborted`, true);
    if (Date.now() - start > timeoutMs) {
      throw new ProviderError(`${address}:${port} does not accept connections after ${timeoutMs} ms`, true);
    }
    await sleep(20);
  }
}

/** Null when address:port can be bound now; else why not (in use, or the address is not local). */
export function whyNotFree(address: string, port: number): Promise<string | null> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", (e: NodeJS.ErrnoException) =>
      resolve(e.code === "EADDRINUSE" ? `${address}:${port} is already in use` : `${address}:${port}: ${e.code ?? e.message}`),
    );
    srv.listen({ host: address, port, exclusive: true }, () => srv.close(() => resolve(null)));
  });
}
