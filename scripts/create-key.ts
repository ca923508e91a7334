/**
 * Creates a client API key: appends its SHA-256 hash to the keys file (created when missing) and
 * prints the key once. stdout carries the key alone, so `KEY=$(npm run -s create-key -- ...)` works;
 * everything else goes to stderr.
 */
import { access } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { generateKey, KeysFileError, type ApiKeyLimits } from '../server/auth/api-keys.js';
import { readKeysFile, writeKeysFileAtomically } from '../server/auth/keys-file.js';
import { isValidKeyName, KEY_NAME_RULE } from '../server/auth/keys-file-schema.js';

const USAGE = `usage: npm run -s create-key -- --name NAME [--file keys.json]
  [--rps N] [--burst N] [--tps N] [--token-burst N] [--max-streams N] [--max-connections N]
  [--models demo,other]
Limits left out use the service defaults; --models left out allows every model.`;

class UsageError extends Error {
  override name = 'UsageError';
}

/** Command-line flags of each limit, and whether it counts things (a whole number). */
const LIMIT_FLAGS = {
  rps: { field: 'requestsPerSecond', integer: false },
  burst: { field: 'requestBurst', integer: false },
  tps: { field: 'tokensPerSecond', integer: false },
  'token-burst': { field: 'tokenBurst', integer: false },
  'max-streams': { field: 'maxStreams', integer: true },
  'max-connections': { field: 'maxConnections', integer: true },
} as const satisfies Record<string, { field: keyof ApiKeyLimits; integer: boolean }>;

async function main(): Promise<void> {
  const { values } = parseCommandLine();
  if (values.help) {
    console.error(USAGE);
    return;
  }
  const name = values.name as string | undefined;
  if (name === undefined) throw new UsageError('--name is required');
  if (!isValidKeyName(name)) throw new UsageError(`--name must be ${KEY_NAME_RULE}`);
  const file = path.resolve(values.file as string);
  const limits = parseLimits(values);
  const models = parseModels(values.models as string | undefined);

  const existing = (await exists(file)) ? await readKeysFile(file) : { entries: [], document: { keys: [] } };
  if (existing.entries.some((entry) => entry.name === name)) throw new KeysFileError(file, `a key named "${name}" already exists`);
  const { key, entry } = generateKey(name, limits, models);
  await writeKeysFileAtomically(file, { ...existing.document, keys: [...existing.document.keys, entry] });

  console.error(`Added key "${name}" to ${file} (${describeGrant(entry.limits, entry.models)}).`);
  process.stdout.write(`${key}\n`);
  console.error('This key is shown only now and cannot be shown again: only its SHA-256 hash was stored.');
}

function parseCommandLine() {
  try {
    return parseArgs({
      options: {
        name: { type: 'string' },
        file: { type: 'string', default: 'keys.json' },
        models: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        ...Object.fromEntries(Object.keys(LIMIT_FLAGS).map((flag) => [flag, { type: 'string' as const }])),
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (error) {
    // Unknown flags, missing values, stray arguments: the user's mistake, answered with the usage.
    throw new UsageError((error as Error).message);
  }
}

function parseLimits(values: Record<string, string | boolean | undefined>): ApiKeyLimits {
  const limits: ApiKeyLimits = {};
  for (const [flag, { field, integer }] of Object.entries(LIMIT_FLAGS)) {
    const text = values[flag];
    if (typeof text !== 'string') continue;
    const value = Number(text);
    if (text.trim() === '' || !Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
      throw new UsageError(`--${flag} must be a positive ${integer ? 'integer' : 'number'}, got "${text}"`);
    }
    limits[field] = value;
  }
  return limits;
}

function parseModels(text: string | undefined): string[] | undefined {
  if (text === undefined) return undefined;
  const models = text.split(',').map((model) => model.trim()).filter((model) => model !== '');
  if (models.length === 0) throw new UsageError('--models must name at least one model (leave it out to allow all)');
  return [...new Set(models)];
}

function describeGrant(limits: ApiKeyLimits, models: readonly string[] | undefined): string {
  const set = Object.entries(limits).map(([field, value]) => `${field} ${value}`);
  const limitText = set.length === 0 ? 'default limits' : set.join(', ');
  return `${limitText}; models: ${models === undefined ? 'all' : models.join(', ')}`;
}

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw new KeysFileError(file, `cannot be accessed (${(error as NodeJS.ErrnoException).code})`, { cause: error });
  }
}

main().catch((error: unknown) => {
  if (error instanceof UsageError) console.error(`${error.message}\n${USAGE}`);
  else if (error instanceof KeysFileError) console.error(error.message);
  else console.error(error);
  process.exitCode = 1;
});
