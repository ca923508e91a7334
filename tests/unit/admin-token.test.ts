import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createAccessControl } from '../../server/auth/access-control.js';
import { AdminToken } from '../../server/auth/admin-token.js';
import { loadConfig } from '../../server/config/config.js';
import { tempDir } from '../helpers/service.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const GENERATED = /^[A-Za-z0-9_-]{32}\n$/;
const posixModes = process.platform !== 'win32';

let dir: string;
let file: string;
beforeEach(() => {
  dir = tempDir('admin-token-test');
  file = path.join(dir, '.admin-token');
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });
const mode = (target: string): number => statSync(target).mode & 0o777;

describe('AdminToken.fromConfig without ADMIN_TOKEN', () => {
  it('creates the file with mode 0600 and a random token the first time, leaving no temporary file', () => {
    const admin = AdminToken.fromConfig('', file);
    expect(admin.source).toBe('created');
    expect(admin.generatedFile).toBe(file);
    expect(admin.fileOpenToOthers).toBe(false);
    const content = readFileSync(file, 'utf8');
    expect(content).toMatch(GENERATED);
    if (posixModes) expect(mode(file)).toBe(0o600);
    expect(admin.verify(bearer(content.trim()))).toBe(true);
    expect(admin.verify(bearer('wrong'))).toBe(false);
    expect(readdirSync(dir)).toEqual(['.admin-token']);
  });

  it('reuses the same token on the next start and leaves the file as it was', () => {
    const first = AdminToken.fromConfig('', file);
    const content = readFileSync(file, 'utf8');
    const mtime = statSync(file).mtimeMs;
    const second = AdminToken.fromConfig('', file);
    expect(second.source).toBe('reused');
    expect(second.generatedFile).toBe(file);
    expect(second.fileOpenToOthers).toBe(false);
    expect(readFileSync(file, 'utf8')).toBe(content);
    expect(statSync(file).mtimeMs).toBe(mtime);
    expect(first.verify(bearer(content.trim()))).toBe(true);
    expect(second.verify(bearer(content.trim()))).toBe(true);
  });

  it("reuses an operator's own token: the first line, trimmed", () => {
    writeFileSync(file, '  my-own-token.42  \r\nnotes on the second line\n', { mode: 0o600 });
    const admin = AdminToken.fromConfig('', file);
    expect(admin.source).toBe('reused');
    expect(admin.verify(bearer('my-own-token.42'))).toBe(true);
    expect(readFileSync(file, 'utf8')).toContain('notes on the second line');
  });

  it.each([
    ['empty', ''],
    ['only a newline', '\n'],
    ['whitespace', '   \t \n'],
    ['an empty first line', '\nlooks-like-a-token\n'],
    ['binary bytes', Buffer.from([0x00, 0xff, 0xfe, 0x01, 0x0a])],
    ['a token with spaces', 'two words\n'],
    ['an overlong line', `${'a'.repeat(5000)}\n`],
  ])('replaces a file holding %s with a fresh token, mode 0600', (_name, content) => {
    writeFileSync(file, content, { mode: 0o644 });
    if (posixModes) chmodSync(file, 0o644);
    const admin = AdminToken.fromConfig('', file);
    expect(admin.source).toBe('replaced');
    const written = readFileSync(file, 'utf8');
    expect(written).toMatch(GENERATED);
    if (posixModes) expect(mode(file)).toBe(0o600);
    expect(admin.verify(bearer(written.trim()))).toBe(true);
    expect(AdminToken.fromConfig('', file).source).toBe('reused');
    expect(readdirSync(dir)).toEqual(['.admin-token']);
  });

  it.skipIf(!posixModes)('reuses a token file other users can read, and says so', () => {
    writeFileSync(file, 'shared-token\n');
    chmodSync(file, 0o644);
    const admin = AdminToken.fromConfig('', file);
    expect(admin.source).toBe('reused');
    expect(admin.fileOpenToOthers).toBe(true);
    expect(admin.fileMode).toBe(0o644);
    expect(admin.verify(bearer('shared-token'))).toBe(true);
    // Left alone: the operator decides.
    expect(mode(file)).toBe(0o644);
    chmodSync(file, 0o640);
    expect(AdminToken.fromConfig('', file).fileOpenToOthers).toBe(true);
    chmodSync(file, 0o600);
    expect(AdminToken.fromConfig('', file).fileOpenToOthers).toBe(false);
  });

  it('fails naming the file when it cannot be read', () => {
    mkdirSync(file);
    expect(() => AdminToken.fromConfig('', file)).toThrow(file);
  });

  it('fails naming the file when it cannot be created', () => {
    const missing = path.join(dir, 'no-such-folder', '.admin-token');
    expect(() => AdminToken.fromConfig('', missing)).toThrow(missing);
  });
});

