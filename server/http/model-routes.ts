import type { ModelPool } from '../pool/model-pool.js';
import type { HttpRoute } from '../transport/types.js';

/** `GET /api/models`: every model with its state. */
export function modelRoutes(pool: ModelPool): HttpRoute[] {
  return [
    {
      method: 'get',
      pattern: '/api/models',
      handle: () => ({ status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ models: pool.list() }) }),
    },
  ];
}
