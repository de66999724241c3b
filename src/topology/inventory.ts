/**
 * Where each declared host lives now. The config gives the first address; a replacement machine gets a new one.
 * The daemon persists this (state dir) so a restart knows that redis1 is now at 127.0.1.11.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync, openSync, fsyncSync, closeSync } from "node:fs";
import { dirname } from "node:path";
import type { Topology } from "./topology.ts";

export interface Placement {
  readonly host: string;
  readonly address: string;
  /** The provider's machine id, when known. */
  readonly machineId?: string | undefined;
  /** How many times this host was replaced. */
  readonly generation: number;
}

export class Inventory {
  private readonly placements = new Map<string, Placement>();

  constructor(
    readonly topology: Topology,
    initial?: Iterable<Placement>,
  ) {
    for (const h of topology.hosts.values()) this.placements.set(h.name, { host: h.name, address: h.address, generation: 0 });
    for (const p of initial ?? []) if (topology.hosts.has(p.host)) this.placements.set(p.host, p);
  }

  addressOf(host: string): string {
    const p = this.placements.get(host);
    if (!p) throw new Error(`unknown host '${host}'`);
    return p.address;
  }

  get(host: string): Placement {
    const p = this.placements.get(host);
    if (!p) throw new Error(`unknown host '${host}'`);
    return p;
  }

  /** Records a replacement machine for `host`. */
  place(host: string, address: string, machineId?: string): Placement {
    const prev = this.get(host);
    const next = { host, address, machineId, generation: prev.address === address ? prev.generation : prev.generation + 1 };
    this.placements.set(host, next);
    return next;
  }

  all(): Placement[] {
    return [...this.placements.values()];
  }

  snapshot(): Record<string, Placement> {
    return Object.fromEntries(this.placements);
  }

  /** Loads placements saved by `save`; a missing file means every host is where the config says. */
  static load(topology: Topology, file: string): Inventory {
    let saved: Placement[] = [];
    try {
      const data = JSON.parse(readFileSync(file, "utf8")) as { topology?: string; placements?: Placement[] };
      if (data.topology === topology.name && Array.isArray(data.placements)) saved = data.placements;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw new Error(`cannot read ${file}: ${(e as Error).message}`);
    }
    return new Inventory(topology, saved);
  }

  /** Atomically replaces the file (write, fsync, rename). */
  save(file: string): void {
    writeFileAtomic(file, `${JSON.stringify({ topology: this.topology.name, placements: this.all() }, null, 2)}\n`);
  }
}

/** Replaces `file` atomically (write, fsync, rename). State and configs may hold secrets: owner-only by default. */
export function writeFileAtomic(file: string, text: string, mode = 0o600): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode });
  const fd = openSync(tmp, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}
