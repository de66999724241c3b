/**
 * failoverd's version, read from its package.json: the nearest one above this file named failoverd, so it is found
 * from the sources and from compiled JavaScript alike. "unknown" when none is (never a reason to fail a start).
 */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";

function readVersion(): string {
  for (let dir = import.meta.dirname; ; dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { name?: unknown; version?: unknown };
      if (pkg.name === "failoverd" && typeof pkg.version === "string") return pkg.version;
    } catch {
      // No package.json here (or not JSON): look further up.
    }
    if (dirname(dir) === dir) return "unknown";
  }
}

export const VERSION: string = readVersion();
