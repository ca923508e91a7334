import type { ErrFrame, ErrorCode } from '../protocol/index.js';

/** An error a client is told about: a code from the protocol's table, never a stack trace. */
export class ServiceError extends Error {
  readonly retryAfterMs: number | undefined;
  readonly details: Record<string, number | string> | undefined;

  constructor(
    readonly code: ErrorCode,
    message: string,
    extra: { retryAfterMs?: number; details?: Record<string, number | string>; cause?: unknown } = {},
  ) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = 'ServiceError';
    this.retryAfterMs = extra.retryAfterMs;
    this.details = extra.details;
  }
}

/** The `err` frame that tells a client about `error`; with `id`, it is that request's terminal frame. */
export function errFrameOf(error: ServiceError, id?: string): Omit<ErrFrame, 't'> {
  return {
    ...(id !== undefined && { id }),
    code: error.code,
    message: error.message,
    ...(error.retryAfterMs !== undefined && { retryAfterMs: error.retryAfterMs }),
    ...(error.details !== undefined && { details: error.details }),
  };
}
