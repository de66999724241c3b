/**
 * One verdict per pair and per port, for the people on call: "writes OK" or "writes DOWN", and since when. A
 * subscriber of the daemon's observations (the daemon core keeps no such memory): a port takes writes while one of
 * its servers answered its last check as primary; the verdict's `since` is the moment that last changed (for DOWN,
 * the first failed check of the primary), so a failover shows as DOWN from the crash to the promotion, then OK from
 * the promotion on, whatever the servers' own uptime.
 */
import type { DaemonEvents } from "../daemon/events.ts";
import type { Topology } from "../topology/topology.ts";

export interface PortVerdict {
  readonly port: number;
  readonly writes: "OK" | "DOWN";
  readonly since: number;
  /** The server taking writes (host), when there is one. */
  readonly primary: string | null;
  /** Why, when DOWN; a warning (two primaries, no replica in sync) when OK. */
  readonly detail?: string;
}

export interface PairVerdict {
  readonly hosts: readonly [string, string];
  readonly writes: "OK" | "DOWN";
  /** OK: since every port took writes again; DOWN: since the first port stopped. */
  readonly since: number;
  readonly ports: readonly PortVerdict[];
}

interface Seen {
  readonly ok: boolean;
  readonly at: number;
  readonly role?: "primary" | "replica";
  readonly linkUp?: boolean;
}

export class WriteVerdicts {
  /** Per target (`redis1:9001`): its last check. */
  private readonly seen = new Map<string, Seen>();
  /** Per `pairIndex:port`: the verdict and since when. */
  private readonly verdicts = new Map<string, { writes: "OK" | "DOWN"; since: number }>();
  private readonly unsubscribe: () => void;

  constructor(
    source: { readonly events: { on<K extends keyof DaemonEvents>(name: K, fn: (e: DaemonEvents[K]) => void): () => void } },
    private readonly topology: () => Topology,
  ) {
    this.unsubscribe = source.events.on("observation", ({ observation: o }) => {
      if (o.type !== "redis") return;
      const prev = this.seen.get(o.target);
      // A failed check keeps the role the server last answered with: a dead primary is the port's primary, down.
      const role = o.ok ? o.role : prev?.role;
      this.seen.set(o.target, { ok: o.ok, at: o.at, ...(role ? { role } : {}), ...(o.linkUp !== undefined ? { linkUp: o.linkUp } : {}) });
      const pair = this.topology().pairs.find((p) => p.hosts.includes(o.host));
      if (!pair) return;
      const key = `${pair.index}:${o.port}`;
      const writes = this.evaluate(pair.hosts, o.port).writes;
      const v = this.verdicts.get(key);
      if (v?.writes === writes) return;
      // Writes stopped with the primary's first failed check; they started again with the promoted server's first answer.
      this.verdicts.set(key, { writes, since: o.at });
    });
  }

  /** The verdicts now, per pair of the topology. */
  list(): PairVerdict[] {
    return this.topology().pairs.map((p) => {
      const ports = p.ports.map((port): PortVerdict => {
        const e = this.evaluate(p.hosts, port);
        const since = this.verdicts.get(`${p.index}:${port}`)?.since ?? 0;
        return { port, writes: e.writes, since, primary: e.primary, ...(e.detail ? { detail: e.detail } : {}) };
      });
      const down = ports.filter((x) => x.writes === "DOWN");
      const writes = down.length > 0 ? "DOWN" : "OK";
      const since = down.length > 0 ? Math.min(...down.map((x) => x.since)) : Math.max(0, ...ports.map((x) => x.since));
      return { hosts: p.hosts, writes, since, ports };
    });
  }

  close(): void {
    this.unsubscribe();
  }

  private evaluate(hosts: readonly [string, string], port: number): { writes: "OK" | "DOWN"; primary: string | null; detail?: string } {
    const servers = hosts.map((h) => ({ host: h, s: this.seen.get(`${h}:${port}`) }));
    const primaries = servers.filter((x) => x.s?.ok && x.s.role === "primary");
    if (primaries.length === 0) {
      const dead = servers.find((x) => x.s?.role === "primary" && !x.s.ok);
      const detail = dead ? `${dead.host}:${port}, its primary, does not answer` : servers.every((x) => !x.s) ? "not checked yet" : "no server answers as primary";
      return { writes: "DOWN", primary: null, detail };
    }
    if (primaries.length > 1) return { writes: "OK", primary: primaries[0]!.host, detail: "two primaries: split brain" };
    const replica = servers.find((x) => x !== primaries[0]);
    const detail = !replica?.s?.ok ? "no replica: a second failure loses writes" : replica.s.linkUp === false ? "the replica's link is down" : undefined;
    return { writes: "OK", primary: primaries[0]!.host, ...(detail ? { detail } : {}) };
  }
}
