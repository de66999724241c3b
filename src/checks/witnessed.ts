/**
 * Which down targets a witness that still answers this monitor confirms down (pure, no I/O). The mass-failure rule
 * counts only the others: a target that an answering HAProxy, replica, primary or app-side HAProxy also sees down is
 * evidence of a fault in the fleet, not that the monitor's own network is cut (a monitor cut off reaches no witness).
 *
 * A Redis server is confirmed by an answering HAProxy that marks it down (not in maint: a fenced server is not
 * checked), by its twin replicating from it with the link down, or by its twin as primary without it connected. An
 * HAProxy is confirmed by an answering app-side HAProxy that names it as a server and marks it down.
 */
import type { DetectorInput } from "./detector.ts";
import type { HaproxyObservation, RedisObservation } from "./observation.ts";

export function witnessedDown(input: DetectorInput): Set<string> {
  const out = new Set<string>();
  const answering = (name: string): HaproxyObservation | undefined => {
    const o = input.health.get(name)?.last;
    return o?.type === "haproxy" && o.ok ? o : undefined;
  };
  const isDown = (target: string) => input.health.get(target)?.status === "down";
  // Every answering HAProxy's view, indexed once: `host:port` -> marked down somewhere.
  const markedDown = new Set<string>();
  for (const h of input.topology.haproxyHosts) {
    for (const s of answering(h.name)?.servers ?? []) if (!s.up && !s.maint) markedDown.add(`${s.server}:${s.port}`);
  }
  for (const pair of input.topology.pairs) {
    for (const [host, twin] of [pair.hosts, [pair.hosts[1], pair.hosts[0]] as const]) {
      const address = input.addressOf(host);
      for (const port of pair.ports) {
        const target = `${host}:${port}`;
        if (!isDown(target)) continue;
        const t = input.health.get(`${twin}:${port}`)?.last as RedisObservation | undefined;
        const twinSays =
          t?.type === "redis" &&
          t.ok &&
          ((t.role === "replica" && t.primaryAddress === address && t.linkUp === false) ||
            (t.role === "primary" && !t.replicas?.some((r) => r.address === address && r.port === port && r.online)));
        if (twinSays || markedDown.has(target)) out.add(target);
      }
    }
  }
  for (const h of input.topology.haproxyHosts) {
    if (!isDown(h.name)) continue;
    const address = input.addressOf(h.name);
    const confirmed = input.topology.appHosts.some(
      (a) => a.upstreams.includes(h.name) && answering(a.name)?.servers.some((s) => s.server === h.name && s.address === address && !s.up && !s.maint),
    );
    if (confirmed) out.add(h.name);
  }
  return out;
}
