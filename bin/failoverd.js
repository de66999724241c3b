#!/usr/bin/env node
// Thin entry: runs the compiled JavaScript in dist/ (built by `npm run build`, which scripts/setup runs; the package
// ships it built). No TypeScript compiler or loader at run time.
import { existsSync } from "node:fs";

const entry = new URL("../dist/src/cli/main.js", import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write("failoverd: not built (no dist/src/cli/main.js): run `npm run build` (scripts/setup does)\n");
  process.exit(2);
}
const { main } = await import(entry.href);
process.exitCode = await main(process.argv);
