/**
 * The HAProxy check: its Runtime API answers `show servers state` (whose rows are also a witness for every backend
 * server), and every frontend accepts a connection. Both under the check timeout.
 */
import type { HaproxyAdminClient } from "../admin/haproxy.ts";
import { withDeadline } from "../admin/redis.ts";
import { canConnect } from "../admin/tcp.ts";
import { ProbeError } from "../errors.ts";
import type { HaproxyObservation } from "./observation.ts";

export interface HaproxyTarget {
  readonly host: string;
  readonly role: "haproxy" | "app";
  readonly address: string;
  readonly frontendPorts: readonly number[];
}

export async function checkHaproxy(
  target: HaproxyTarget,
  admin: HaproxyAdminClient,
  timeoutMs: number,
  now: () => number = Date.now,
): Promise<HaproxyObservation> {
  const at = now();
  const base = { type: "haproxy" as const, target: target.host, ...target, at };
  try {
    const [states, open] = await withDeadline(
      Promise.all([
        admin.showServersState(),
        Promise.all(target.frontendPorts.map((p) => canConnect(target.address, p, timeoutMs))),
      ]),
      timeoutMs,
      `check of HAProxy ${target.host}`,
    );
    const closedFrontends = target.frontendPorts.filter((_, i) => !open[i]);
    const servers = states.map((s) => ({
      backend: s.backend,
      server: s.server,
      address: s.address,
      port: s.port,
      up: s.isUp,
      maint: s.inMaint,
      ...(s.inDrain ? { drain: true } : {}),
    }));
    const ok = closedFrontends.length === 0;
    return {
      ...base,
      ok,
      latencyMs: now() - at,
      closedFrontends,
      servers,
      ...(ok ? {} : { failure: { kind: "refused" as const, message: `frontend ${closedFrontends.join(", ")} does not accept connections` } }),
    };
  } catch (e) {
    const err = e instanceof ProbeError ? e : new ProbeError("protocol", (e as Error).message);
    return { ...base, ok: false, latencyMs: now() - at, closedFrontends: [], servers: [], failure: { kind: err.kind, message: err.message } };
  }
}
