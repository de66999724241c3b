/**
 * Logging: pino JSON lines on stdout (for journald), readable when stdout is a terminal; one line per decision. Secrets are redacted by key wherever
 * they appear in a logged object; messages never interpolate a secret.
 */
import { pino, type Logger } from "pino";
import { prettyStream } from "./log-pretty.ts";

export type { Logger } from "pino";

const REDACT = [
  "password",
  "*.password",
  "*.*.password",
  "token",
  "*.token",
  "secret",
  "*.secret",
  "auth",
  "*.auth",
  "authorization",
  "*.authorization",
  "headers.authorization",
];

export function createLogger(options: { level?: string; destination?: NodeJS.WritableStream } = {}): Logger {
  return pino(
    {
      level: options.level ?? process.env["FAILOVERD_LOG_LEVEL"] ?? "info",
      base: { app: "failoverd" },
      redact: { paths: REDACT, censor: "[redacted]" },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    (options.destination ?? stdoutDestination()) as pino.DestinationStream,
  );
}

/** JSON lines for journald and pipes; a readable form when stdout is a terminal (FAILOVERD_LOG_FORMAT=json keeps JSON). */
function stdoutDestination(): NodeJS.WritableStream {
  const format = process.env["FAILOVERD_LOG_FORMAT"];
  return format === "pretty" || (format !== "json" && process.stdout.isTTY) ? prettyStream(process.stdout) : process.stdout;
}

/** A logger that drops everything (tests, one-shot commands). */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
