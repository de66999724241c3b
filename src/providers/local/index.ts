/** The local sandbox as providers: compute = processes on loopback addresses, DNS = the sandbox's record map. */
import { setTimeout as sleep } from "node:timers/promises";
import { ProviderError } from "../../errors.ts";
import type { LatencyModel } from "../../topology/schema.ts";
import type {
  ComputeProvider,
  DnsProvider,
  KeepMode,
  KeptMachine,
  LaunchRequest,
  Machine,
  MachineRole,
  ProxyConfigurator,
  Spare,
  SpareState,
} from "../types.ts";
import { chaosPoint } from "./chaos.ts";
import { isRunning } from "./processes.ts";
import { type MachineRecord, SPARE_HOST, type Sandbox } from "./sandbox.ts";

/**
 * Waits as long as the modelled cloud takes for `what` (provider.latency; nothing when absent). Aborted with the
 * step's signal, so a modelled latency never outlives its deadline.
 */
export async function modelled(latency: LatencyModel | undefined, what: keyof LatencyModel, signal: AbortSignal): Promise<void> {
  const ms = latency?.[what] ?? 0;
  signal.throwIfAborted();
  if (ms > 0) await sleep(ms, undefined, { signal });
}

const asMachine = (m: MachineRecord): Machine => ({ id: m.id, host: m.host, role: m.role, address: m.address });

export class LocalCompute implements ComputeProvider {
  readonly kind = "local";
  constructor(
    private readonly sandbox: Sandbox,
    private readonly credentials: { password?: string | undefined; username?: string | undefined } = {},
    private readonly latency?: LatencyModel,
  ) {}

  async launch(req: LaunchRequest, signal: AbortSignal): Promise<Machine> {
    if (req.role === "app") throw new ProviderError("the sandbox does not launch app machines", false);
    await modelled(this.latency, "launchMs", signal);
    const address = await this.sandbox.allocateAddress(req.role);
    await chaosPoint("allocated", `${req.host} at ${address}`);
    // A launch cut short meanwhile (the step's deadline, or a lost lease: another instance launches now) records no
    // machine: a deposed leader that wakes up here would add a second one, at the address its successor took.
    signal.throwIfAborted();
    const m = await this.sandbox.createMachine(req.host, req.role, address);
    await chaosPoint("recorded", `${m.id} at ${address}`);
    return this.ready(m, req, signal);
  }

  /**
   * Starts each Redis server of the machine that is not running yet (a launch interrupted between two of them); a
   * stopped machine claimed for the host (a spare) is started first. A kept machine is never started again.
   */
  async ready(machine: Machine, req: LaunchRequest, signal: AbortSignal): Promise<Machine> {
    signal.throwIfAborted();
    let m = this.sandbox.read().machines.find((x) => x.id === machine.id);
    if (m?.status === "stopped" && m.kept === undefined && m.claimedFor === req.host) {
      await modelled(this.latency, "startMs", signal);
      m = await this.sandbox.update((s) => {
        const rec = s.machines.find((x) => x.id === machine.id)!;
        rec.status = "running";
        return rec;
      });
    }
    if (m?.status !== "running") throw new ProviderError(`machine ${machine.id} (${machine.host}) is not running in the sandbox`, true);
    if (req.role === "redis") {
      for (const port of req.ports ?? []) {
        if (!m.processes.some((p) => p.kind === "redis" && p.port === port && isRunning(p))) await this.sandbox.startRedis(m, port, this.credentials);
      }
    }
    return asMachine(m);
  }

  async terminate(machine: Machine, signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    const rec = this.guard(machine, "terminate");
    if (rec.status === "terminated") return;
    await modelled(this.latency, "terminateMs", signal);
    await this.sandbox.terminate(rec.id, "SIGKILL");
  }

  /** Stop and quarantine alike: the processes are killed, the directory kept (a loopback address has no firewall). */
  async keep(machine: Machine, how: { mode: KeepMode; recoveryId: string }, signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    const rec = this.guard(machine, how.mode === "stop" ? "stop" : "quarantine");
    if (rec.kept || rec.status === "terminated") return;
    await modelled(this.latency, "stopMs", signal);
    await this.sandbox.stopMachine(rec.id, (r) => {
      r.kept = { mode: how.mode, recoveryId: how.recoveryId, at: Date.now() };
    });
  }

