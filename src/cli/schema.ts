import type { Command } from "commander";
import { z } from "zod";
import { configSchema } from "../topology/schema.ts";
import { out } from "./common.ts";

/**
 * The config's JSON Schema (draft 2020-12), derived from the zod schema the loader uses, for editors
 * (yaml-language-server: `# yaml-language-server: $schema=failoverd.schema.json`). It describes the file as written:
 * keys with defaults are optional. Rules zod checks in code (a refine: one of id/name, a cron expression, a webhook
 * URL's scheme) and the loader's cross-checks (pairs name declared Redis hosts, ...) are not expressible in it:
 * `failoverd validate` remains the full check.
 */
export function configJsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(configSchema, { io: "input", unrepresentable: "any" }),
    title: "failoverd config",
    description: "A failoverd topology config (see README.md, Configuration reference). Full check: failoverd validate.",
  };
}

export function registerSchema(program: Command): void {
  program
    .command("schema")
    .description("print the config's JSON Schema, for editors (yaml-language-server); `validate` is the full check")
    .action(() => {
      out(JSON.stringify(configJsonSchema(), null, 2));
    });
}
