import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** Random bytes in a resume token: 256 bits, out of reach of guessing. */
const TOKEN_BYTES = 32;

/** A fresh resume token (CSPRNG, base64url, 43 characters). */
export function newResumeToken(): string {
  return randomBytes(TOKEN_BYTES).toString('base64url');
}

/**
 * What the server keeps of a token: its SHA-256, so a comparison always runs over 32 bytes
 * whatever the length presented, and memory never holds the secret itself.
 */
export function tokenDigest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** True when `presented` is the token behind `digest`; takes the same time whichever byte differs. */
export function tokenMatches(presented: string, digest: Buffer): boolean {
  return timingSafeEqual(tokenDigest(presented), digest);
}
