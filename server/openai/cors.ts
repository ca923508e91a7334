import type { HttpReply, HttpRequestInfo } from '../transport/types.js';

/** Headers a browser script may read from an answer: the limits and the wait after a refusal. */
const EXPOSED = [
  'retry-after',
  'x-request-id',
  'x-ratelimit-limit-requests',
  'x-ratelimit-remaining-requests',
  'x-ratelimit-reset-requests',
  'x-ratelimit-limit-tokens',
  'x-ratelimit-remaining-tokens',
  'x-ratelimit-reset-tokens',
].join(', ');

/** How long a browser may keep a preflight's answer. */
const PREFLIGHT_MAX_AGE_S = 600;
/** A comma-separated list of header names, as Access-Control-Request-Headers carries it. */
const HEADER_LIST = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+(\s*,\s*[A-Za-z0-9!#$%&'*+.^_`|~-]+)*$/;

/**
 * CORS headers for an answer to a request whose Origin was allowed (ALLOWED_ORIGINS, checked
 * before): the origin is echoed, never `*`, so the answer varies by Origin. None without an Origin.
 */
export function corsHeaders(request: HttpRequestInfo): Record<string, string> {
  const origin = request.headers.origin;
  if (origin === undefined) return {};
  return { 'access-control-allow-origin': origin, 'access-control-expose-headers': EXPOSED, vary: 'Origin' };
}

/**
 * The answer to a preflight (`OPTIONS` with an allowed Origin): the methods of the path and the
 * headers the browser asked to send (the `openai` package sends several of its own), for 10 minutes.
 */
export function preflightReply(request: HttpRequestInfo, methods: string): HttpReply {
  const asked = request.headers['access-control-request-headers']?.trim();
  const headers: Record<string, string> = {
    ...corsHeaders(request),
    'access-control-allow-methods': `${methods}, OPTIONS`,
    'access-control-allow-headers': asked && HEADER_LIST.test(asked) ? asked : 'authorization, content-type',
    'access-control-max-age': String(PREFLIGHT_MAX_AGE_S),
  };
  return { status: 204, headers };
}
