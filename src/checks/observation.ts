/**
 * Observations: immutable records of what one check saw. They keep the evidence (refused, timeout, error reply,
 * wrong role) because the detector weighs a refusal confirmed by witnesses differently from a timeout.
 */
import type { ProbeFailureKind } from "../errors.ts";

export interface ProbeFailure {
  readonly kind: ProbeFailureKind;
  readonly message: string;
}

export interface RedisObservation {
  readonly type: "redis";
  /** `redis1:9001`: host name and port, stable across replacements. */
  readonly target: string;
  readonly host: string;
  readonly port: number;
  readonly address: string;
  readonly at: number;
  readonly ok: boolean;
  readonly latencyMs: number;
  readonly failure?: ProbeFailure;
  readonly role?: "primary" | "replica";
  /** master_repl_offset on a primary, slave_repl_offset on a replica. */
  readonly offset?: number;
  /** The server process's identity (INFO server run_id, read once per connection): a new one means a restart. */
  readonly runId?: string;
  /** master_replid: the replication history the dataset belongs to (a primary restarted empty starts a new one). */
  readonly replid?: string;
  /** master_replid2: the history a promoted replica continued (a promotion keeps the old id here). */
  readonly replid2?: string;
  /** Keys in every database (INFO keyspace). */
  readonly keys?: number;
  /** A replica's primary, as it reports it. */
  readonly primaryAddress?: string;
  readonly primaryPort?: number;
  /** A replica: master_link_status is up and no sync is in progress. */
  readonly linkUp?: boolean;
  readonly syncing?: boolean;
  /**
   * A replica: seconds its link has been down (master_link_down_since_seconds), -1 when it has never completed a sync
   * since it was (re)started or re-pointed (Redis resets it then). Absent while the link is up.
   */
  readonly linkDownSeconds?: number;
  /** A primary: the replicas connected to it (address:port -> offset, online or not). */
  readonly replicas?: readonly { address: string; port: number; offset: number; online: boolean; lag: number }[];
}

export interface HaproxyServerView {
  readonly backend: string;
  readonly server: string;
  readonly address: string;
  readonly port: number;
  readonly up: boolean;
  readonly maint: boolean;
  /** Drained: no new connection goes to it (failoverd's fence of a primary whose process may have restarted). */
  readonly drain?: boolean;
}

export interface HaproxyObservation {
  readonly type: "haproxy";
  /** The HAProxy (or app-side HAProxy) host name. */
  readonly target: string;
  readonly host: string;
  readonly role: "haproxy" | "app";
  readonly address: string;
  readonly at: number;
  readonly ok: boolean;
  readonly latencyMs: number;
  readonly failure?: ProbeFailure;
  /** Frontend ports that did not accept a connection. */
  readonly closedFrontends: readonly number[];
  /** Its view of each backend server: a witness for the servers behind it. */
  readonly servers: readonly HaproxyServerView[];
}

export type Observation = RedisObservation | HaproxyObservation;