describe('AdminToken.fromConfig with ADMIN_TOKEN', () => {
  it('wins over the file, which is neither read nor written', () => {
    writeFileSync(file, 'token-in-the-file\n', { mode: 0o600 });
    const admin = AdminToken.fromConfig('configured-token', file);
    expect(admin.source).toBe('configured');
    expect(admin.generatedFile).toBeUndefined();
    expect(admin.verify(bearer('configured-token'))).toBe(true);
    expect(admin.verify(bearer('token-in-the-file'))).toBe(false);
    expect(readFileSync(file, 'utf8')).toBe('token-in-the-file\n');

    const other = path.join(dir, 'never-written');
    AdminToken.fromConfig('configured-token', other);
    expect(readdirSync(dir)).toEqual(['.admin-token']);
  });
});

describe('createAccessControl', () => {
  async function logsOf(adminTokenFile: string): Promise<{ msg: string; [key: string]: unknown }[]> {
    const lines: string[] = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => lines.push(line) });
    await createAccessControl(loadConfig({ ADMIN_TOKEN_FILE: adminTokenFile }), logger);
    return lines.map((line) => JSON.parse(line) as { msg: string });
  }

  it('says whether the token file was created or reused, warns when others can read it, and never logs the token', async () => {
    const created = await logsOf(file);
    const token = readFileSync(file, 'utf8').trim();
    expect(created.map((record) => record.msg)).toContain('ADMIN_TOKEN is empty: a random admin token was written to this file');

    const reused = await logsOf(file);
    expect(reused).toContainEqual(expect.objectContaining({ msg: 'ADMIN_TOKEN is empty: using the admin token kept in this file', file }));
    expect(reused.some((record) => /other users/.test(record.msg))).toBe(false);

    if (posixModes) {
      chmodSync(file, 0o644);
      const open = await logsOf(file);
      expect(open).toContainEqual(expect.objectContaining({ level: 40, file, mode: '644', msg: expect.stringMatching(/other users/) }));
    }

    writeFileSync(file, '');
    const replaced = await logsOf(file);
    expect(replaced.map((record) => record.msg)).toContain('ADMIN_TOKEN is empty and this file held no usable token: a new random admin token was written to it');
    const newToken = readFileSync(file, 'utf8').trim();

    for (const record of [...created, ...reused, ...replaced]) {
      expect(JSON.stringify(record)).not.toContain(token);
      expect(JSON.stringify(record)).not.toContain(newToken);
    }
  });
});

/**
 * A process that loads AdminToken and says `ready`; then, for each round, calls fromConfig when
 * told `go` and prints its source, and prints whether the candidate token it is given next verifies.
 */
const CHILD = `
import { createInterface } from 'node:readline';
const { AdminToken } = await import(${JSON.stringify(pathToFileURL(path.join(ROOT, 'server/auth/admin-token.ts')).href)});
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
console.log('ready');
while (!(await lines.next()).done) {
  const admin = AdminToken.fromConfig('', process.argv[1]);
  console.log(admin.source);
  const candidate = (await lines.next()).value;
  console.log(admin.verify({ authorization: 'Bearer ' + candidate }) ? 'match' : 'mismatch');
}
`;

interface Racer {
  child: ChildProcess;
  next(): Promise<string>;
}

function startRacer(target: string): Racer {
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', CHILD, target], { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] });
  const iterator = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  return {
    child,
    next: async () => {
      const { value, done } = await iterator.next();
      if (done) throw new Error(`racer ${child.pid} ended early (exit ${child.exitCode})`);
      return value as string;
    },
  };
}

describe('concurrent starts', () => {
  it('of several processes on a missing file end with one token, which every process accepts', async () => {
    const racers = Array.from({ length: 4 }, () => startRacer(file));
    const all = (): Promise<string[]> => Promise.all(racers.map((racer) => racer.next()));
    try {
      expect(await all()).toEqual(racers.map(() => 'ready'));
      // Several rounds, each released together on a missing file, so that creations do race.
      for (let round = 0; round < 8; round++) {
        rmSync(file, { force: true });
        for (const racer of racers) racer.child.stdin!.write('go\n');
        const sources = await all();
        expect(sources.filter((source) => source === 'created'), `round ${round}: ${sources.join(' ')}`).toHaveLength(1);
        expect(sources.filter((source) => source === 'reused')).toHaveLength(racers.length - 1);

        const content = readFileSync(file, 'utf8');
        expect(content).toMatch(GENERATED);
        if (posixModes) expect(mode(file)).toBe(0o600);
        for (const racer of racers) racer.child.stdin!.write(`${content.trim()}\n`);
        expect(await all()).toEqual(racers.map(() => 'match'));
        expect(readdirSync(dir)).toEqual(['.admin-token']);
      }
    } finally {
      for (const racer of racers) racer.child.kill('SIGKILL');
    }
  });
});
