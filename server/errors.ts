import type { ErrorCode } from '../protocol/index.js';

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
