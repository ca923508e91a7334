import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../protocol/index.js';
import { ServiceError, errFrameOf } from '../../server/errors.js';
import { errorReply } from '../../server/http/error-reply.js';

describe('one mapping of a ServiceError per front door', () => {
  it('gives every error code an error status: the client\'s fault 4xx, the server\'s state 5xx', () => {
    const serverSide = new Set<string>([ErrorCode.internal, ErrorCode.modelUnavailable, ErrorCode.insufficientMemory, ErrorCode.overloaded, ErrorCode.queueTimeout, ErrorCode.shuttingDown]);
    for (const code of Object.values(ErrorCode)) {
      const { status } = errorReply(new ServiceError(code, 'x'));
      const [low, high] = serverSide.has(code) ? [500, 599] : [400, 499];
      expect(status, code).toBeGreaterThanOrEqual(low);
      expect(status, code).toBeLessThanOrEqual(high);
    }
    expect(errorReply(new ServiceError(ErrorCode.modelNotFound, 'no')).status).toBe(404);
    expect(errorReply(new ServiceError(ErrorCode.rateLimited, 'slow down')).status).toBe(429);
  });

  it('answers JSON with the code, message and details, and Retry-After in whole seconds when there is a wait', () => {
    const reply = errorReply(new ServiceError(ErrorCode.overloaded, 'busy', { retryAfterMs: 1200, details: { queued: 3 } }));
    expect(reply.status).toBe(503);
    expect(reply.headers).toMatchObject({ 'content-type': 'application/json', 'retry-after': '2' });
    expect(JSON.parse(reply.body as string)).toEqual({ error: 'overloaded', message: 'busy', details: { queued: 3 } });
    expect(errorReply(new ServiceError(ErrorCode.invalidParams, 'bad')).headers).not.toHaveProperty('retry-after');
  });

  it('makes the err frame from the same fields, with the id only when given', () => {
    const error = new ServiceError(ErrorCode.rateLimited, 'wait', { retryAfterMs: 300, details: { limit: 5 } });
    expect(errFrameOf(error, 'r1')).toEqual({ id: 'r1', code: 'rate_limited', message: 'wait', retryAfterMs: 300, details: { limit: 5 } });
    expect(errFrameOf(new ServiceError(ErrorCode.internal, 'boom'))).toEqual({ code: 'internal', message: 'boom' });
  });
});
