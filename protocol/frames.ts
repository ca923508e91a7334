import type { EndReason, ErrorCode } from './constants.js';

/** Sampling and length parameters of a `gen` request; every field is optional. */
export interface GenParams {
  /** Most tokens to generate; the server applies its default and ceiling. */
  maxTokens?: number;
  /** 0 means greedy decoding. */
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  /** Seed for sampling; with the same seed, model and prompt the output repeats. */
  seed?: number;
  /** Generation stops before the first occurrence of any of these strings. */
  stop?: string[];
}

/** Starts a generation; `id` is the client's, unique among its in-flight requests. */
export interface GenFrame extends GenParams {
  t: 'gen';
  id: string;
  model?: string;
  prompt: string;
}

/** Stops the generation `id` now. */
export interface CancelFrame {
  t: 'cancel';
  id: string;
}

/** Liveness probe; the server echoes `ts` in `pong`. */
export interface PingFrame {
  t: 'ping';
  ts?: number;
}

/** Asks for the list of models. */
export interface ModelsRequestFrame {
  t: 'models';
}

export type ClientFrame = GenFrame | CancelFrame | PingFrame | ModelsRequestFrame;

/** Limits a connection works under, as announced in `hello` and `limits`. */
export interface LimitsInfo {
  maxFrameBytes: number;
  maxConcurrentStreams: number;
  maxTokensDefault: number;
  maxTokensCeiling: number;
  /** Request credits left in the connection's bucket, when rate limiting is on. */
  requestsRemaining?: number;
  /** Generated-token credits left in the bucket, when token limiting is on. */
  tokensRemaining?: number;
  /** Milliseconds until the buckets are full again. */
  resetMs?: number;
}

/** One model as listed in `hello`, `models` and `GET /api/models`. */
export interface ModelInfo {
  name: string;
  state: 'available' | 'downloading' | 'loading' | 'loaded' | 'unloading' | 'failed' | 'unsupported';
  default: boolean;
  /** File size in bytes. */
  sizeBytes?: number;
  /** From the GGUF header, read without loading the weights. */
  architecture?: string;
  /** Tokens per sequence (as configured once loaded; the training context before). */
  contextSize?: number;
  slotsBusy?: number;
  slotsTotal?: number;
  queueLength?: number;
  /** Estimated memory of weights and context when loaded, in bytes. */
  memoryBytes?: number;
  /** Epoch milliseconds of the last lease. */
  lastUsedAt?: number;
  /** Download progress 0..1 while `downloading`. */
  progress?: number;
  /** Why the model is failed or unsupported. */
  reason?: string;
}

export interface HelloFrame {
  t: 'hello';
  protocol: string;
  session: string;
  models: ModelInfo[];
  limits: LimitsInfo;
}

export interface LimitsFrame extends LimitsInfo {
  t: 'limits';
}

export interface QueuedFrame {
  t: 'queued';
  id: string;
  position: number;
}

export interface StartFrame {
  t: 'start';
  id: string;
  model: string;
}

export interface TokFrame {
  t: 'tok';
  id: string;
  text: string;
}

export interface Usage {
  promptTokens: number;
  completionTokens: number;
}

export interface Timings {
  /** From the request's arrival to the start of generation. */
  queueMs: number;
  /** From the request's arrival to the first text sent; -1 when none was sent. */
  ttftMs: number;
  /** From the request's arrival to its end. */
  totalMs: number;
}

export interface EndFrame {
  t: 'end';
  id: string;
  reason: EndReason;
  usage: Usage;
  timings: Timings;
  /** True when the response was replayed from the server's cache of deterministic requests. */
  cached?: boolean;
}

export interface ErrFrame {
  t: 'err';
  id?: string;
  code: ErrorCode;
  message: string;
  retryAfterMs?: number;
  /** Numbers behind the error (for example promptTokens and contextSize for prompt_too_long). */
  details?: Record<string, number | string>;
}

export interface PongFrame {
  t: 'pong';
  ts: number;
}

export interface ModelsFrame {
  t: 'models';
  models: ModelInfo[];
}

export type ServerFrame =
  | HelloFrame
  | LimitsFrame
  | QueuedFrame
  | StartFrame
  | TokFrame
  | EndFrame
  | ErrFrame
  | PongFrame
  | ModelsFrame;

/** Server frames that end a request: exactly one per accepted `gen`. */
export type TerminalFrame = EndFrame | (ErrFrame & { id: string });