  async kept(): Promise<KeptMachine[]> {
    return this.sandbox
      .read()
      .machines.filter((m) => m.kept && m.status !== "terminated" && m.topology === this.sandbox.topologyName)
      .map((m) => ({ ...asMachine(m), mode: m.kept!.mode, recoveryId: m.kept!.recoveryId, keptAt: m.kept!.at }))
      .sort((a, b) => a.keptAt - b.keptAt);
  }

  async spares(role: MachineRole): Promise<Spare[]> {
    return this.sandbox
      .read()
      .machines.filter((m) => m.spare && m.role === role && m.status !== "terminated")
      .map((m) => ({ id: m.id, role: m.role, address: m.address, state: m.status === "running" ? "running" : "stopped" }));
  }

  async addSpare(role: MachineRole, state: SpareState, ports: readonly number[], signal: AbortSignal): Promise<Spare> {
    if (role === "app") throw new ProviderError("the sandbox does not launch app machines", false);
    await modelled(this.latency, "launchMs", signal);
    const address = await this.sandbox.allocateAddress(role);
    const m = await this.sandbox.createMachine(SPARE_HOST, role, address, { state });
    // Prepared like a launched machine: its Redis servers were started once (their files exist), then it stops.
    if (role === "redis") for (const port of ports) await this.sandbox.startRedis(m, port, this.credentials);
    if (state === "stopped") {
      await modelled(this.latency, "stopMs", signal);
      await this.sandbox.stopMachine(m.id, () => {});
    }
    return { id: m.id, role, address, state };
  }

  async claim(req: LaunchRequest, signal: AbortSignal): Promise<Machine | null> {
    signal.throwIfAborted();
    // One table, one lock: two recoveries never take the same spare. A running spare first (it serves sooner).
    const taken = await this.sandbox.update((s) => {
      const earlier = s.machines.find((m) => m.claimedFor === req.host && m.host === req.host && m.status === "stopped" && !m.kept);
      if (earlier) return earlier;
      const pool = s.machines.filter((m) => m.spare && m.role === req.role && m.status !== "terminated");
      const spare = pool.find((m) => m.status === "running") ?? pool[0];
      if (!spare) return null;
      spare.host = req.host;
      spare.claimedFor = req.host;
      spare.spare = undefined;
      return spare;
    });
    if (!taken) return null;
    return this.ready(asMachine(taken), req, signal);
  }

  async find(host: string): Promise<Machine | null> {
    const m = this.sandbox.machineOf(host);
    return m ? asMachine(m) : null;
  }

  /** The machine's record, when it is this topology's machine of `machine.host`; else a refusal (not retryable). */
  private guard(machine: Machine, verb: string): MachineRecord {
    const rec = this.sandbox.read().machines.find((m) => m.id === machine.id);
    if (!rec || rec.topology !== this.sandbox.topologyName || rec.host !== machine.host) {
      throw new ProviderError(
        `refusing to ${verb} ${machine.id} (${machine.host}): it is not a machine of topology '${this.sandbox.topologyName}'`,
        false,
      );
    }
    return rec;
  }
}

export class LocalDns implements DnsProvider {
  constructor(
    private readonly sandbox: Sandbox,
    private readonly latency?: LatencyModel,
  ) {}
  async upsert(name: string, address: string, signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    if (this.sandbox.read().dns[name] !== address) await modelled(this.latency, "dnsMs", signal);
    await this.sandbox.setDns(name, address);
  }
  async resolve(name: string): Promise<string | null> {
    return this.sandbox.read().dns[name] ?? null;
  }
}

export class LocalProxies implements ProxyConfigurator {
  constructor(private readonly sandbox: Sandbox) {}

  async applyConfig(machine: Machine, text: string, signal: AbortSignal, options?: { reload?: boolean }): Promise<void> {
    signal.throwIfAborted();
    await this.sandbox.applyHaproxy(this.record(machine), text, options?.reload ?? true);
  }

  private record(machine: Machine) {
    const m = this.sandbox.read().machines.find((x) => x.id === machine.id && x.status === "running");
    if (!m) throw new ProviderError(`machine ${machine.id} (${machine.host}) is not running in the sandbox`, false);
    return m;
  }
}
