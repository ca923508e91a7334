import { ErrorCode } from '../../protocol/index.js';
import type { ServiceError } from '../errors.js';
import type { HttpReply } from '../transport/types.js';
import { jsonReply } from './json-reply.js';

/** The HTTP status of each error code, for every route that answers a ServiceError. */
const STATUS_OF: Record<ErrorCode, number> = {
  [ErrorCode.badFrame]: 400,
  [ErrorCode.unknownType]: 400,
  [ErrorCode.invalidParams]: 400,
  [ErrorCode.promptTooLong]: 400,
  [ErrorCode.forbiddenModel]: 403,
  [ErrorCode.modelNotFound]: 404,
  [ErrorCode.unknownId]: 404,
  [ErrorCode.duplicateId]: 409,
  [ErrorCode.resumeFailed]: 409,
  [ErrorCode.rateLimited]: 429,
  [ErrorCode.tooManyStreams]: 429,
  [ErrorCode.internal]: 500,
  [ErrorCode.modelUnavailable]: 503,
  [ErrorCode.insufficientMemory]: 503,
  [ErrorCode.overloaded]: 503,
  [ErrorCode.queueTimeout]: 503,
  [ErrorCode.shuttingDown]: 503,
};

/** The HTTP status that answers an error `code` (the OpenAI-compatible API's too). */
export function statusOf(code: ErrorCode): number {
  return STATUS_OF[code];
}

/** The HTTP answer for `error`: its status, `{error, message, details?}`, and `Retry-After` when it has a wait. */
export function errorReply(error: ServiceError): HttpReply {
  const headers: Record<string, string> = error.retryAfterMs === undefined ? {} : { 'retry-after': String(Math.max(1, Math.ceil(error.retryAfterMs / 1000))) };
  return jsonReply(STATUS_OF[error.code], { error: error.code, message: error.message, ...(error.details && { details: error.details }) }, headers);
}
