/** The local sandbox as providers: compute = processes on loopback addresses, DNS = the sandbox's record map. */
import { ProviderError } from "../../errors.ts";
import type { ComputeProvider, DnsProvider, LaunchRequest, Machine, ProxyConfigurator } from "../types.ts";
import { chaosPoint } from "./chaos.ts";
import { isRunning } from "./processes.ts";
import type { Sandbox } from "./sandbox.ts";

export class LocalCompute implements ComputeProvider {
  readonly kind = "local";
  constructor(
    private readonly sandbox: Sandbox,
    private readonly credentials: { password?: string | undefined; username?: string | undefined } = {},
  ) {}

  async launch(req: LaunchRequest, signal: AbortSignal): Promise<Machine> {
    if (req.role === "app") throw new ProviderError("the sandbox does not launch app machines", false);
    signal.throwIfAborted();
    const address = await this.sandbox.allocateAddress(req.role);
    await chaosPoint("allocated", `${req.host} at ${address}`);
    const m = await this.sandbox.createMachine(req.host, req.role, address);
    await chaosPoint("recorded", `${m.id} at ${address}`);
    return this.ready(m, req, signal);
  }

  /** Starts each Redis server of the machine that is not running yet (a launch interrupted between two of them). */
  async ready(machine: Machine, req: LaunchRequest, signal: AbortSignal): Promise<Machine> {
    signal.throwIfAborted();
    const m = this.sandbox.read().machines.find((x) => x.id === machine.id && x.status === "running");
    if (!m) throw new ProviderError(`machine ${machine.id} (${machine.host}) is not running in the sandbox`, true);
    if (req.role === "redis") {
      for (const port of req.ports ?? []) {
        if (!m.processes.some((p) => p.kind === "redis" && p.port === port && isRunning(p))) await this.sandbox.startRedis(m, port, this.credentials);
      }
    }
    return { id: m.id, host: m.host, role: m.role, address: m.address };
  }

  async terminate(machine: Machine, signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    const rec = this.sandbox.read().machines.find((m) => m.id === machine.id);
    if (!rec || rec.topology !== this.sandbox.topologyName || rec.host !== machine.host) {
      throw new ProviderError(
        `refusing to terminate ${machine.id} (${machine.host}): it is not a machine of topology '${this.sandbox.topologyName}'`,
        false,
      );
    }
    await this.sandbox.terminate(rec.id, "SIGKILL");
  }

  async find(host: string): Promise<Machine | null> {
    const m = this.sandbox.machineOf(host);
    return m ? { id: m.id, host: m.host, role: m.role, address: m.address } : null;
  }
}

export class LocalDns implements DnsProvider {
  constructor(private readonly sandbox: Sandbox) {}
  async upsert(name: string, address: string, signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
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
