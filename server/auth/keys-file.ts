import { randomBytes } from 'node:crypto';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { KeysFileError, parseKeysDocument, type ApiKeyEntry } from './keys-file-schema.js';

/** A keys file as read: its validated entries, and the raw document to rewrite without reformatting entries. */
export interface KeysFileContents {
  entries: ApiKeyEntry[];
  document: { keys: unknown[] };
}

/** Reads and validates a keys file; every problem (missing, unreadable, not JSON, invalid) is a KeysFileError. */
export async function readKeysFile(path: string): Promise<KeysFileContents> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new KeysFileError(path, `cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, { cause: error });
  }
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (error) {
    throw new KeysFileError(path, `is not valid JSON (${(error as Error).message})`, { cause: error });
  }
  const entries = parseKeysDocument(document, path);
  return { entries, document: document as { keys: unknown[] } };
}

/**
 * Replaces the keys file in one step: writes a temporary file beside it (mode 0600) and renames it
 * over the old one, so a reader (the server reloading) sees the old file or the new, never half.
 */
export async function writeKeysFileAtomically(path: string, document: { keys: unknown[] }): Promise<void> {
  const temporary = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    // 'wx': never follow or reuse a file someone placed at the temporary name.
    const handle = await open(temporary, 'wx', 0o600);
    try {
      await handle.writeFile(`${JSON.stringify(document, null, 2)}\n`);
      // On disk before the rename, so a crash cannot leave an empty keys file behind the new name.
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw new KeysFileError(path, `cannot be written (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, { cause: error });
  }
}
