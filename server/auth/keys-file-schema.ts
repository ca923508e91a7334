import { sha256 } from './bearer.js';

/** Per-key limits; each overrides the service default of the same meaning. */
export interface ApiKeyLimits {
  requestsPerSecond?: number;
  requestBurst?: number;
  tokensPerSecond?: number;
  tokenBurst?: number;
  maxStreams?: number;
  maxConnections?: number;
}

/** One key as stored: a name safe to log, the SHA-256 of the key (never the key), its limits and models. */
export interface ApiKeyEntry {
  name: string;
  /** 64 lowercase hex digits: SHA-256 of the key. */
  hash: string;
  limits: ApiKeyLimits;
  /** Models the key may use; absent: all. */
  models?: string[];
}

/** Raised for a keys file (or entry list) the service cannot use; the message names the file, entry and field. */
export class KeysFileError extends Error {
  constructor(readonly file: string, message: string, options?: { cause?: unknown }) {
    super(`keys file ${file}: ${message}`, options);
    this.name = 'KeysFileError';
  }
}

/** Limits that count things and must be whole numbers; the rest are rates and may be fractional. */
const LIMIT_FIELDS = {
  requestsPerSecond: 'number',
  requestBurst: 'number',
  tokensPerSecond: 'number',
  tokenBurst: 'number',
  maxStreams: 'integer',
  maxConnections: 'integer',
} as const satisfies Record<keyof ApiKeyLimits, 'number' | 'integer'>;

const ENTRY_FIELDS = ['name', 'hash', 'limits', 'models'];

/** Key names appear in logs and metrics labels, so they are kept to characters that cannot forge a line. */
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** The rule for key names, as told to whoever broke it. */
export const KEY_NAME_RULE = '1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit';

/** True when `name` may name a key. */
export const isValidKeyName = (name: string): boolean => NAME_PATTERN.test(name);
const HASH_PATTERN = /^[0-9a-fA-F]{64}$/;
const MODEL_NAME_MAX = 256;

// Nobody should be let in by presenting nothing.
const EMPTY_SECRET_HASH = sha256('').toString('hex');

/** Validates a parsed keys document `{ "keys": [...] }` into frozen entries; throws KeysFileError. */
export function parseKeysDocument(document: unknown, file: string): ApiKeyEntry[] {
  if (!isPlainObject(document)) throw new KeysFileError(file, 'must be a JSON object { "keys": [...] }');
  const unknown = Object.keys(document).filter((key) => key !== 'keys');
  if (unknown.length > 0) throw new KeysFileError(file, `unknown top-level field "${unknown[0]}" (expected only "keys")`);
  if (!Array.isArray(document.keys)) throw new KeysFileError(file, '"keys" must be an array of entries');
  return validateEntries(document.keys, file);
}

/** Validates entries one by one, then that names and hashes are unique; returns frozen, normalised copies. */
export function validateEntries(entries: readonly unknown[], file: string): ApiKeyEntry[] {
  const parsed = entries.map((entry, index) => validateEntry(entry, file, index));
  const names = new Map<string, number>();
  const hashes = new Map<string, number>();
  parsed.forEach((entry, index) => {
    const sameName = names.get(entry.name);
    if (sameName !== undefined) throw new KeysFileError(file, `keys[${index}]: name "${entry.name}" is already used by keys[${sameName}]`);
    names.set(entry.name, index);
    const sameHash = hashes.get(entry.hash);
    if (sameHash !== undefined) throw new KeysFileError(file, `keys[${index}] ("${entry.name}"): hash is the same as keys[${sameHash}]'s`);
    hashes.set(entry.hash, index);
  });
  return parsed;
}

/** Validates one entry; `index` only places it in messages. */
export function validateEntry(value: unknown, file: string, index: number): ApiKeyEntry {
  const where = `keys[${index}]`;
  if (!isPlainObject(value)) throw new KeysFileError(file, `${where}: must be an object`);
  const { name, hash, limits, models } = value;
  if (typeof name !== 'string' || !NAME_PATTERN.test(name)) {
    throw new KeysFileError(file, `${where}: "name" must be ${KEY_NAME_RULE}`);
  }
  const at = `${where} ("${name}")`;
  const unknown = Object.keys(value).filter((key) => !ENTRY_FIELDS.includes(key));
  if (unknown.length > 0) throw new KeysFileError(file, `${at}: unknown field "${unknown[0]}" (expected ${ENTRY_FIELDS.join(', ')})`);
  if (typeof hash !== 'string' || !HASH_PATTERN.test(hash)) {
    throw new KeysFileError(file, `${at}: "hash" must be 64 hex digits (the SHA-256 of the key), not the key itself`);
  }
  const normalisedHash = hash.toLowerCase();
  if (normalisedHash === EMPTY_SECRET_HASH) throw new KeysFileError(file, `${at}: "hash" is the SHA-256 of an empty key`);
  const entry: ApiKeyEntry = { name, hash: normalisedHash, limits: Object.freeze(validateLimits(limits, file, at)) };
  if (models !== undefined) entry.models = Object.freeze(validateModels(models, file, at)) as string[];
  return Object.freeze(entry);
}

function validateLimits(value: unknown, file: string, at: string): ApiKeyLimits {
  if (value === undefined) return {};
  if (!isPlainObject(value)) throw new KeysFileError(file, `${at}: "limits" must be an object`);
  const limits: ApiKeyLimits = {};
  for (const [field, raw] of Object.entries(value)) {
    if (!Object.hasOwn(LIMIT_FIELDS, field)) {
      throw new KeysFileError(file, `${at}: unknown limit "${field}" (expected ${Object.keys(LIMIT_FIELDS).join(', ')})`);
    }
    const kind = LIMIT_FIELDS[field as keyof ApiKeyLimits];
    const valid = typeof raw === 'number' && Number.isFinite(raw) && raw > 0 && (kind === 'number' || Number.isInteger(raw));
    if (!valid) throw new KeysFileError(file, `${at}: limits.${field} must be a positive ${kind === 'integer' ? 'integer' : 'number'}, got ${JSON.stringify(raw).slice(0, 40)}`);
    limits[field as keyof ApiKeyLimits] = raw;
  }
  return limits;
}

function validateModels(value: unknown, file: string, at: string): string[] {
  if (!Array.isArray(value)) throw new KeysFileError(file, `${at}: "models" must be an array of model names`);
  if (value.length === 0) throw new KeysFileError(file, `${at}: "models" is empty, which would allow no model (leave it out to allow all)`);
  value.forEach((model, i) => {
    if (typeof model !== 'string' || model.length === 0 || model.length > MODEL_NAME_MAX) {
      throw new KeysFileError(file, `${at}: models[${i}] must be a model name of 1 to ${MODEL_NAME_MAX} characters`);
    }
  });
  return [...(value as string[])];
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
