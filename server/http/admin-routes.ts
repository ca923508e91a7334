import { CloseCode, ErrorCode, type ConnectionInfo, type ConnectionsResponse } from '../../protocol/index.js';
import { ServiceError } from '../errors.js';
import type { Session } from '../gateway/session.js';
import type { SessionRegistry } from '../gateway/session-registry.js';
import type { ModelActionResult, ModelPool } from '../pool/model-pool.js';
import type { HttpReply, HttpRoute } from '../transport/types.js';
import type { AdminCheck } from '../auth/access-control.js';
import { requireAdmin } from './admin-guard.js';
import { errorReply } from './error-reply.js';
import { jsonReply } from './json-reply.js';

const ACTIONS = ['load', 'unload', 'reload'] as const;

/**
 * Admin HTTP API: `POST /api/models/:name/{load,unload,reload}`, `GET /api/connections` and
 * `POST /api/connections/:id/close`. Every route needs the admin token.
 */
export function adminRoutes(pool: ModelPool, sessions: SessionRegistry, admin: AdminCheck, isShuttingDown: () => boolean): HttpRoute[] {
  const modelActions = ACTIONS.map(
    (action): HttpRoute => ({
      method: 'post',
      pattern: `/api/models/:name/${action}`,
      handle: requireAdmin(admin, async ({ params }) => {
        // A draining replica loads nothing new: its models are about to be freed.
        if (isShuttingDown()) return errorReply(new ServiceError(ErrorCode.shuttingDown, 'the server is shutting down', { retryAfterMs: 5000 }));
        return replyFor(await runAction(pool, action, params.name ?? ''));
      }),
    }),
  );
  return [
    ...modelActions,
    {
      method: 'get',
      pattern: '/api/connections',
      handle: requireAdmin(admin, () =>
        jsonReply(200, {
          connections: sessions.list().map((session): ConnectionInfo => ({
            id: session.id,
            keyName: session.origin.keyName,
            remoteAddress: session.origin.remoteAddress,
            openedAt: session.openedAt,
            inFlight: session.inFlight,
            bucket: bucketOf(session),
          })),
        } satisfies ConnectionsResponse),
      ),
    },
    {
      method: 'post',
      pattern: '/api/connections/:id/close',
      handle: requireAdmin(admin, ({ params }) => {
        const session = sessions.find(params.id ?? '');
        if (!session) return jsonReply(404, { error: 'not_found', message: `no connection "${params.id}"` });
        session.close(CloseCode.policyViolation, 'closed by an administrator', 'admin');
        return jsonReply(200, { closed: true });
      }),
    },
  ];
}

async function runAction(pool: ModelPool, action: (typeof ACTIONS)[number], name: string): Promise<ModelActionResult | ServiceError> {
  try {
    return await pool[action](name);
  } catch (error) {
    if (error instanceof ServiceError) return error;
    throw error;
  }
}

function replyFor(result: ModelActionResult | ServiceError): HttpReply {
  if (result instanceof ServiceError) return errorReply(result);
  return jsonReply(result.outcome === 'failed' ? 409 : 200, result);
}

/** The connection's bucket levels (absent when no bucket applies). */
function bucketOf(session: Session): ConnectionInfo['bucket'] {
  const { requestsRemaining, tokensRemaining } = session.limits.levels();
  if (requestsRemaining === undefined && tokensRemaining === undefined) return undefined;
  return { ...(requestsRemaining !== undefined && { requestsRemaining }), ...(tokensRemaining !== undefined && { tokensRemaining }) };
}
