import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiKeyStore } from '../../server/auth/api-keys.js';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '../..');

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the script as an operator would, from the repository root. */
async function createKey(...args: string[]): Promise<Outcome> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'scripts/create-key.ts', ...args], { cwd: ROOT });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

const KEY_LINE = /^llm_[A-Za-z0-9_-]{43}\n$/;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'create-key-test-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('scripts/create-key.ts', () => {
  it('creates the file, prints the key alone on stdout once, and the key authenticates', async () => {
    const file = path.join(dir, 'keys.json');
    const alice = await createKey('--name', 'alice', '--file', file, '--rps', '2', '--burst', '10', '--tps', '200', '--token-burst', '2000', '--max-streams', '4', '--max-connections', '8', '--models', 'demo,other');
    expect(alice.code).toBe(0);
    expect(alice.stdout).toMatch(KEY_LINE);
    const key = alice.stdout.trim();
    expect(alice.stderr).toMatch(/cannot be shown again/);
    expect(alice.stderr).not.toContain(key);
    expect(alice.stderr.split('\n').filter((line) => /cannot be shown again/.test(line))).toHaveLength(1);

    const stored = await readFile(file, 'utf8');
    expect(stored).not.toContain(key);
    expect(stored).not.toContain(key.slice(4));
    expect((await stat(file)).mode & 0o777).toBe(0o600);

    const store = await ApiKeyStore.load(file);
    expect(store.authenticate(key)).toEqual({
      name: 'alice',
      hash: expect.stringMatching(/^[0-9a-f]{64}$/),
      limits: { requestsPerSecond: 2, requestBurst: 10, tokensPerSecond: 200, tokenBurst: 2000, maxStreams: 4, maxConnections: 8 },
      models: ['demo', 'other'],
    });
    expect(store.authenticate(`${key}x`)).toBeUndefined();
  });

  it('appends to an existing file, keeping earlier entries as they were', async () => {
    const file = path.join(dir, 'append.json');
    const first = await createKey('--name', 'alice', '--file', file);
    const before = JSON.parse(await readFile(file, 'utf8')) as { keys: unknown[] };
    const second = await createKey('--name', 'bob', '--file', file, '--models', 'demo');
    expect(second.code).toBe(0);
    const after = JSON.parse(await readFile(file, 'utf8')) as { keys: unknown[] };
    expect(after.keys[0]).toEqual(before.keys[0]);
    const store = await ApiKeyStore.load(file);
    expect(store.names()).toEqual(['alice', 'bob']);
    expect(store.authenticate(first.stdout.trim())?.name).toBe('alice');
    expect(store.authenticate(second.stdout.trim())).toMatchObject({ name: 'bob', limits: {}, models: ['demo'] });
    expect(await readdir(dir)).not.toContainEqual(expect.stringMatching(/\.tmp$/));
  });

  it('refuses a duplicate name and leaves the file untouched', async () => {
    const file = path.join(dir, 'duplicate.json');
    await createKey('--name', 'alice', '--file', file);
    const before = await readFile(file, 'utf8');
    const again = await createKey('--name', 'alice', '--file', file);
    expect(again.code).toBe(1);
    expect(again.stdout).toBe('');
    expect(again.stderr).toContain('a key named "alice" already exists');
    expect(await readFile(file, 'utf8')).toBe(before);
  });

  it('refuses to append to a broken keys file', async () => {
    const file = path.join(dir, 'broken.json');
    await writeFile(file, '{"keys": [{"name": "x"}]}');
    const outcome = await createKey('--name', 'alice', '--file', file);
    expect(outcome.code).toBe(1);
    expect(outcome.stdout).toBe('');
    expect(outcome.stderr).toContain(`keys file ${file}: keys[0] ("x"): "hash" must be 64 hex digits`);
    expect(await readFile(file, 'utf8')).toBe('{"keys": [{"name": "x"}]}');
  });

  it.each([
    [['--file', 'x.json'], '--name is required'],
    [['--name', 'bad name'], '--name must be 1 to 64 letters'],
    [['--name', 'a', '--rps', '0'], '--rps must be a positive number, got "0"'],
    [['--name', 'a', '--max-streams', '2.5'], '--max-streams must be a positive integer'],
    [['--name', 'a', '--models', ','], '--models must name at least one model'],
    [['--name', 'a', '--rate', '3'], "Unknown option '--rate'"],
  ])('refuses %j with a usage message and prints no key', async (args, message) => {
    const file = path.join(dir, 'usage.json');
    const outcome = await createKey(...args.map((arg) => (arg === 'x.json' ? file : arg)), ...(args.includes('--file') ? [] : ['--file', file]));
    expect(outcome.code).toBe(1);
    expect(outcome.stdout).toBe('');
    expect(outcome.stderr).toContain(message);
    expect(outcome.stderr).toContain('usage: npm run -s create-key');
    await expect(stat(file)).rejects.toThrow(/ENOENT/);
  });
});
