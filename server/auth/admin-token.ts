import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { matchesDigest, presentedSecret, sha256 } from './bearer.js';

/** The admin credential: guards the dashboard's feed and the admin HTTP API. */
export class AdminToken {
  private readonly digest: Buffer;

  private constructor(token: string, readonly generatedFile: string | undefined) {
    this.digest = sha256(token);
  }

  /**
   * Uses ADMIN_TOKEN when set; otherwise makes a random token and writes it to `fallbackFile`
   * (mode 0600) so the operator can read it; the token itself is never logged.
   */
  static fromConfig(configured: string, fallbackFile: string): AdminToken {
    if (configured) return new AdminToken(configured, undefined);
    const token = randomBytes(24).toString('base64url');
    writeFileSync(fallbackFile, `${token}\n`, { mode: 0o600 });
    return new AdminToken(token, fallbackFile);
  }

  /** True when the request presents the admin token (header or `bearer.` subprotocol). */
  verify(headers: Record<string, string>, protocols: readonly string[] = []): boolean {
    const secret = presentedSecret(headers, protocols);
    return secret !== undefined && matchesDigest(secret, this.digest);
  }
}
