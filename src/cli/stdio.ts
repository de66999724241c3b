/**
 * The command line's output streams when their reader goes away. `failoverd status | head -1`: head exits after one
 * line, and the next write fails with EPIPE. That is the reader's choice, not an error: the rest of the output is
 * dropped, nothing is printed about it, and the command exits 0 (`exitCodeAfterClosedStdout`). The daemon goes on
 * without its stdout (a supervisor's logs are on journald; a person who piped `run` into `head` chose this), and says
 * so once on stderr.
 */

let stdoutClosed = false;
let guarded = false;
let onClosed: (() => void) | null = null;

/** Installs the handlers (once per process). */
export function guardStdio(): void {
  if (guarded) return;
  guarded = true;
  process.stdout.on("error", (e: NodeJS.ErrnoException) => {
    if (stdoutClosed) return;
    stdoutClosed = true;
    if (e.code !== "EPIPE") writeStderr(`failoverd: cannot write to stdout (${e.code ?? e.message}); its output is dropped\n`);
    onClosed?.();
  });
  // stderr's reader gone too (`2>&1 | head`): nothing is left to tell.
  process.stderr.on("error", () => {});
}

/** True once stdout's reader has closed it: further output is dropped. */
export function isStdoutClosed(): boolean {
  return stdoutClosed || process.stdout.destroyed;
}

/** Resolves once everything written to stdout so far is taken by its reader, or its reader is gone. */
export function flushStdout(): Promise<void> {
  if (isStdoutClosed()) return Promise.resolve();
  return new Promise((resolve) => {
    process.stdout.write("", (err) => {
      if (err) stdoutClosed = true;
      resolve();
    });
  });
}

function writeStderr(s: string): void {
  if (!process.stderr.destroyed) process.stderr.write(s);
}

/** `run`: once stdout's reader is gone, say on stderr that the daemon goes on without its log lines. */
export function warnWhenStdoutCloses(): void {
  onClosed = () => writeStderr("failoverd: stdout was closed by its reader: the daemon goes on, its log lines are dropped\n");
}
