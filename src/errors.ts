/**
 * failoverd's error hierarchy. Every message names the field, host or step at fault and, where one exists, the fix.
 * The CLI prints `message` on one line; a stack trace is printed only for errors that are not FailoverdErrors (bugs).
 */
export class FailoverdError extends Error {
  override name = "FailoverdError";
}

/** The configuration is wrong. `problems` lists each with its path; the message joins them on one line. */
export class ConfigError extends FailoverdError {
  override name = "ConfigError";
  constructor(
    readonly source: string,
    readonly problems: readonly string[],
  ) {
    super(`${source}: ${joinProblems(problems)}`);
  }
}

/** The problems on one bounded line (a 1 MB list of bad entries must not print megabytes); `problems` keeps all. */
function joinProblems(problems: readonly string[]): string {
  const clip = (p: string) => (p.length > 500 ? `${p.slice(0, 500)}...` : p);
  if (problems.length === 1) return clip(problems[0] ?? "");
  let text = `${problems.length} problems: `;
  let shown = 0;
  for (const p of problems) {
    const next = `${shown > 0 ? "; " : ""}${clip(p)}`;
    if (shown > 0 && text.length + next.length > 1500) break;
    text += next;
    shown++;
  }
  return shown < problems.length ? `${text}; and ${problems.length - shown} more` : text;
}

/** The command line is wrong (exit 2). */
export class UsageError extends FailoverdError {
  override name = "UsageError";
}

/** A probe did not get a usable answer. `kind` keeps the evidence: what exactly went wrong. */
export type ProbeFailureKind = "refused" | "timeout" | "reset" | "error-reply" | "wrong-role" | "loading" | "protocol";

export class ProbeError extends FailoverdError {
  override name = "ProbeError";
  constructor(
    readonly kind: ProbeFailureKind,
    message: string,
  ) {
    super(message);
  }
}

/** The HAProxy Runtime API answered with an error. */
export class HaproxyCommandError extends FailoverdError {
  override name = "HaproxyCommandError";
  constructor(
    readonly command: string,
    readonly reply: string,
  ) {
    super(`HAProxy refused '${command}': ${reply.trim().split("\n")[0]}`);
  }
}

/** A provider (compute, DNS) failed. `retryable` tells the runner whether trying again may help. */
export class ProviderError extends FailoverdError {
  override name = "ProviderError";
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly code?: string,
  ) {
    super(message);
  }
}

/** A recovery step failed after its attempts. */
export class StepFailedError extends FailoverdError {
  override name = "StepFailedError";
  constructor(
    readonly step: string,
    override readonly cause: unknown,
  ) {
    super(`step ${step} failed: ${errorMessage(cause)}`);
  }
}

export function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}

export function isRetryable(e: unknown): boolean {
  if (e instanceof ProviderError) return e.retryable;
  if (e instanceof ProbeError) return e.kind === "timeout" || e.kind === "refused" || e.kind === "reset";
  return false;
}
