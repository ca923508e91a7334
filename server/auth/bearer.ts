import { createHash, timingSafeEqual } from 'node:crypto';

const BEARER_PROTOCOL_PREFIX = 'bearer.';

/** SHA-256 of a secret, as stored and compared. */
export function sha256(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

/** Compares a presented secret with a stored digest in constant time (equal-length digests). */
export function matchesDigest(presented: string, digest: Buffer): boolean {
  const candidate = sha256(presented);
  return candidate.length === digest.length && timingSafeEqual(candidate, digest);
}

/**
 * The bearer secret a request presents: `Authorization: Bearer <secret>`, or for browsers,
 * which cannot set headers on a WebSocket, a `bearer.<secret>` Sec-WebSocket-Protocol entry.
 */
export function presentedSecret(headers: Record<string, string>, protocols: readonly string[] = []): string | undefined {
  const authorization = headers.authorization;
  if (authorization && /^bearer\s+/i.test(authorization)) return authorization.replace(/^bearer\s+/i, '').trim() || undefined;
  const entry = protocols.find((protocol) => protocol.startsWith(BEARER_PROTOCOL_PREFIX));
  return entry ? entry.slice(BEARER_PROTOCOL_PREFIX.length) || undefined : undefined;
}

/** Sec-WebSocket-Protocol entries without the credential ones, which are never echoed. */
export function withoutCredentials(protocols: readonly string[]): string[] {
  return protocols.filter((protocol) => !protocol.startsWith(BEARER_PROTOCOL_PREFIX));
}
