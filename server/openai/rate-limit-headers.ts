import type { ConnectionLimits } from '../gateway/connection-limits.js';

/**
 * OpenAI's rate-limit headers, read from the buckets that limit this caller (its API key's when the
 * key has them, else its own): `x-ratelimit-limit-requests` (capacity), `-remaining-requests`
 * (whole credits now), `-reset-requests` (until the bucket is full again, as `1.5s` or `2m30s`),
 * and the same for tokens. A kind that is not limited is left out.
 */
export function rateLimitHeaders(limits: ConnectionLimits): Record<string, string> {
  const headers: Record<string, string> = {};
  const { requests, tokens } = limits.applied();
  for (const [kind, bucket] of [['requests', requests], ['tokens', tokens]] as const) {
    if (!bucket) continue;
    headers[`x-ratelimit-limit-${kind}`] = String(Math.floor(bucket.capacity));
    headers[`x-ratelimit-remaining-${kind}`] = String(Math.max(0, Math.floor(bucket.level())));
    // A bucket that never refills (a key with a rate of 0) has no reset time to give.
    const resetMs = bucket.msUntilFull();
    if (Number.isFinite(resetMs)) headers[`x-ratelimit-reset-${kind}`] = duration(resetMs);
  }
  return headers;
}

/** A wait as OpenAI writes it: `0s`, `250ms`, `1.5s`, `6m0s`. */
export function duration(ms: number): string {
  const rounded = Math.ceil(ms);
  if (rounded <= 0) return '0s';
  if (rounded < 1000) return `${rounded}ms`;
  if (rounded < 60_000) return `${Number((rounded / 1000).toFixed(3))}s`;
  const minutes = Math.floor(rounded / 60_000);
  return `${minutes}m${Math.ceil((rounded - minutes * 60_000) / 1000)}s`;
}
