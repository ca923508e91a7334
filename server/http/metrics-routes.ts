import type { ServiceMetrics } from '../telemetry/metrics.js';
import type { HttpReply, HttpRoute } from '../transport/types.js';

export interface MetricsRouteOptions {
  metrics: ServiceMetrics;
  /** Checks the admin token (AdminToken satisfies it). */
  admin: { verify(headers: Record<string, string>): boolean };
  /** METRICS_PUBLIC: serve without the admin token (for a scraper on a private network). */
  public: boolean;
}

/**
 * `GET /metrics`: Prometheus text exposition. Unless METRICS_PUBLIC is on it needs the admin token
 * as `Authorization: Bearer <token>` (Prometheus: `authorization: { credentials_file: ... }`).
 */
export function metricsRoutes(options: MetricsRouteOptions): HttpRoute[] {
  return [
    {
      method: 'get',
      pattern: '/metrics',
      async handle(request): Promise<HttpReply> {
        if (!options.public && !options.admin.verify(request.headers)) {
          return {
            status: 401,
            headers: { 'content-type': 'application/json', 'www-authenticate': 'Bearer realm="metrics"' },
            body: JSON.stringify({ error: 'unauthorized', message: 'GET /metrics needs the admin token as a bearer token' }),
          };
        }
        return { status: 200, headers: { 'content-type': options.metrics.contentType }, body: await options.metrics.text() };
      },
    },
  ];
}
