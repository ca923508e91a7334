import type { HttpReply, HttpRoute } from '../transport/types.js';

export interface HealthSource {
  /** Why the service cannot take requests now, or undefined when it can. */
  notReadyReason(): string | undefined;
}

const json = (status: number, body: unknown): HttpReply => ({ status, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

/** `/healthz`: the process serves. `/readyz`: the default model can generate now. */
export function healthRoutes(source: HealthSource): HttpRoute[] {
  return [
    { method: 'get', pattern: '/healthz', handle: () => json(200, { status: 'ok' }) },
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
