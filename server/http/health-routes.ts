import type { HttpReply, HttpRoute } from '../transport/types.js';

export interface HealthSource {
  /** Why the service cannot take requests now, or undefined when it can. */
  notReadyReason(): string | undefined;
  /** True once shutdown began: both routes answer 503 `shutting_down`, so a balancer drains this replica. */
  shuttingDown(): boolean;
  /** More about readiness that does not change it (say, whether per-key limits are shared), merged into `/readyz` bodies. */
  details?(): Record<string, unknown>;
}

const json = (status: number, body: unknown): HttpReply => ({ status, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

/**
 * `/healthz` (liveness): the process serves; 200 `{status: "ok"}`.
 * `/readyz` (readiness): the default model can generate now; else 503 with the reason.
 * From SIGTERM until the listener closes both answer 503 `{status: "shutting_down"}`.
 */
const SHUTTING_DOWN = json(503, { status: 'shutting_down' });

export function healthRoutes(source: HealthSource): HttpRoute[] {
  return [
    { method: 'get', pattern: '/healthz', handle: () => (source.shuttingDown() ? SHUTTING_DOWN : json(200, { status: 'ok' })) },
    {
      method: 'get',
      pattern: '/readyz',
      handle: () => {
        if (source.shuttingDown()) return SHUTTING_DOWN;
        const reason = source.notReadyReason();
        const details = source.details?.();
        return reason === undefined ? json(200, { status: 'ready', ...details }) : json(503, { status: 'not_ready', reason, ...details });
      },
    },
  ];
}
