import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ErrorCode } from '../../protocol/index.js';
import { ServiceError } from '../errors.js';
import { SlotScheduler } from '../scheduling/slot-scheduler.js';
import type { TokenizeJob, TokenizeResult } from './tokenizer-messages.js';

export interface PromptTokenizerOptions {
  /** Prompts up to this many characters are tokenized on the calling thread (a few ms at most). */
  inlineMaxChars: number;
  /** Prompts that may wait for the worker; one more is refused with `overloaded`. */
  maxQueue: number;
  /** Prompts one owner may have waiting, so a flood from a few cannot fill the queue for all. */
  maxQueuedPerOwner: number;
  /** Longest wait for the worker before `queue_timeout`. */
  queueTimeoutMs: number;
  /** The worker exits after this long without a job, giving its memory back. */
  idleMs: number;
}

/** A model file as the tokenizer needs it. */
export interface TokenizerModel {
  path: string;
  fingerprint: string;
  /** Tokenizes on the calling thread (synchronous native work). */
  tokenizeInline(text: string): number[];
}

interface Pending {
  resolve: (tokens: Uint32Array) => void;
  reject: (error: Error) => void;
}

/**
 * Starts the worker: the compiled `.js` beside this file, or, when running from source (tsx,
 * vitest), the `.ts` file behind tsx's loader, registered inside the worker itself because a
 * worker does not inherit the parent's loader hooks.
 */
function spawnWorker(): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./tokenizer-worker.js', import.meta.url));
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx/esm/api').replace(/\.cjs$/, '.mjs')).href;
  const entry = new URL('./tokenizer-worker.ts', import.meta.url).href;
  const bootstrap = `import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(entry)}); })`;
  return new Worker(bootstrap, { eval: true });
}

/**
 * Tokenizes prompts without holding the event loop: short ones inline, long ones in a worker
 * thread that loads each vocabulary once. Long prompts wait for the worker in a queue that is fair
 * across owners (connections), so one client's flood of long prompts cannot delay another's.
 * The worker starts on the first long prompt and exits when idle.
 */
export class PromptTokenizer {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextJobId = 0;
  private idleTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly lane: SlotScheduler<true>;
  private closed = false;

  constructor(private readonly options: PromptTokenizerOptions) {
    this.lane = new SlotScheduler([true], { maxQueue: options.maxQueue, maxQueuedPerOwner: options.maxQueuedPerOwner, queueTimeoutMs: options.queueTimeoutMs });
  }

  /** Jobs waiting for the worker (for metrics and tests). */
  get queued(): number {
    return this.lane.queued;
  }

  /** True while the worker thread runs. */
  get workerRunning(): boolean {
    return this.worker !== undefined;
  }

  /** True when `text` is short enough to be tokenized on the calling thread. */
  isInline(text: string): boolean {
    return text.length <= this.options.inlineMaxChars;
  }

  /** Tokenizes `text` (without BOS); rejects with the signal's reason if it aborts while waiting. */
  async tokenize(model: TokenizerModel, text: string, owner: string, signal: AbortSignal): Promise<number[]> {
    if (this.isInline(text)) return model.tokenizeInline(text);
    if (this.closed) throw new ServiceError(ErrorCode.shuttingDown, 'the server is shutting down');
    const lease = await this.lane.acquire({ owner, signal });
    try {
      const tokens = await this.runInWorker({ id: ++this.nextJobId, path: model.path, fingerprint: model.fingerprint, text });
      if (signal.aborted) throw signal.reason;
      return Array.from(tokens);
    } finally {
      lease.release();
      this.armIdleTimer();
    }
  }

  /** Stops the worker; later long prompts are refused. */
  async close(): Promise<void> {
    this.closed = true;
    this.lane.close(new ServiceError(ErrorCode.shuttingDown, 'the server is shutting down'));
    clearTimeout(this.idleTimer);
    await this.stopWorker();
  }

  private runInWorker(job: TokenizeJob): Promise<Uint32Array> {
    const worker = this.startWorker();
    clearTimeout(this.idleTimer);
    return new Promise((resolve, reject) => {
      this.pending.set(job.id, { resolve, reject });
      worker.postMessage(job);
    });
  }

  private startWorker(): Worker {
    if (this.worker) return this.worker;
    const worker = spawnWorker();
    worker.on('message', (result: TokenizeResult) => {
      const pending = this.pending.get(result.id);
      if (!pending) return;
      this.pending.delete(result.id);
      if (result.ok) pending.resolve(result.tokens);
      else pending.reject(new ServiceError(ErrorCode.internal, `tokenizing the prompt failed: ${result.message}`));
    });
    // A worker that dies fails its jobs; the next long prompt starts a fresh one.
    const lost = (reason: string): void => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      for (const pending of this.pending.values()) pending.reject(new ServiceError(ErrorCode.internal, `the tokenizer worker stopped: ${reason}`));
      this.pending.clear();
    };
    worker.on('error', (error) => lost(error.message));
    worker.on('exit', (code) => lost(`exit code ${code}`));
    this.worker = worker;
    return worker;
  }

  private armIdleTimer(): void {
    clearTimeout(this.idleTimer);
    if (this.closed || this.lane.busy > 0 || this.lane.queued > 0) return;
    this.idleTimer = setTimeout(() => void this.stopWorker(), this.options.idleMs);
    this.idleTimer.unref();
  }

  private async stopWorker(): Promise<void> {
    const worker = this.worker;
    if (!worker) return;
    this.worker = undefined;
    for (const pending of this.pending.values()) pending.reject(new ServiceError(ErrorCode.shuttingDown, 'the tokenizer stopped'));
    this.pending.clear();
    await worker.terminate();
  }
}
