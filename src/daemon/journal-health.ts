/**
 * Whether the journal can be written: the precondition of every recovery. `WatchedJournal` passes every record to
 * the real journal and remembers whether the last write failed. A failure (a full disk, an I/O error, a read-only
 * file system) is logged as one clear error naming the path and the errno, again once a minute while it lasts, and
 * its end once; the metrics, /healthz and the status page read `fault`. While it lasts the journal is probed every few
 * seconds, so the fault ends when the disk does even if no recovery tries to write.
 */
import { errorMessage } from "../errors.ts";
import type { Logger } from "../log.ts";
import { type Journal, type JournalRecord, JournalWriteError } from "../recovery/journal.ts";

export interface JournalFault {
  /** The journal's file, when it has one. */
  readonly path?: string;
  /** The errno name: ENOSPC, EIO, EROFS... */
  readonly code?: string;
  /** One line: what cannot be written, and why. */
  readonly error: string;
  /** The first failure of this run of failures. */
  readonly since: number;
}

const LOG_EVERY_MS = 60_000;

export class WatchedJournal implements Journal {
  private current: JournalFault | null = null;
  private loggedAt = 0;
  private probing: NodeJS.Timeout | null = null;

  constructor(
    private readonly inner: Journal,
    private readonly log: Logger,
    private readonly now: () => number,
    /** While it fails, how often the journal is probed (a fault must end even when no recovery tries to write). */
    private readonly probeEveryMs = 5000,
  ) {}

  /** Stops probing (the daemon stops). */
  close(): void {
    if (this.probing) clearInterval(this.probing);
    this.probing = null;
  }

  /** Why the last write failed; null while the journal can be written. */
  get fault(): JournalFault | null {
    return this.current;
  }

  append(record: JournalRecord): Promise<void> {
    return this.watch(() => this.inner.append(record));
  }

  appendAll(records: readonly JournalRecord[]): Promise<void> {
    return this.watch(() => this.inner.appendAll(records));
  }

  /** Remembers whether the write failed, and why. */
  private async watch(write: () => Promise<void>): Promise<void> {
    try {
      await write();
    } catch (e) {
      if (e instanceof JournalWriteError) this.failed(e);
      throw e;
    }
    this.recovered();
  }

  read(): Promise<JournalRecord[]> {
    return this.inner.read();
  }

  private failed(e: JournalWriteError): void {
    const now = this.now();
    const first = this.current === null;
    if (first && this.inner.probe && !this.probing) {
      const probe = this.inner.probe.bind(this.inner);
      this.probing = setInterval(() => {
        probe().then(
          () => this.recovered(),
          (err: unknown) => err instanceof JournalWriteError && this.current && this.failed(err),
        );
      }, this.probeEveryMs);
      this.probing.unref();
    }
    this.current ??= { path: e.path, ...(e.code ? { code: e.code } : {}), error: e.message, since: now };
    this.current = { ...this.current, error: e.message };
    if (!first && now - this.loggedAt < LOG_EVERY_MS) return;
    this.loggedAt = now;
    const lasting = first ? "" : ` (for ${Math.round((now - this.current.since) / 1000)} s)`;
    this.log.error(
      { path: e.path, code: e.code, err: errorMessage(e) },
      `${e.message}${lasting}: failoverd observes but starts no recovery until it can write its journal`,
    );
  }

  private recovered(): void {
    const f = this.current;
    if (!f) return;
    this.current = null;
    this.close();
    this.log.info({ path: f.path }, `the journal ${f.path ?? ""} can be written again after ${Math.round((this.now() - f.since) / 1000)} s: failoverd acts again`);
  }
}
