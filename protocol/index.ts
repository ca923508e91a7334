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
  CancelFrame,
  PingFrame,
  ModelsRequestFrame,
  ClientFrame,
  LimitsInfo,
  ModelInfo,
  HelloFrame,
  LimitsFrame,
  QueuedFrame,
  StartFrame,
  TokFrame,
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
  LlmError,
  type ConnectOptions,
  type GenerateRequest,
  type WebSocketLike,
  type WebSocketConstructor,
} from './client.js';
export {
  ConnectError,
  connectErrorCodeOf,
  connectErrorFromRefusal,
  parseRetryAfter,
  type ConnectErrorInit,
  type UpgradeRefusalResponse,
} from './connect-error.js';
export { FEED_PATH, FEED_SUBPROTOCOL, type FeedFrame, type FeedHistory, type FeedSnapshot, type Percentiles, type RecentError, type ResourceFigures } from './feed.js';
export type { AdminErrorBody, CloseConnectionResponse, ConnectionInfo, ConnectionsResponse, ModelAction, ModelActionResult, ModelsResponse } from './admin.js';
