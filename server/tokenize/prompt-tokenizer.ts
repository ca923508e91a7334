import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { SpecialTokensText, type LlamaText } from 'node-llama-cpp';
import { ErrorCode } from '../../protocol/index.js';
import { ServiceError } from '../errors.js';
import { SlotScheduler } from '../scheduling/slot-scheduler.js';
import type { StopRequest, TokenizeResult, TokenizerWorkerData, WorkerJob } from './tokenizer-messages.js';

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
  /** The engine the service loaded, which the worker loads too (default: ENGINE_BUILD=auto on the CPU). */
  engine?: TokenizerWorkerData;
}

/** A model file as the tokenizer needs it. */
export interface TokenizerModel {
  path: string;
  fingerprint: string;
  /** Tokenizes on the calling thread (synchronous native work). */
  tokenizeInline(text: string): number[];
  /** Tokenizes a rendered chat on the calling thread; needed only for chats. */
  tokenizeChatInline?(text: LlamaText): number[];
}

/** Characters of a prompt: plain text, or a rendered chat (a special token counts as one). */
export function promptLength(text: string | LlamaText): number {
  if (typeof text === 'string') return text.length;
  let length = 0;
  for (const value of text.values) length += typeof value === 'string' ? value.length : value instanceof SpecialTokensText ? value.value.length : 1;
  return length;
}

interface Pending {
  resolve: (answer: Uint32Array | string) => void;
  reject: (error: Error) => void;
}

function chatInline(model: TokenizerModel, text: LlamaText): number[] {
  if (!model.tokenizeChatInline) throw new Error('this tokenizer model cannot tokenize chats');
  return model.tokenizeChatInline(text);
}

/**
 * Starts the worker: the compiled `.js` beside this file, or, when running from source (tsx,
 * vitest), the `.ts` file behind tsx's loader, registered inside the worker itself because a
 * worker does not inherit the parent's loader hooks.
 */
function spawnWorker(workerData: TokenizerWorkerData): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./tokenizer-worker.js', import.meta.url), { workerData });
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx/esm/api').replace(/\.cjs$/, '.mjs')).href;
  const entry = new URL('./tokenizer-worker.ts', import.meta.url).href;
  const bootstrap = `import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(entry)}); })`;
  return new Worker(bootstrap, { eval: true, workerData });
}

/** Longest wait for the worker to free its engine before it is terminated all the same. */
const WORKER_RELEASE_TIMEOUT_MS = 5000;

/**
 * Resolves once the worker freed its node-llama-cpp objects (or exited, or the time is up).
 * Terminating it while it holds them aborted the whole process (`terminate called after throwing
 * an instance of 'Napi::Error'`) in 6 stops of 10 with the prebuilt engine and 8 of 10 with a
 * native build; in none of 10 once they were freed.
 */
function released(worker: Worker): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      worker.off('message', onMessage);
      worker.off('exit', done);
      resolve();
    };
    const onMessage = (message: unknown): void => {
      if (typeof message === 'object' && message !== null && 'stopped' in message) done();
    };
    const timer = setTimeout(done, WORKER_RELEASE_TIMEOUT_MS);
    worker.on('message', onMessage);
    worker.once('exit', done);
    worker.postMessage({ stop: true } satisfies StopRequest);
  });
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
  isInline(text: string | LlamaText): boolean {
    return promptLength(text) <= this.options.inlineMaxChars;
  }

  /**
   * Tokenizes `text` (plain text: without BOS; a rendered chat: with the special tokens it holds);
   * rejects with the signal's reason if it aborts while waiting.
   */
  async tokenize(model: TokenizerModel, text: string | LlamaText, owner: string, signal: AbortSignal): Promise<number[]> {
    if (this.isInline(text)) return typeof text === 'string' ? model.tokenizeInline(text) : chatInline(model, text);
    if (this.closed) throw new ServiceError(ErrorCode.shuttingDown, 'the server is shutting down');
    const lease = await this.lane.acquire({ owner, signal });
    try {
      const tokens = (await this.runInWorker({ id: ++this.nextJobId, path: model.path, fingerprint: model.fingerprint, text: typeof text === 'string' ? text : text.toJSON() })) as Uint32Array;
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

  /**
   * The name (in node-llama-cpp's `chatWrappers`) of the chat wrapper that fits `model`, resolved
   * in the worker: matching a GGUF's Jinja template against the built-in wrappers takes up to seconds.
   */
  async chatWrapperOf(model: Pick<TokenizerModel, 'path' | 'fingerprint'>): Promise<string> {
    if (this.closed) throw new ServiceError(ErrorCode.shuttingDown, 'the server is shutting down');
    try {
      return (await this.runInWorker({ id: ++this.nextJobId, path: model.path, fingerprint: model.fingerprint, chatWrapper: true })) as string;
    } finally {
      this.armIdleTimer();
    }
  }

  private runInWorker(job: WorkerJob): Promise<Uint32Array | string> {
    const worker = this.startWorker();
    clearTimeout(this.idleTimer);
    return new Promise((resolve, reject) => {
      this.pending.set(job.id, { resolve, reject });
      worker.postMessage(job);
    });
  }

  private startWorker(): Worker {
    if (this.worker) return this.worker;
    const worker = spawnWorker(this.options.engine ?? { build: 'auto', backend: 'cpu' });
    worker.on('message', (result: TokenizeResult) => {
      const pending = this.pending.get(result.id);
      if (!pending) return;
      this.pending.delete(result.id);
      if (result.ok) pending.resolve('tokens' in result ? result.tokens : result.chatWrapper);
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
    await released(worker);
    await worker.terminate();
  }
}
