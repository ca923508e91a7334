import type { LlamaTextJSON } from 'node-llama-cpp';

/** A prompt sent to the tokenizer worker. */
export interface TokenizeJob {
  id: number;
  /** Model file and the version of it the caller holds. */
  path: string;
  fingerprint: string;
  /** Plain text (nothing in it is a special token), or a rendered chat whose control markers are. */
  text: string | LlamaTextJSON;
}

/**
 * Asks the worker which of node-llama-cpp's chat wrappers fits a model: resolving it renders the
 * GGUF's Jinja template many times over (up to seconds of CPU), which the event loop must not do.
 */
export interface ChatWrapperJob {
  id: number;
  path: string;
  fingerprint: string;
  chatWrapper: true;
}

export type WorkerJob = TokenizeJob | ChatWrapperJob;

/** The worker's answer to one job: tokens, or the name (in node-llama-cpp's `chatWrappers`) of the wrapper. */
export type TokenizeResult =
  | { id: number; ok: true; tokens: Uint32Array }
  | { id: number; ok: true; chatWrapper: string }
  | { id: number; ok: false; message: string };

/**
 * Asks the worker to free its vocabularies and engine, answered with `{ stopped: true }`, before it
 * is terminated: terminating a thread that still holds node-llama-cpp objects can abort the process.
 */
export interface StopRequest {
  stop: true;
}

/** What the worker is started with: the engine to load, as the service loaded it. */
export interface TokenizerWorkerData {
  build: 'auto' | 'native' | 'prebuilt';
  /** `cpu`, `cuda`, `vulkan` or `metal`. */
  backend: string;
}
