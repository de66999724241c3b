/**
 * Logging: pino JSON lines on stdout (for journald), one line per decision. Secrets are redacted by key wherever
 * they appear in a logged object; messages never interpolate a secret.
 */
import { pino, type Logger } from "pino";

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
    (options.destination ?? process.stdout) as pino.DestinationStream,
  );
}

/** A logger that drops everything (tests, one-shot commands). */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
