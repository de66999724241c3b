#!/usr/bin/env node
// Thin entry: runs the TypeScript sources through tsx's loader (no build step between `npm ci` and `npx failoverd`).
import { register } from "tsx/esm/api";

register();
const { main } = await import("../src/cli/main.ts");
process.exitCode = await main(process.argv);
