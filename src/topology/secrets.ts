/**
 * Secrets are never written in the config: it names where they are (an environment variable or a file). Values
 * are resolved at start and kept out of every log (see src/log.ts redaction).
 */
import { readFileSync } from "node:fs";
import { ConfigError } from "../errors.ts";
import type { SecretRef } from "./schema.ts";

export function resolveSecret(ref: SecretRef | undefined, field: string, source: string): string | undefined {
  if (!ref) return undefined;
  if (ref.env !== undefined) {
    const v = process.env[ref.env];
    if (v === undefined || v === "") throw new ConfigError(source, [`${field}: environment variable ${ref.env} is not set`]);
    return v;
  }
  try {
    return readFileSync(ref.file!, "utf8").trim();
  } catch (e) {
    throw new ConfigError(source, [`${field}: cannot read ${ref.file}: ${(e as NodeJS.ErrnoException).code ?? "error"}`]);
  }
}
