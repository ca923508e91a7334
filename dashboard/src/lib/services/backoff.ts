/** How reconnect delays grow: `min(maxMs, baseMs * factor^attempt)`, spread by ±jitter. */
export interface BackoffOptions {
  /** Delay before the first retry. Default: 500 ms. */
  baseMs?: number;
  /** Growth per failed attempt. Default: 2. */
  factor?: number;
  /** Longest delay. Default: 5000 ms, so a restarted server is found again within seconds. */
  maxMs?: number;
  /** Random spread as a fraction of the delay, so many dashboards do not retry in step. Default: 0.2. */
  jitter?: number;
}

/** Delay before retry number `attempt` (0 for the first retry after a loss). */
export function backoffDelay(attempt: number, options: BackoffOptions = {}, random: () => number = Math.random): number {
  const { baseMs = 500, factor = 2, maxMs = 5000, jitter = 0.2 } = options;
  const raw = Math.min(maxMs, baseMs * factor ** Math.max(0, attempt));
  const spread = raw * jitter * (random() * 2 - 1);
  return Math.max(0, Math.round(Math.min(maxMs, raw + spread)));
}
