/**
 * The state directory must be a directory this process can write: the journal, the lock, the inventory and the
 * daemon's state live there. `run` creates it and refuses to start otherwise; `validate` checks it when it exists.
 */
import { accessSync, constants, mkdirSync, statSync } from "node:fs";

/** Null when `path` is (or, with `create`, has become) a writable directory; else why not, naming stateDir. */
export function stateDirProblem(path: string, create: boolean): string | null {
  let isDir: boolean;
  try {
    isDir = statSync(path).isDirectory();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOTDIR") return `stateDir: ${path} is not a directory (a part of its path is a file)`;
    if (code !== "ENOENT") return `stateDir: cannot read ${path}: ${code ?? String(e)}`;
    if (!create) return null;
    try {
      mkdirSync(path, { recursive: true, mode: 0o700 });
    } catch (err) {
      return `stateDir: cannot create ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`;
    }
    isDir = true;
  }
  if (!isDir) return `stateDir: ${path} is not a directory`;
  try {
    accessSync(path, constants.W_OK | constants.X_OK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return `stateDir: ${path} is not writable by this user${code === "EROFS" ? " (a read-only file system)" : ""}`;
  }
  return null;
}
