import { readFileSync } from 'node:fs';

/*
 * What the peer benchmark needs of either server, so every measurement runs the same code on
 * both: start a streamed generation, watch its pieces arrive, cancel it, read the process's memory.
 */

export type SideName = 'ours' | 'theirs';

/** One generation, asked of both servers alike. */
export interface PeerRequest {
  prompt: string;
  maxTokens: number;
  seed: number;
}

/** Sampling both sides use: fixed seeds, the service's defaults (llama-server's other samplers are off by default). */
export const SAMPLING = { temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05 } as const;

/** How a generation ended, as the server reported it. */
export interface PeerOutcome {
  /** Tokens generated (for a cancelled llama-server request: the last count it streamed). */
  tokens: number;
  /** Prompt tokens the server evaluated, when it says. */
  promptTokens: number | undefined;
  reason: string;
}

/** A generation in flight. */
export interface LiveStream {
  /** performance.now() when the request was sent. */
  readonly sentAt: number;
  /** performance.now() at the arrival of each piece of text, in order; grows while it runs. */
  readonly pieceTimes: readonly number[];
  /** Resolves at the first piece with its arrival time; rejects if the stream ends without one. */
  readonly firstPiece: Promise<number>;
  /** Resolves when the server ended it (or, cancelled, when this side stopped listening). */
  readonly done: Promise<PeerOutcome>;
  /** Stops it the way that server's clients do; returns performance.now() when that was done. */
  cancel(): number;
}

/** One running server of either kind. */
export interface PeerServer {
  readonly side: SideName;
  readonly pid: number;
  /** Rejects with ServerDiedError as soon as the process exits on its own; never resolves. */
  readonly died: Promise<never>;
  /** Makes ready at least `lanes` independent clients (connections), one per concurrent stream. */
  prepare(lanes: number): Promise<void>;
  /** Starts a generation on client `lane` (0-based, below what prepare() was given). */
  start(request: PeerRequest, lane: number): LiveStream;
  /** The last lines the process printed, for error reports. */
  outputTail(): string;
  /** Ends the process (gracefully, then by force) and waits for it. */
  stop(): Promise<void>;
}

/** A server process that exited while the benchmark still needed it. */
export class ServerDiedError extends Error {
  override name = 'ServerDiedError';
  constructor(
    readonly side: SideName,
    how: string,
    tail: string,
  ) {
    const lines = tail.split('\n').slice(-12).join('\n');
    super(`${side === 'ours' ? 'this service' : 'llama-server'} exited unexpectedly (${how})${lines ? `; its last output:\n${lines}` : ''}`);
  }
}

/** Resident memory of a process in bytes (VmRSS of /proc/PID/status). */
export function residentBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  if (!match) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}

/** Keeps the last `limit` characters of a process's output. */
export class OutputTail {
  private text = '';
  constructor(private readonly limit = 4000) {}

  push(chunk: Buffer | string): void {
    this.text = (this.text + chunk.toString()).slice(-this.limit);
  }

  toString(): string {
    return this.text.trim();
  }
}

/**
 * Tracks the pieces of one stream: `piece()` records an arrival, `finish()` settles
 * `firstPiece` (rejecting it if nothing came). Both sides' LiveStreams are built on it.
 */
export class PieceClock {
  readonly sentAt = performance.now();
  readonly pieceTimes: number[] = [];
  readonly firstPiece: Promise<number>;
  private settleFirst!: { resolve: (at: number) => void; reject: (error: Error) => void };

  constructor() {
    this.firstPiece = new Promise((resolve, reject) => (this.settleFirst = { resolve, reject }));
    this.firstPiece.catch(() => undefined); // read by some measurements only
  }

  piece(): void {
    const at = performance.now();
    this.pieceTimes.push(at);
    if (this.pieceTimes.length === 1) this.settleFirst.resolve(at);
  }

  finish(error?: Error): void {
    if (this.pieceTimes.length === 0) this.settleFirst.reject(error ?? new Error('the stream ended before its first piece of text'));
  }
}
