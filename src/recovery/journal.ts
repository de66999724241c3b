/**
 * The recovery journal: an append-only record of every recovery and step, written (and fsynced) before the runner
 * moves on. A daemon that restarts reads it and resumes an unfinished recovery instead of starting a second one.
 *
 * `Journal` is the interface; `FileJournal` keeps JSON lines in the state directory. A later implementation keeps
 * the same records in etcd so the next leader resumes what the last one began.
 */
import { closeSync, fstatSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { FailoverdError } from "../errors.ts";

export type RecoveryOutcome = "succeeded" | "rolled-back" | "failed";

/** Who asked for a recovery: the decider (a diagnosis), an operator, a drill. */
export type RecoveryTrigger = "diagnosis" | "operator" | "drill";

/** An operator's control, journaled with who and why (an expiry is journaled by failoverd itself). */
export type ControlAction = "pause" | "resume" | "pause-expired" | "maintenance" | "maintenance-end" | "maintenance-expired";

export type JournalRecord =
  | {
      readonly type: "recovery-start";
      readonly id: string;
      readonly at: number;
      readonly playbook: string;
      readonly host: string;
      readonly diagnosis: string;
      /** When the fault was first seen (the first failed check). */
      readonly failingSince?: number | undefined;
      /** The failed servers the diagnosis named (re-checked before the point of no return). */
      readonly targets?: readonly string[] | undefined;
      /** An operator accepted that the promotion may lose data (`failoverd promote --accept-data-loss`). */
      readonly acceptDataLoss?: boolean | undefined;
      /** Who asked: an operator's name, a drill, or the daemon's own diagnosis. */
      readonly by?: string | undefined;
      readonly dryRun?: boolean;
      /** Who asked for it (absent in journals written before issue 14: the decider). */
      readonly origin?: RecoveryTrigger;
      readonly reason?: string;
    }
  | {
      readonly type: "step-start";
      readonly id: string;
      readonly at: number;
      readonly step: string;
      readonly attempt: number;
      /**
       * Written ahead, with the recovery's start, for a step before the point of no return (see the runner's
       * RunJournal.plan): it may start once the steps before it ended, without a write of its own. Not shown as
       * started until it has an end (which says when it really started).
       */
      readonly ahead?: boolean;
    }
  | {
      readonly type: "step-end";
      readonly id: string;
      readonly at: number;
      readonly step: string;
      readonly ok: boolean;
      readonly result?: unknown;
      readonly error?: string;
      /** When a step whose start was written ahead really started. */
      readonly startedAt?: number;
    }
  | { readonly type: "rollback"; readonly id: string; readonly at: number; readonly step: string; readonly ok: boolean; readonly error?: string }
  | { readonly type: "recovery-end"; readonly id: string; readonly at: number; readonly outcome: RecoveryOutcome; readonly error?: string }
  | {
      readonly type: "control";
      readonly id: string;
      readonly at: number;
      readonly action: ControlAction;
      readonly by: string;
      readonly host?: string;
      readonly reason?: string;
      /** When the pause or maintenance ends by itself. */
      readonly until?: number;
    };

export interface Journal {
  /**
   * Appends a record durably: when the promise resolves the record survives a crash. Throws JournalWriteError when it
   * cannot (the record is then not in the journal, not even in part).
   */
  append(record: JournalRecord): Promise<void>;
  /**
   * Appends several records at once, in their order, atomically: when the promise resolves all of them survive a
   * crash; when it throws none is in the journal (JournalWriteError, or the journal's own refusal as for `append`).
   * One write where the records one by one would cost one each (an fsync, a fenced etcd transaction): the runner
   * writes a step's end with the next step's start.
   */
  appendAll(records: readonly JournalRecord[]): Promise<void>;
  /** Every record, oldest first. Throws JournalCorruptError on a record that cannot be read. */
  read(): Promise<JournalRecord[]>;
  /**
   * Whether a record could be written now, without writing one: resolves when it could, throws JournalWriteError
   * when not. Optional: a journal without it is known writable again only at its next successful append.
   */
  probe?(): Promise<void>;
}

export class JournalCorruptError extends FailoverdError {
  override name = "JournalCorruptError";
}

/** The journal cannot be written (a full disk, an I/O error, a read-only file system): failoverd must not act. */
export class JournalWriteError extends FailoverdError {
  override name = "JournalWriteError";
  constructor(
    readonly path: string,
    /** The errno name (ENOSPC, EIO, EROFS...), when the system gave one. */
    readonly code: string | undefined,
    reason: string,
  ) {
    super(`cannot write the journal ${path}: ${reason}`);
  }

  static of(path: string, e: unknown): JournalWriteError {
    const err = e as NodeJS.ErrnoException;
    // Node's message is "ENOSPC: no space left on device, write": the errno and its meaning, without the syscall.
    const reason = typeof err?.message === "string" ? (err.message.split(",")[0] ?? err.message) : String(e);
    return new JournalWriteError(path, typeof err?.code === "string" ? err.code : undefined, reason);
  }
}

export class FileJournal implements Journal {
  /** The last read, kept while the file's size and mtime stay the same: the status page asks every 2 s. */
  private cache: { size: number; mtimeMs: number; records: JournalRecord[] } | null = null;

  constructor(readonly path: string) {}

  append(record: JournalRecord): Promise<void> {
    return this.appendAll([record]);
  }

  /** One write and one fsync of all the lines; a write the disk takes only in part is cut off again whole. */
  async appendAll(records: readonly JournalRecord[]): Promise<void> {
    if (records.length === 0) return;
    const lines = Buffer.from(records.map((r) => `${JSON.stringify(r)}\n`).join(""));
    let fd: number;
    try {
      mkdirSync(dirname(this.path), { recursive: true });
      fd = openSync(this.path, "a", 0o600);
    } catch (e) {
      throw JournalWriteError.of(this.path, e);
    }
    let size = -1;
    try {
      size = fstatSync(fd).size;
      // A full disk may take part of the lines: that part is cut off again, so no record, whole or half, is left of
      // a write that failed.
      const written = writeSync(fd, lines);
      if (written < lines.length) throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
      fsyncSync(fd);
    } catch (e) {
      if (size >= 0) {
        try {
          ftruncateSync(fd, size);
        } catch {
          // Nothing more to do: the next read reports a half line as corrupt, and failoverd does not act blindly.
        }
      }
      throw JournalWriteError.of(this.path, e);
    } finally {
      closeSync(fd);
    }
  }

  /** Writes and fsyncs a page beside the journal, then removes it: a full or read-only disk refuses it. */
  async probe(): Promise<void> {
    const probe = `${this.path}.probe`;
    try {
      mkdirSync(dirname(this.path), { recursive: true });
      const fd = openSync(probe, "w", 0o600);
      try {
        if (writeSync(fd, Buffer.alloc(4096)) < 4096) throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    } catch (e) {
      throw JournalWriteError.of(this.path, e);
    } finally {
      try {
        rmSync(probe, { force: true });
      } catch {
        // Nothing was made where nothing can be.
      }
    }
  }

  async read(): Promise<JournalRecord[]> {
    let text: string;
    let size: number;
    let mtimeMs: number;
    try {
      ({ size, mtimeMs } = statSync(this.path));
      if (this.cache && this.cache.size === size && this.cache.mtimeMs === mtimeMs) return [...this.cache.records];
      text = readFileSync(this.path, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw new JournalCorruptError(`cannot read the journal ${this.path}: ${(e as Error).message}`);
    }
    const out: JournalRecord[] = [];
    const lines = text.split("\n");
    for (const [i, line] of lines.entries()) {
      if (line.trim() === "") continue;
      let rec: unknown;
      try {
        rec = JSON.parse(line);
      } catch {
        rec = undefined;
      }
      if (!isRecord(rec)) {
        throw new JournalCorruptError(
          `the journal ${this.path} is corrupt at line ${i + 1}: failoverd will not act blindly. ` +
            "Check the topology by hand (failoverd status), then move the journal aside to start afresh",
        );
      }
      out.push(rec);
    }
    this.cache = { size, mtimeMs, records: out };
    return [...out];
  }
}

export class MemoryJournal implements Journal {
  readonly records: JournalRecord[] = [];
  append(record: JournalRecord): Promise<void> {
    return this.appendAll([record]);
  }
  async appendAll(records: readonly JournalRecord[]): Promise<void> {
    this.records.push(...records);
  }
  async read(): Promise<JournalRecord[]> {
    return [...this.records];
  }
}

const TYPES = new Set(["recovery-start", "step-start", "step-end", "rollback", "recovery-end", "control"]);

function isRecord(r: unknown): r is JournalRecord {
  if (typeof r !== "object" || r === null) return false;
  const o = r as Record<string, unknown>;
  return typeof o["type"] === "string" && TYPES.has(o["type"]) && typeof o["id"] === "string" && typeof o["at"] === "number";
}

export interface RecoverySummary {
  readonly id: string;
  readonly playbook: string;
  readonly host: string;
  readonly diagnosis: string;
  readonly startedAt: number;
  readonly failingSince?: number | undefined;
  readonly targets?: readonly string[] | undefined;
  readonly acceptDataLoss?: boolean | undefined;
  readonly by?: string | undefined;
  readonly origin: RecoveryTrigger;
  readonly reason?: string;
  readonly endedAt?: number;
  readonly outcome?: RecoveryOutcome;
  readonly error?: string;
  /** Steps that ended well, with the result each journaled (a launched machine, promoted servers...). */
  readonly completed: ReadonlyMap<string, unknown>;
  readonly steps: readonly { step: string; startedAt: number; endedAt?: number; ok?: boolean; error?: string; attempts: number }[];
  readonly dryRun: boolean;
}

/** Folds the records into one summary per recovery, oldest first. */
export function summarize(records: readonly JournalRecord[]): RecoverySummary[] {
  const byId = new Map<string, RecoverySummary & { completed: Map<string, unknown>; steps: RecoverySummary["steps"][number][] }>();
  // Starts written ahead, per recovery and step: shown only once the step has an end (else it may never have run).
  const ahead = new Map<string, number>();
  for (const r of records) {
    if (r.type === "recovery-start") {
      byId.set(r.id, {
        id: r.id,
        playbook: r.playbook,
        host: r.host,
        diagnosis: r.diagnosis,
        startedAt: r.at,
        failingSince: r.failingSince,
        ...(r.targets ? { targets: r.targets } : {}),
        ...(r.acceptDataLoss ? { acceptDataLoss: true } : {}),
        ...(r.by ? { by: r.by } : {}),
        origin: r.origin ?? "diagnosis",
        ...(r.reason !== undefined ? { reason: r.reason } : {}),
        completed: new Map(),
        steps: [],
        dryRun: r.dryRun === true,
      });
      continue;
    }
    if (r.type === "control") continue;
    const s = byId.get(r.id);
    if (!s) continue;
    if (r.type === "step-start") {
      if (r.ahead === true) {
        ahead.set(`${r.id}\n${r.step}`, r.at);
        continue;
      }
      ahead.delete(`${r.id}\n${r.step}`);
      const last = s.steps[s.steps.length - 1];
      if (last && last.step === r.step && last.endedAt === undefined) last.attempts = r.attempt;
      else s.steps.push({ step: r.step, startedAt: r.at, attempts: r.attempt });
    } else if (r.type === "step-end") {
      const key = `${r.id}\n${r.step}`;
      const early = ahead.get(key);
      if (early !== undefined) {
        ahead.delete(key);
        s.steps.push({ step: r.step, startedAt: r.startedAt ?? early, attempts: 1 });
      }
      const st = [...s.steps].reverse().find((x) => x.step === r.step);
      if (st) {
        st.endedAt = r.at;
        st.ok = r.ok;
        if (r.error !== undefined) st.error = r.error;
      }
      if (r.ok) s.completed.set(r.step, r.result);
    } else if (r.type === "rollback") {
      if (r.ok) s.completed.delete(r.step);
    } else if (r.type === "recovery-end") {
      byId.set(r.id, { ...s, endedAt: r.at, outcome: r.outcome, ...(r.error !== undefined ? { error: r.error } : {}) });
    }
  }
  return [...byId.values()];
}

/** The recovery that was started and never ended, if any. */
export function unfinished(records: readonly JournalRecord[]): RecoverySummary[] {
  return summarize(records).filter((s) => s.outcome === undefined && !s.dryRun);
}
