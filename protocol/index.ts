export {
  PROTOCOL_VERSION,
  STREAM_PATH,
  Subprotocol,
  ClientFrameType,
  ServerFrameType,
  EndReason,
  ErrorCode,
  CloseCode,
  ConnectErrorCode,
  WireLimits,
} from './constants.js';
export type {
  GenParams,
  GenFrame,
  ChatRole,
  ToolCall,
  ChatMessage,
  JsonSchema,
  ToolSpec,
  ResponseFormat,
  ToolChoice,
  ChatParams,
  ChatFrame,
  CancelFrame,
  PingFrame,
  ModelsRequestFrame,
  ResumeFrame,
  ClientFrame,
  LimitsInfo,
  ModelInfo,
  HelloFrame,
  LimitsFrame,
  QueuedFrame,
  StartFrame,
  TokFrame,
  ToolFrame,
  Usage,
  Timings,
  EndFrame,
  ErrFrame,
  PongFrame,
  ModelsFrame,
  ServerFrame,
  TerminalFrame,
} from './frames.js';
export { encodeFrame, decodeMessage, wireFormatOf, type WireFormat, type Decoded } from './codec.js';
export { checkPlainMsgpack, MAX_DEPTH } from './msgpack-guard.js';
export { parseClientFrame, type ParsedClientFrame, type FrameProblem } from './validate.js';
export {
  connect,
  LlmClient,
  GenerationStream,
  ChatStream,
  LlmError,
  type ChatEvent,
  type ChatRequest,
  type ConnectOptions,
  type GenerateRequest,
  type WebSocketLike,
  type WebSocketConstructor,
} from './client.js';
export { RECONNECT_DEFAULTS, backoffDelay, isDrop, retryWithBackoff, type ReconnectOptions, type RetryPlan } from './reconnect.js';
export {
  ConnectError,
  connectErrorCodeOf,
  connectErrorFromRefusal,
  parseRetryAfter,
  type ConnectErrorInit,
  type UpgradeRefusalResponse,
} from './connect-error.js';
export { FEED_PATH, FEED_SUBPROTOCOL, type EngineInfo, type FeedFrame, type FeedHistory, type FeedSnapshot, type Percentiles, type RecentError, type ResourceFigures } from './feed.js';
export type { AdminErrorBody, CloseConnectionResponse, ConnectionInfo, ConnectionsResponse, ModelAction, ModelActionResult, ModelsResponse } from './admin.js';
