import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_KEY_PREFIX, ApiKeyStore, KeysFileError, generateKey, type ApiKeyEntry } from '../../server/auth/api-keys.js';
import { writeKeysFileAtomically } from '../../server/auth/keys-file.js';

const hashOf = (key: string): string => createHash('sha256').update(key).digest('hex');
const ALICE_KEY = 'llm_alice-secret';
const BOB_KEY = 'llm_bob-secret';
const alice: ApiKeyEntry = { name: 'alice', hash: hashOf(ALICE_KEY), limits: { requestsPerSecond: 2, requestBurst: 10, maxStreams: 4 }, models: ['demo'] };
const bob: ApiKeyEntry = { name: 'bob', hash: hashOf(BOB_KEY), limits: {} };

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'api-keys-test-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

let fileCount = 0;
async function keysFile(content: unknown): Promise<string> {
  const file = path.join(dir, `keys-${++fileCount}.json`);
  await writeFile(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}

/** Loads a file expected to be invalid and returns the error message. */
async function loadError(content: unknown): Promise<string> {
  const file = await keysFile(content);
  const error = await ApiKeyStore.load(file).then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(KeysFileError);
  const message = (error as KeysFileError).message;
  expect(message).toContain(file);
  return message;
}

const entry = (overrides: Record<string, unknown>): Record<string, unknown> => ({ name: 'alice', hash: alice.hash, limits: {}, ...overrides });

describe('ApiKeyStore.load', () => {
  it('loads a valid file, normalising hashes and defaulting limits', async () => {
    const file = await keysFile({
      keys: [
        { ...alice, hash: alice.hash.toUpperCase() },
        { name: 'bob', hash: bob.hash },
      ],
    });
    const store = await ApiKeyStore.load(file);
    expect(store.size).toBe(2);
    expect(store.names()).toEqual(['alice', 'bob']);
    expect(store.authenticate(ALICE_KEY)).toEqual(alice);
    expect(store.authenticate(BOB_KEY)).toEqual({ name: 'bob', hash: bob.hash, limits: {} });
  });

  it('loads a file with no keys', async () => {
    const store = await ApiKeyStore.load(await keysFile({ keys: [] }));
    expect(store.size).toBe(0);
    expect(store.authenticate(ALICE_KEY)).toBeUndefined();
  });

  it('says so when the file is missing or not JSON', async () => {
    await expect(ApiKeyStore.load(path.join(dir, 'missing.json'))).rejects.toThrow(/missing\.json: cannot be read \(ENOENT\)/);
    expect(await loadError('{"keys": [')).toMatch(/is not valid JSON/);
  });

  it.each([
    ['a list instead of a document', [], 'must be a JSON object { "keys": [...] }'],
    ['keys that is not an array', { keys: {} }, '"keys" must be an array of entries'],
    ['an unknown top-level field', { keys: [], admin: true }, 'unknown top-level field "admin"'],
    ['an entry that is not an object', { keys: ['alice'] }, 'keys[0]: must be an object'],
    ['a missing name', { keys: [entry({ name: undefined })] }, 'keys[0]: "name" must be 1 to 64 letters'],
    ['a name with a newline', { keys: [entry({ name: 'al\nice' })] }, 'keys[0]: "name" must be'],
    ['a name too long', { keys: [entry({ name: 'a'.repeat(65) })] }, 'keys[0]: "name" must be'],
    ['an unknown entry field', { keys: [entry({ key: 'llm_x' })] }, 'keys[0] ("alice"): unknown field "key"'],
    ['a __proto__ field', { keys: [JSON.parse(`{"name":"alice","hash":"${alice.hash}","__proto__":{"admin":true}}`)] }, 'unknown field "__proto__"'],
    ['a hash of the wrong length', { keys: [entry({ hash: 'abc' })] }, 'keys[0] ("alice"): "hash" must be 64 hex digits'],
    ['a hash that is not hex', { keys: [entry({ hash: 'z'.repeat(64) })] }, '"hash" must be 64 hex digits'],
    ['a plaintext key in place of the hash', { keys: [entry({ hash: ALICE_KEY })] }, 'not the key itself'],
    ['the hash of an empty key', { keys: [entry({ hash: hashOf('') })] }, '"hash" is the SHA-256 of an empty key'],
    ['limits that are not an object', { keys: [entry({ limits: 5 })] }, '"limits" must be an object'],
    ['an unknown limit', { keys: [entry({ limits: { requestPerSecond: 1 } })] }, 'unknown limit "requestPerSecond"'],
    ['a zero limit', { keys: [entry({ limits: { requestsPerSecond: 0 } })] }, 'limits.requestsPerSecond must be a positive number, got 0'],
    ['a negative limit', { keys: [entry({ limits: { tokenBurst: -5 } })] }, 'limits.tokenBurst must be a positive number, got -5'],
    ['a limit given as text', { keys: [entry({ limits: { tokensPerSecond: '200' } })] }, 'limits.tokensPerSecond must be a positive number, got "200"'],
    ['a fractional stream cap', { keys: [entry({ limits: { maxStreams: 1.5 } })] }, 'limits.maxStreams must be a positive integer, got 1.5'],
    ['a fractional connection cap', { keys: [entry({ limits: { maxConnections: 0.5 } })] }, 'limits.maxConnections must be a positive integer'],
    ['models that are not an array', { keys: [entry({ models: 'demo' })] }, '"models" must be an array of model names'],
    ['an empty models list', { keys: [entry({ models: [] })] }, '"models" is empty'],
    ['a model that is not a string', { keys: [entry({ models: ['demo', 7] })] }, 'models[1] must be a model name'],
    ['an empty model name', { keys: [entry({ models: [''] })] }, 'models[0] must be a model name'],
    ['a duplicate name', { keys: [entry({}), entry({ hash: bob.hash })] }, 'keys[1]: name "alice" is already used by keys[0]'],
    ['a duplicate hash', { keys: [entry({}), entry({ name: 'bob', hash: alice.hash.toUpperCase() })] }, `keys[1] ("bob"): hash is the same as keys[0]'s`],
  ])('refuses %s with a clear message', async (_label, content, expected) => {
    const message = await loadError(content);
    expect(message).toContain(expected);
  });

  it('never repeats a misplaced key in its message', async () => {
    const message = await loadError({ keys: [entry({ hash: ALICE_KEY })] });
    expect(message).not.toContain(ALICE_KEY);
  });
});

describe('ApiKeyStore.authenticate', () => {
  const store = ApiKeyStore.fromEntries([alice, bob]);

  it('finds the entry of the right key', () => {
    expect(store.authenticate(ALICE_KEY)?.name).toBe('alice');
    expect(store.authenticate(BOB_KEY)?.name).toBe('bob');
  });

  it('finds nothing for a wrong, near or empty key', () => {
    expect(store.authenticate('llm_mallory')).toBeUndefined();
    expect(store.authenticate(`${ALICE_KEY} `)).toBeUndefined();
    expect(store.authenticate(ALICE_KEY.slice(0, -1))).toBeUndefined();
    expect(store.authenticate(alice.hash)).toBeUndefined();
    expect(store.authenticate('')).toBeUndefined();
  });

  it('returns entries that cannot be altered', () => {
    const found = store.authenticate(ALICE_KEY)!;
    expect(Object.isFrozen(found)).toBe(true);
    expect(Object.isFrozen(found.limits)).toBe(true);
    expect(Object.isFrozen(found.models)).toBe(true);
    expect(() => store.names().push('eve')).not.toThrow();
    expect(store.names()).toEqual(['alice', 'bob']);
  });

  it('validates entries given in code like a file', () => {
    expect(() => ApiKeyStore.fromEntries([alice, { ...bob, name: 'alice' }])).toThrow(KeysFileError);
    expect(() => ApiKeyStore.fromEntries([{ ...alice, hash: 'nope' }])).toThrow(/^keys file \(entries\): keys\[0\] \("alice"\): "hash"/);
    expect(ApiKeyStore.fromEntries([]).size).toBe(0);
  });
});

describe('generateKey', () => {
  it('makes an llm_ key of 32 random bytes whose hash is in the entry', () => {
    const { key, entry: made } = generateKey('carol', { tokensPerSecond: 200 }, ['demo', 'other']);
    expect(key).toMatch(/^llm_[A-Za-z0-9_-]{43}$/);
    expect(key.startsWith(API_KEY_PREFIX)).toBe(true);
    expect(Buffer.from(key.slice(4), 'base64url')).toHaveLength(32);
    expect(made).toEqual({ name: 'carol', hash: hashOf(key), limits: { tokensPerSecond: 200 }, models: ['demo', 'other'] });
    expect(JSON.stringify(made)).not.toContain(key.slice(4));
    expect(ApiKeyStore.fromEntries([made]).authenticate(key)?.name).toBe('carol');
  });

  it('gives a different key each time and no models field unless asked', () => {
    const first = generateKey('a');
    const second = generateKey('a');
    expect(first.key).not.toBe(second.key);
    expect(first.entry).toEqual({ name: 'a', hash: hashOf(first.key), limits: {} });
  });

  it('refuses a bad name or limits', () => {
    expect(() => generateKey('bad name')).toThrow(/"name" must be/);
    expect(() => generateKey('ok', { maxStreams: 0 })).toThrow(/limits\.maxStreams must be a positive integer/);
    expect(() => generateKey('ok', {}, [])).toThrow(/"models" is empty/);
  });
});

describe('writeKeysFileAtomically', () => {
  it('replaces the file with mode 0600 and leaves no temporary file', async () => {
    const sub = await mkdtemp(path.join(dir, 'atomic-'));
    const file = path.join(sub, 'keys.json');
    await writeFile(file, '{"keys": []}', { mode: 0o644 });
    await writeKeysFileAtomically(file, { keys: [alice] });
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await readdir(sub)).toEqual(['keys.json']);
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({ keys: [alice] });
    expect((await ApiKeyStore.load(file)).names()).toEqual(['alice']);
  });

  it('leaves the old file and no temporary file when the rename fails', async () => {
    const sub = await mkdtemp(path.join(dir, 'atomic-'));
    // A directory where the file should be: the rename over it fails.
    const target = path.join(sub, 'keys.json');
    await mkdir(target);
    await expect(writeKeysFileAtomically(target, { keys: [] })).rejects.toThrow();
    expect(await readdir(sub)).toEqual(['keys.json']);
  });
});
