import { ErrorCode, type ErrFrame } from '../../protocol/index.js';
import type { ServiceError } from '../errors.js';
import { statusOf } from '../http/error-reply.js';
import { jsonReply } from '../http/json-reply.js';
import type { HttpReply } from '../transport/types.js';
import { inOpenAiTerms, openAiPath } from './param-names.js';

/** The `error` object of an OpenAI error body. */
export interface ApiErrorObject {
  message: string;
  type: string;
  /** Machine-readable: one of the protocol's error codes, or one of this API's own (`invalid_api_key`, `invalid_json`...). */
  code: string;
  /** The request field at fault, in the request's own spelling (`messages[2].content`); null when none is. */
  param: string | null;
  /** Numbers behind the error (for example promptTokens and contextSize for prompt_too_long). */
  details?: Record<string, number | string>;
}

/** Errors about the model the request named: their `param` is `model`. */
const MODEL_CODES: ReadonlySet<string> = new Set<ErrorCode>([ErrorCode.modelNotFound, ErrorCode.forbiddenModel, ErrorCode.modelUnavailable]);

/** OpenAI's error types by status: clients (and the `openai` package) read the status, people read the type. */
function typeOf(status: number): string {
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 429) return 'rate_limit_error';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
}

/** An error of the OpenAI-compatible API: its HTTP status and `{error: {message, type, code, param}}`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly param: string | null = null,
    readonly retryAfterMs?: number,
    readonly details?: Record<string, number | string>,
    /** Headers the answer needs beside the error (WWW-Authenticate for a 401). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }

  /** The same error the WebSocket protocol would send as `err`, with the status error-reply gives its code. */
  static of(error: ServiceError | Omit<ErrFrame, 't'>): ApiError {
    if (error.code !== ErrorCode.invalidParams) {
      return new ApiError(statusOf(error.code), error.code, error.message, MODEL_CODES.has(error.code) ? 'model' : null, error.retryAfterMs, error.details);
    }
    // The request's fields, named as frames spell them, in the client's spelling (details.part too).
    const { message, param } = inOpenAiTerms(error.message);
    const part = error.details?.part;
    const details = error.details && (typeof part === 'string' ? { ...error.details, part: openAiPath(part) } : error.details);
    return new ApiError(400, error.code, message, param, error.retryAfterMs, details);
  }

  /** A field of the request is missing, mistyped or out of range. */
  static invalid(message: string, param: string | null, code: ErrorCode | 'invalid_json' | 'unsupported' = 'invalid_params'): ApiError {
    return new ApiError(400, code, message, param);
  }

  get object(): ApiErrorObject {
    return {
      message: this.message,
      type: typeOf(this.status),
      code: this.code,
      param: this.param,
      ...(this.details !== undefined && { details: this.details }),
    };
  }

  /** The whole HTTP answer, with `Retry-After` (seconds) when the error has a wait. */
  reply(headers: Record<string, string> = {}): HttpReply {
    const retry: Record<string, string> = this.retryAfterMs === undefined ? {} : { 'retry-after': String(Math.max(1, Math.ceil(this.retryAfterMs / 1000))) };
    return jsonReply(this.status, { error: this.object }, { ...headers, ...this.headers, ...retry });
  }
}
