import type { Command } from "commander";
import { Daemon } from "../daemon/daemon.ts";
import { UsageError } from "../errors.ts";
import { createLogger } from "../log.ts";
import { createProviders } from "../providers/index.ts";
import { Ops } from "../ops/index.ts";
import { loadTopology } from "../topology/load.ts";
import { assertRunnable, type ConfigOpts, loadFrom, withConfig } from "./common.ts";
import { warnWhenStdoutCloses } from "./stdio.ts";

export function registerRun(program: Command): void {
  withConfig(program.command("run").description("run the daemon: check, diagnose, recover (SIGTERM stops, SIGHUP reloads the config)"))
    .option("--dry-run", "shadow mode: monitor for real, log the recovery it would run, change nothing")
    .option("--http <addr:port>", "serve the status page, /status, /metrics and the operator API here (overrides http.listen; loopback unless said)")
    .option("--instance <name>", "this instance's name among several coordinated through etcd (overrides coordination.instance)")
    .action(async (opts: ConfigOpts & { dryRun?: boolean; http?: string; instance?: string }) => {
      const topology = loadFrom(opts);
      // A dry run writes nothing there: it needs no state directory of its own (an operator may shadow the service).
      assertRunnable(topology, opts.dryRun === true ? "validate" : "run");
      warnWhenStdoutCloses();
      const log = createLogger();
      // A coordination section: one of several instances, through etcd. Absent: this instance acts alone.
      // Loaded only then: single-instance mode does not load the etcd client.
      if (opts.instance !== undefined && !topology.config.coordination) {
        throw new UsageError(`--instance ${opts.instance}: the config has no coordination section (several instances coordinate through etcd)`);
      }
      const coordination = topology.config.coordination
        ? (await import("../coordination/index.ts")).Coordination.fromTopology(topology, { instance: opts.instance, log })
        : null;
      const daemon = new Daemon({
        topology,
        providers: await createProviders(topology),
        log,
        dryRun: opts.dryRun === true,
        ...(coordination ? { lease: coordination.lease, journal: coordination.journal, peers: coordination.peers } : {}),
      });
      coordination?.attach(daemon.events);
      const ops = Ops.attach(daemon, { log, http: opts.http });
      coordination?.registerMetrics(ops.metrics.registry);
      await daemon.start();
      try {
        await ops.start();
      } catch (e) {
        await daemon.stop();
        throw e;
      }
      // Several instances: the others hand this one the requests only the acting instance carries out.
      if (coordination && ops.listening) {
        await coordination.advertise(ops.listening).catch((e: unknown) => log.warn({ err: (e as Error).message }, "could not publish this instance's HTTP API in etcd; it is published again at the next registration"));
      }
      await new Promise<void>((resolve) => {
        const stop = (sig: string) => {
          log.info(`${sig} received: finishing the current step, then stopping`);
          ops
            .stopping()
            .then(() => daemon.stop())
            .then(() => ops.stop())
            .then(resolve, resolve);
        };
        process.once("SIGTERM", () => stop("SIGTERM"));
        process.once("SIGINT", () => stop("SIGINT"));
        process.on("SIGHUP", () => {
          try {
            const next = loadTopology(topology.source);
            daemon.reload(next);
            ops.reload(next);
          } catch (e) {
            log.error(`config reload refused, keeping the running config: ${(e as Error).message}`);
          }
        });
      });
    });
}
