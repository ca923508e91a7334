import { randomBytes } from 'node:crypto';
import { linkSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { matchesDigest, presentedSecret, sha256 } from './bearer.js';

/**
 * Where the admin token came from: ADMIN_TOKEN, or (when it is empty) the token file, which was
 * created now, reused from an earlier start, or replaced because it held no usable token.
 */
export type AdminTokenSource = 'configured' | 'created' | 'reused' | 'replaced';

/**
 * What a token file may hold to be reused: one line of printable ASCII without spaces (what a
 * bearer header and a `bearer.` WebSocket subprotocol can carry), at most 1024 characters.
 * Anything else (empty, binary, a partial write) is replaced by a fresh random token.
 */
const PLAUSIBLE_TOKEN = /^[\x21-\x7e]{1,1024}$/;

/** Creation attempts before giving up, when other processes keep replacing the file under us. */
const MAX_ATTEMPTS = 5;

/** The admin credential: guards the dashboard's feed and the admin HTTP API. */
export class AdminToken {
  private readonly digest: Buffer;

  private constructor(
    token: string,
    /** The file that holds the token when ADMIN_TOKEN is empty (created, reused or replaced); undefined when ADMIN_TOKEN is set. */
    readonly generatedFile: string | undefined,
    readonly source: AdminTokenSource,
    /**
     * True when the token file's permissions let other users read or write it (group or other
     * bits set); the service still starts, and says so. Always false on Windows, whose file modes
     * say nothing about other users.
     */
    readonly fileOpenToOthers = false,
    /** The token file's permission bits (e.g. 0o644), when it was reused. */
    readonly fileMode?: number,
  ) {
    this.digest = sha256(token);
  }

  /**
   * Uses ADMIN_TOKEN when set. Otherwise reuses the token in `fallbackFile` when the file holds
   * one, so a restart keeps the dashboard's sign-in; when the file is missing it is created with a
   * random token (mode 0600, created exclusively, so that of two processes starting together one
   * writes it and the other reads the winner's); when it holds no usable token it is replaced.
   * The token itself is never logged.
   */
  static fromConfig(configured: string, fallbackFile: string): AdminToken {
    if (configured) return new AdminToken(configured, undefined, 'configured');
    let replacing = false;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const existing = readTokenFile(fallbackFile);
      if (existing.kind === 'token') {
        const mode = existing.mode & 0o777;
        return new AdminToken(existing.token, fallbackFile, 'reused', process.platform !== 'win32' && (mode & 0o077) !== 0, mode);
      }
      if (existing.kind === 'unusable') {
        // Empty or garbage: remove it and create it afresh below, through the same exclusive
        // creation as a missing file, so that a concurrent start still ends with one token.
        rmSync(fallbackFile, { force: true });
        replacing = true;
      }
      const token = randomBytes(24).toString('base64url');
      if (createExclusively(fallbackFile, `${token}\n`)) return new AdminToken(token, fallbackFile, replacing ? 'replaced' : 'created');
      // Another process created the file first: the next pass reads its token.
    }
    throw new Error(`could not create the admin token file ${fallbackFile}: other processes kept replacing it`);
  }

  /** True when the request presents the admin token (header or `bearer.` subprotocol). */
  verify(headers: Record<string, string>, protocols: readonly string[] = []): boolean {
    const secret = presentedSecret(headers, protocols);
    return secret !== undefined && matchesDigest(secret, this.digest);
  }
}

type TokenFile = { kind: 'missing' } | { kind: 'unusable' } | { kind: 'token'; token: string; mode: number };

function readTokenFile(file: string): TokenFile {
  let text: string;
  let mode: number;
  try {
    text = readFileSync(file, 'utf8');
    mode = statSync(file).mode;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'missing' };
    throw new Error(`cannot read the admin token file ${file} (${(error as NodeJS.ErrnoException).code})`, { cause: error });
  }
  const token = (text.split(/\r?\n/, 1)[0] ?? '').trim();
  return PLAUSIBLE_TOKEN.test(token) ? { kind: 'token', token, mode } : { kind: 'unusable' };
}

/**
 * Creates `file` holding `content` (mode 0600) only if it does not exist; false when it does.
 * The content is written to a private temporary file first and hard-linked to the name (which,
 * like the `wx` flag, fails when the name exists), so a process that loses the race never reads
 * a created-but-still-empty file. Where hard links are not supported, falls back to `wx`.
 */
function createExclusively(file: string, content: string): boolean {
  const temporary = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    writeFileSync(temporary, content, { mode: 0o600, flag: 'wx' });
    try {
      linkSync(temporary, file);
      return true;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') return false;
      if (!['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EXDEV'].includes(code ?? '')) throw error;
    }
    try {
      writeFileSync(file, content, { mode: 0o600, flag: 'wx' });
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw error;
    }
  } catch (error) {
    throw new Error(`cannot write the admin token file ${file} (${(error as NodeJS.ErrnoException).code})`, { cause: error });
  } finally {
    rmSync(temporary, { force: true });
  }
}
