/** failoverd's version, from its package.json ("unknown" when that cannot be read: never a reason to fail a start). */
import { readFileSync } from "node:fs";
import { packagePath } from "./package-root.ts";

function readVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(packagePath("package.json"), "utf8")) as { version?: unknown };
    return typeof pkg.version === "string" ? pkg.version : "unknown";
  } catch {
    return "unknown";
  }
}

export const VERSION: string = readVersion();
