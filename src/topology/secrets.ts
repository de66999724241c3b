/**
 * Secrets are never written in the config: it names where they are (an environment variable or a file). Values
 * are resolved at start and kept out of every log (see src/log.ts redaction).
 */
import { readFileSync } from "node:fs";
import { ConfigError } from "../errors.ts";
import type { Config, SecretRef } from "./schema.ts";

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

/** Every secret reference of a config, with its field. */
export function secretRefs(config: Config): [field: string, ref: SecretRef][] {
  const refs: [string, SecretRef | undefined][] = [
    ["redis.password", config.redis.password],
    ["http.token", config.http?.token],
    ...config.notifications.webhooks.map((w, i): [string, SecretRef | undefined] => [`notifications.webhooks[${i}].url`, typeof w.url === "string" ? undefined : w.url]),
  ];
  const p = config.provider;
  if (p.kind === "aws") refs.push(["provider.ssh.privateKey", p.ssh.privateKey], ["provider.ssh.passphrase", p.ssh.passphrase]);
  return refs.filter((r): r is [string, SecretRef] => r[1] !== undefined);
}

/**
 * `{env: NAME}` references whose variable is unset or empty: `validate` reports them and `run` refuses to start, so
 * a missing secret is found at deploy time, not by the first recovery. (File references are read when needed.)
 */
export function unsetSecretVariables(config: Config, env: NodeJS.ProcessEnv = process.env): string[] {
  return secretRefs(config).flatMap(([field, ref]) =>
    ref.env !== undefined && (env[ref.env] ?? "") === "" ? [`${field}: environment variable ${ref.env} is not set`] : [],
  );
}
