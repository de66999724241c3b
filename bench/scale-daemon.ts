/**
 * The daemon for the scale benchmark, as its own process so its CPU and memory can be read from /proc: the real
 * Daemon on the given config with what `failoverd run` attaches to it (metrics, notifications; no HTTP API unless the
 * config asks), and the onCheck hook recording, for every check, when it was due and when it started.
 * On SIGTERM it writes those samples (`startedAt lateness ok` per line) to the output file, stops and exits.
 *
 * usage: node dist/bench/scale-daemon.js <config.yaml> <samples.txt> (after `npm run build`)
 */
import { writeFileSync } from "node:fs";
import { Daemon } from "../src/daemon/daemon.ts";
import { Ops } from "../src/ops/index.ts";
import { createLogger } from "../src/log.ts";
import { createProviders } from "../src/providers/index.ts";
import { loadTopology } from "../src/topology/load.ts";

const [config, output] = process.argv.slice(2);
if (!config || !output) {
  process.stderr.write("usage: scale-daemon.ts <config.yaml> <samples.txt>\n");
  process.exit(2);
}
const topology = loadTopology(config);
const log = createLogger({ level: "info" });
const cap = 2_000_000;
const startedAt = new Float64Array(cap);
const lateness = new Float32Array(cap);
const ok = new Uint8Array(cap);
let n = 0;
const daemon = new Daemon({
  topology,
  providers: await createProviders(topology),
  log,
  onCheck: (_target, dueAt, started, success) => {
    if (n >= cap) return;
    startedAt[n] = started;
    lateness[n] = started - dueAt;
    ok[n] = success ? 1 : 0;
    n++;
  },
});
const ops = Ops.attach(daemon, { log });
await daemon.start();
await ops.start();
process.once("SIGTERM", () => {
  const lines: string[] = [];
  for (let i = 0; i < n; i++) lines.push(`${startedAt[i]} ${lateness[i]} ${ok[i]}`);
  writeFileSync(output, `${lines.join("\n")}\n`);
  daemon
    .stop()
    .then(() => ops.stop())
    .then(
      () => process.exit(0),
      () => process.exit(1),
    );
});
