import { Counter, Gauge, type Registry } from 'prom-client';
import type { SharedLimits } from './shared-limits.js';

/**
 * The shared limits' metrics, read at scrape time: `llm_shared_limits_up` (1 while per-key limits
 * are shared through Redis, 0 while this replica falls back to local limits), and counters of
 * fallbacks, failed Redis commands and refusals only the shared state made.
 */
export function registerSharedLimitsMetrics(registry: Registry, limits: SharedLimits): void {
  const registers = [registry];
  new Gauge({
    name: 'llm_shared_limits_up',
    help: '1 while per-key limits are shared across replicas through Redis, 0 while Redis is unreachable and this replica limits keys on its own',
    registers,
    collect() {
      this.set(limits.shared ? 1 : 0);
    },
  });
  new Counter({
    name: 'llm_shared_limits_fallbacks_total',
    help: 'Times Redis became unreachable and per-key limits fell back to local ones',
    registers,
    collect() {
      this.reset();
      this.inc(limits.fallbacks);
    },
  });
  new Counter({
    name: 'llm_shared_limits_failures_total',
    help: 'Shared-limit Redis commands that timed out, broke with the connection or were refused (each decided locally instead)',
    registers,
    collect() {
      this.reset();
      this.inc(limits.failures);
    },
  });
  new Counter({
    name: 'llm_shared_limits_refusals_total',
    help: "Requests and connections refused by a key's shared limit (requests, tokens, streams, connections) after this replica's own view let them through",
    labelNames: ['limit'],
    registers,
    collect() {
      this.reset();
      for (const [limit, count] of Object.entries(limits.refusals)) this.labels(limit).inc(count);
    },
  });
}
