import type { AdminCheck } from '../auth/access-control.js';
import type { ServiceMetrics } from '../telemetry/metrics.js';
import type { HttpReply, HttpRoute } from '../transport/types.js';
import { requireAdmin } from './admin-guard.js';

export interface MetricsRouteOptions {
  metrics: ServiceMetrics;
  admin: AdminCheck;
  /** METRICS_PUBLIC: serve without the admin token (for a scraper on a private network). */
  public: boolean;
}

/**
 * `GET /metrics`: Prometheus text exposition. Unless METRICS_PUBLIC is on it needs the admin token
 * as `Authorization: Bearer <token>` (Prometheus: `authorization: { credentials_file: ... }`).
 */
export function metricsRoutes(options: MetricsRouteOptions): HttpRoute[] {
  const scrape = async (): Promise<HttpReply> => ({ status: 200, headers: { 'content-type': options.metrics.contentType }, body: await options.metrics.text() });
  return [{ method: 'get', pattern: '/metrics', handle: options.public ? scrape : requireAdmin(options.admin, scrape) }];
}
