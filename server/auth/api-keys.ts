import { randomBytes, timingSafeEqual } from 'node:crypto';
import { sha256 } from './bearer.js';
import { readKeysFile } from './keys-file.js';
import { validateEntries, type ApiKeyEntry, type ApiKeyLimits } from './keys-file-schema.js';

export { KeysFileError, type ApiKeyEntry, type ApiKeyLimits } from './keys-file-schema.js';

/** Prefix of every generated key, so a leaked one is recognisable (secret scanners, logs). */
export const API_KEY_PREFIX = 'llm_';

/** The client API keys the service accepts, known only by their SHA-256 hashes. */
export class ApiKeyStore {
  private readonly entries: readonly ApiKeyEntry[];
  private readonly digests: readonly Buffer[];

  private constructor(entries: ApiKeyEntry[]) {
    this.entries = Object.freeze(entries);
    this.digests = entries.map((entry) => Buffer.from(entry.hash, 'hex'));
  }

  /** Reads and validates a keys file; throws KeysFileError naming the file, entry and field at fault. */
  static async load(path: string): Promise<ApiKeyStore> {
    return new ApiKeyStore((await readKeysFile(path)).entries);
  }

  /** A store of entries given in code, validated like a file's; errors name the source "entries". */
  static fromEntries(entries: ApiKeyEntry[]): ApiKeyStore {
    return new ApiKeyStore(validateEntries(entries, '(entries)'));
  }

  /**
   * The entry whose hash matches sha256(secret), comparing against EVERY entry in constant time per
   * entry (timingSafeEqual on equal-length digests; no early exit), or undefined.
   */
  authenticate(secret: string): ApiKeyEntry | undefined {
    const presented = sha256(secret);
    let match: ApiKeyEntry | undefined;
    // Every digest is compared whatever matched before, so the time taken says nothing about which
    // entry (if any) matched. Hashes are unique, so at most one can.
    for (let i = 0; i < this.digests.length; i++) {
      const equal = timingSafeEqual(presented, this.digests[i]!);
      if (equal) match = this.entries[i];
    }
    return match;
  }

  get size(): number {
    return this.entries.length;
  }

  /** Names of every key, in file order (safe to log). */
  names(): string[] {
    return this.entries.map((entry) => entry.name);
  }
}

/** Generates a new key: `llm_` + 32 random bytes base64url; returns the key and its entry (hash only). */
export function generateKey(name: string, limits?: ApiKeyLimits, models?: string[]): { key: string; entry: ApiKeyEntry } {
  const key = `${API_KEY_PREFIX}${randomBytes(32).toString('base64url')}`;
  const candidate: ApiKeyEntry = { name, hash: sha256(key).toString('hex'), limits: limits ?? {} };
  if (models !== undefined) candidate.models = models;
  const [entry] = validateEntries([candidate], '(new key)');
  return { key, entry: entry! };
}
