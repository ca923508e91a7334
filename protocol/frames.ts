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
  /** Divides the likelihood of tokens seen among the recent ones (prompt tail and reply); 1 = off. */
  repeatPenalty?: number;
  /** Lowers a recent token's likelihood by this much for each time it occurred; 0 = off. */
  frequencyPenalty?: number;
  /** Lowers the likelihood of every recent token by this much, once; 0 = off. */
  presencePenalty?: number;
}

/** Starts a generation; `id` is the client's, unique among its in-flight requests. */
export interface GenFrame extends GenParams {
  t: 'gen';
  id: string;
  model?: string;
  prompt: string;
}

/** Who speaks a chat message. */
export type ChatRole = 'system' | 'user' | 'assistant' | 'tool';

/** A tool call the model made (in a `tool` frame), as an assistant message carries it back. */
export interface ToolCall {
  /** The call's id (`tool.callId`); the `tool` message with its result names it in `toolCallId`. */
  id: string;
  name: string;
  /** The arguments as a JSON text: an object valid for the tool's `parameters`. */
  arguments: string;
}

/** One message of a conversation. */
export interface ChatMessage {
  role: ChatRole;
  content: string;
  /** On `tool` messages: the `id` of the call this message answers. */
  toolCallId?: string;
  /** On `assistant` messages: the calls the model made in that turn; `tool` messages with their results follow. */
  toolCalls?: ToolCall[];
}

/**
 * A JSON schema, in the subset that can be turned into a grammar: `type`, `properties`, `required`,
 * `additionalProperties`, `items`, `prefixItems`, `enum`, `const`, `oneOf`/`anyOf`, `$ref` into `$defs`,
 * string `minLength`/`maxLength`/`format` (date, time, date-time), `minItems`/`maxItems`,
 * `minProperties`/`maxProperties`, and annotations (`description`, `title`...). docs/api.md lists it.
 */
export type JsonSchema = { [keyword: string]: unknown };

/** A tool the model may call. */
export interface ToolSpec {
  /** Letters, digits, `_` and `-`, starting with a letter or `_`. */
  name: string;
  description?: string;
  /** JSON schema of the arguments object. Default: an object without properties. */
  parameters?: JsonSchema;
}

/** The shape the reply must have: free text (default), any JSON object, or JSON valid for a schema. */
export type ResponseFormat = { type: 'text' } | { type: 'json_object' } | { type: 'json_schema'; schema: JsonSchema };

/** Whether the model may (`auto`, the default with tools), must not (`none`) or must (`required`, or this one) call a tool. */
export type ToolChoice = 'auto' | 'none' | 'required' | { name: string };

/** What a `chat` asks for besides its id and model. */
export interface ChatParams extends GenParams {
  messages: ChatMessage[];
  responseFormat?: ResponseFormat;
  tools?: ToolSpec[];
  toolChoice?: ToolChoice;
}

/**
 * Starts the model's reply to a conversation, rendered with the model's own chat template; it
 * streams like a `gen` (`tok` frames, then `end`), plus `tool` frames when the model calls tools.
 */
export interface ChatFrame extends ChatParams {
  t: 'chat';
  id: string;
  model?: string;
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

/**
 * Takes over request `id` of connection `session` after a reconnect: the server replays its frames
 * from `fromSeq` on and, if it is still running, streams the rest here.
 */
export interface ResumeFrame {
  t: 'resume';
  id: string;
  /** `hello.session` of the connection the request was sent on. */
  session: string;
  /** `hello.resumeToken` of that connection. */
  token: string;
  /** Seq of the first frame wanted: the last one received + 1 (1 when none was). */
  fromSeq: number;
}

export type ClientFrame = GenFrame | ChatFrame | CancelFrame | PingFrame | ModelsRequestFrame | ResumeFrame;

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
  /** Secret that lets a later connection with the same API key resume this one's requests; absent when resuming is off. */
  resumeToken?: string;
  /** How long the requests of a dropped connection wait for a `resume` before they are cancelled. */
  resumeWindowMs?: number;
  /**
   * The replica this connection runs on (`REPLICA_ID`). A client reconnecting to resume adds
   * `?replica=<it>` to the URL so a balancer can route it back (docs/deployment.md).
   */
  replica?: string;
}

export interface LimitsFrame extends LimitsInfo {
  t: 'limits';
}

/**
 * Every frame of a request carries `seq`: 1 for its first frame, one more for each next one, across
 * reconnects; a client resumes from the last seq it received + 1 and drops any seq it already has.
 */
interface Sequenced {
  seq?: number;
}

export interface QueuedFrame extends Sequenced {
  t: 'queued';
  id: string;
  position: number;
}

export interface StartFrame extends Sequenced {
  t: 'start';
  id: string;
  model: string;
}

export interface TokFrame extends Sequenced {
  t: 'tok';
  id: string;
  text: string;
}

/** A tool call of a `chat` reply: sent once it is complete, before the `end` with reason `tool_calls`. */
export interface ToolFrame extends Sequenced {
  t: 'tool';
  id: string;
  /** Unique id of this call: the `toolCallId` of the `tool` message that answers it. */
  callId: string;
  name: string;
  /** The arguments as a JSON text: an object valid for the tool's `parameters`. */
  arguments: string;
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

export interface EndFrame extends Sequenced {
  t: 'end';
  id: string;
  reason: EndReason;
  usage: Usage;
  timings: Timings;
  /** True when the response was replayed from the server's cache of deterministic requests. */
  cached?: boolean;
}

export interface ErrFrame extends Sequenced {
  t: 'err';
  /** Set when the error ends that request (then `seq` is set too); absent when it answers a frame that started none (a bad frame, a cancel or resume refused). */
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
  | ToolFrame
  | EndFrame
  | ErrFrame
  | PongFrame
  | ModelsFrame;

/** Server frames that end a request: exactly one per accepted `gen` or `chat`. */
export type TerminalFrame = EndFrame | (ErrFrame & { id: string });
