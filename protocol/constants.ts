/**
 * Wire constants shared by the server, the dashboard, the load tester and any client.
 * Tables are `as const` so every union type below is derived from them.
 */

/** Version of the frame set described in docs/api.md. */
export const PROTOCOL_VERSION = 1;

/** Path of the streaming WebSocket endpoint. */
export const STREAM_PATH = '/v1/stream';

/** Subprotocols negotiated with `Sec-WebSocket-Protocol`; none offered means msgpack. */
export const Subprotocol = {
  msgpack: 'llm.v1.msgpack',
  json: 'llm.v1.json',
} as const;
export type Subprotocol = (typeof Subprotocol)[keyof typeof Subprotocol];

/** Frame tags sent by clients. */
export const ClientFrameType = {
  gen: 'gen',
  chat: 'chat',
  cancel: 'cancel',
  ping: 'ping',
  models: 'models',
  resume: 'resume',
} as const;
export type ClientFrameType = (typeof ClientFrameType)[keyof typeof ClientFrameType];

/** Frame tags sent by the server. */
export const ServerFrameType = {
  hello: 'hello',
  limits: 'limits',
  queued: 'queued',
  start: 'start',
  tok: 'tok',
  tool: 'tool',
  end: 'end',
  err: 'err',
  pong: 'pong',
  models: 'models',
} as const;
export type ServerFrameType = (typeof ServerFrameType)[keyof typeof ServerFrameType];

/** Why a generation ended; carried by the `end` frame. */
export const EndReason = {
  /** The model produced an end-of-generation token or a stop sequence matched. */
  stop: 'stop',
  /** `maxTokens` were generated. */
  length: 'length',
  /** The model called tools: their `tool` frames came before this end; answer them in the next `chat`. */
  toolCalls: 'tool_calls',
  /** The client sent `cancel`. */
  cancelled: 'cancelled',
  /** The per-generation wall-clock deadline passed. */
  timeout: 'timeout',
  /** The client stopped reading and its stream was cancelled. */
  slowConsumer: 'slow_consumer',
  /** The server is shutting down and the grace period ran out. */
  shutdown: 'shutdown',
} as const;
export type EndReason = (typeof EndReason)[keyof typeof EndReason];

/** Machine-readable error codes carried by `err` frames. */
export const ErrorCode = {
  badFrame: 'bad_frame',
  unknownType: 'unknown_type',
  invalidParams: 'invalid_params',
  duplicateId: 'duplicate_id',
  unknownId: 'unknown_id',
  modelNotFound: 'model_not_found',
  modelUnavailable: 'model_unavailable',
  promptTooLong: 'prompt_too_long',
  overloaded: 'overloaded',
  queueTimeout: 'queue_timeout',
  rateLimited: 'rate_limited',
  tooManyStreams: 'too_many_streams',
  insufficientMemory: 'insufficient_memory',
  forbiddenModel: 'forbidden_model',
  shuttingDown: 'shutting_down',
  /** A `resume` named no request this connection may take over, or one whose frames are gone. */
  resumeFailed: 'resume_failed',
  internal: 'internal',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** WebSocket close codes the server uses. */
export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  /** Reported locally when a connection ends without a close frame; never sent. */
  abnormal: 1006,
  protocolError: 1002,
  unsupportedData: 1003,
  policyViolation: 1008,
  messageTooBig: 1009,
  internalError: 1011,
  tryAgainLater: 1013,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/**
 * Why an upgrade to the stream endpoint was refused before any `101`. The refusal's body is JSON
 * `{error, message}` with one of these codes; `unreachable` and `connection_lost` are the client's
 * own, for a server it never heard from and a connection that dropped after `hello`.
 */
export const ConnectErrorCode = {
  /** 400: the offered subprotocols are not ours. */
  badRequest: 'bad_request',
  /** 401: no API key, or a wrong one. */
  unauthorized: 'unauthorized',
  /** 403: the Origin or the Host is not allowed. */
  forbidden: 'forbidden',
  /** 429: too many connections for the remote address or the API key. */
  tooManyConnections: 'too_many_connections',
  /** 503: the server is shutting down. */
  shuttingDown: 'shutting_down',
  /** 500: the server failed while deciding. */
  internal: 'internal',
  /** No answer at all: refused, reset, timed out, or a status the browser hides. */
  unreachable: 'unreachable',
  /** An established connection dropped. */
  connectionLost: 'connection_lost',
} as const;
export type ConnectErrorCode = (typeof ConnectErrorCode)[keyof typeof ConnectErrorCode];

/** Hard limits of the wire format itself; servers may configure tighter ones. */
export const WireLimits = {
  /** Largest frame a server accepts, in bytes (larger frames close the connection with 1009). */
  maxFrameBytes: 256 * 1024,
  /** Longest request id, in characters. */
  maxIdLength: 128,
  /** Longest prompt, in characters (token limits are checked separately). */
  maxPromptChars: 128 * 1024,
  /** Most stop sequences in one request. */
  maxStopSequences: 8,
  /** Longest stop sequence, in characters. */
  maxStopLength: 64,
  /** Longest model name, in characters. */
  maxModelNameLength: 256,
  /** Most messages in one `chat`. */
  maxMessages: 256,
  /** Most tools one `chat` may offer. */
  maxTools: 32,
  /** Most tool calls one assistant message may carry. */
  maxToolCallsPerMessage: 16,
  /** Longest tool name, in characters (letters, digits, `_` and `-`, starting with a letter or `_`). */
  maxToolNameLength: 64,
  /** Longest tool description, in characters. */
  maxToolDescriptionLength: 4096,
} as const;
