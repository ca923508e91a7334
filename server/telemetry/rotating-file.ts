import { existsSync, mkdirSync, openSync, renameSync, statSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';

/** pino's own asynchronous file writer. */
type SonicBoom = ReturnType<typeof pino.destination>;

export interface RotatingFileOptions {
  /** Path of the live file, e.g. `logs/app.log`. */
  file: string;
  /** A write that would take the live file past this many bytes rotates it first. */
  maxBytes: number;
  /** Rotated files kept beside the live one (`app.log.1` newest … `app.log.N` oldest); 0 keeps none. */
  keep: number;
}

/**
 * A pino destination that rotates by size with a retention count, logrotate style:
 * `app.log` → `app.log.1` → … → `app.log.N`, the oldest deleted. Writes are asynchronous
 * (SonicBoom, pino's own writer); lines are never split across files: the size is counted per
 * line as it is written, and a rotation renames the live file and hands later lines to a fresh
 * writer while the old one finishes its pending writes into the renamed file.
 */
export class RotatingFile {
  private writer: SonicBoom;
  private size: number;
  private readonly retiring = new Set<SonicBoom>();
  private closed = false;

  constructor(private readonly options: RotatingFileOptions) {
    mkdirSync(path.dirname(options.file), { recursive: true });
    this.size = existsSync(options.file) ? statSync(options.file).size : 0;
    this.writer = this.open();
  }

  /** Bytes in the live file, counting writes still pending. */
  get bytes(): number {
    return this.size;
  }

  write(line: string): boolean {
    if (this.closed) return false;
    const bytes = Buffer.byteLength(line);
    if (this.size > 0 && this.size + bytes > this.options.maxBytes) this.rotate();
    this.size += bytes;
    return this.writer.write(line);
  }

  /** Writes everything pending now (used on process exit). */
  flushSync(): void {
    for (const writer of [...this.retiring, this.writer]) {
      try {
        writer.flushSync();
      } catch {
        // not open yet, or a write in flight: it completes on its own
      }
    }
  }

  /** Flushes and closes the files; resolves when every pending line is on disk. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.retiring, this.writer].map((writer) => endWriter(writer)));
  }

  /** Shifts `file.(k)` → `file.(k+1)`, drops the oldest, renames the live file to `file.1`. */
  private rotate(): void {
    const { file, keep } = this.options;
    if (keep === 0) {
      ignoreErrors(() => unlinkSync(file));
    } else {
      ignoreErrors(() => existsSync(`${file}.${keep}`) && unlinkSync(`${file}.${keep}`));
      for (let index = keep - 1; index >= 1; index--) {
        ignoreErrors(() => existsSync(`${file}.${index}`) && renameSync(`${file}.${index}`, `${file}.${index + 1}`));
      }
      // Should this fail (a read-only folder), the fresh writer appends to the same file.
      ignoreErrors(() => renameSync(file, `${file}.1`));
    }
    // The old writer's descriptor follows the renamed file: its pending lines land there.
    const old = this.writer;
    this.retiring.add(old);
    void endWriter(old).finally(() => this.retiring.delete(old));
    this.writer = this.open();
    this.size = 0;
  }

  private open(): SonicBoom {
    // Opened here, synchronously, so the file exists as soon as the writer does (a rotation
    // right after must find it); SonicBoom then writes asynchronously and closes it on end().
    const writer = pino.destination({ dest: openSync(this.options.file, 'a'), sync: false });
    writer.on('error', () => {
      // A full disk or a removed folder must not crash the service; lines are lost until it recovers.
    });
    return writer;
  }
}

function ignoreErrors(action: () => unknown): void {
  try {
    action();
  } catch {
    // best effort: see the caller
  }
}

function endWriter(writer: SonicBoom): Promise<void> {
  return new Promise((resolve) => {
    if ((writer as unknown as { destroyed: boolean }).destroyed) return resolve();
    writer.once('close', () => resolve());
    writer.once('error', () => resolve());
    writer.end();
  });
}
