import type { HttpReply, HttpRoute } from '../transport/types.js';

export interface HealthSource {
  /** Why the service cannot take requests now, or undefined when it can. */
  notReadyReason(): string | undefined;
  /** True once shutdown began: /healthz still answers 200 (the process is alive) but says so. */
  shuttingDown?(): boolean;
}

const json = (status: number, body: unknown): HttpReply => ({ status, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

/**
 * `/healthz` (liveness): the process serves; 200 `{status: "ok" | "shutting_down"}`.
 * `/readyz` (readiness): the default model can generate now; else 503 with the reason.
 */
export function healthRoutes(source: HealthSource): HttpRoute[] {
  return [
    { method: 'get', pattern: '/healthz', handle: () => json(200, { status: source.shuttingDown?.() ? 'shutting_down' : 'ok' }) },
    {
      method: 'get',
      pattern: '/readyz',
      handle: () => {
        const reason = source.notReadyReason();
        return reason === undefined ? json(200, { status: 'ready' }) : json(503, { status: 'not_ready', reason });
      },
    },
  ];
}
