/**
 * Where failoverd's own files are (config/, bin/), whether this module runs from the sources (src/) or compiled
 * (dist/src/, one level deeper), from a git checkout or from an installed package: the nearest directory above this
 * file that holds a package.json.
 */
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

function findPackageRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, "package.json"))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json above ${from}: failoverd's files are incomplete`);
  }
}

export const PACKAGE_ROOT = findPackageRoot(dirname(fileURLToPath(import.meta.url)));

/** A path inside the package, e.g. `packagePath("config", "sandbox.yaml")`. */
export function packagePath(...parts: string[]): string {
  return join(PACKAGE_ROOT, ...parts);
}

/** The command line's entry, for running failoverd as a child process. */
export const BIN_PATH = packagePath("bin", "failoverd.js");
