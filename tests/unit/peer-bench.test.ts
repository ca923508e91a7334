import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ensureLlamaServer, LlamaServerBuildError, llamaServerLocation } from '../../scripts/bench/peer-llama-build.js';
import { markdownTable, pairedRow, singleRow } from '../../scripts/bench/peer-table.js';

const release = (JSON.parse(readFileSync('node_modules/node-llama-cpp/llama/llama.cpp.info.json', 'utf8')) as { tag: string }).tag;

describe('llama-server location (bench:peer)', () => {
  it('defaults to a cache folder named after the llama.cpp release node-llama-cpp ships', () => {
    expect(llamaServerLocation({})).toEqual({
      release,
      dir: path.join(homedir(), '.cache', 'llm-stream', `llama-server-${release}`),
      binary: path.join(homedir(), '.cache', 'llm-stream', `llama-server-${release}`, 'build', 'bin', 'llama-server'),
      external: false,
    });
    expect(llamaServerLocation({ XDG_CACHE_HOME: '/var/cache/x' }).dir).toBe(`/var/cache/x/llm-stream/llama-server-${release}`);
  });

  it('honours LLAMA_SERVER_DIR and LLAMA_SERVER_BIN', () => {
    expect(llamaServerLocation({ LLAMA_SERVER_DIR: '/opt/ls' }).binary).toBe('/opt/ls/build/bin/llama-server');
    expect(llamaServerLocation({ LLAMA_SERVER_BIN: '/usr/local/bin/llama-server', LLAMA_SERVER_DIR: '/opt/ls' })).toMatchObject({ binary: '/usr/local/bin/llama-server', external: true });
  });
});

describe('ensureLlamaServer', () => {
  const saved = { ...process.env };
  const dirs: string[] = [];
  const tempDir = (): string => {
    const dir = mkdtempSync(path.join(tmpdir(), 'peer-build-'));
    dirs.push(dir);
    return dir;
  };
  afterEach(() => {
    process.env = { ...saved };
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it('uses an executable LLAMA_SERVER_BIN as is and refuses one that is not', async () => {
    const binary = path.join(tempDir(), 'llama-server');
    writeFileSync(binary, '#!/bin/sh\n');
    process.env.LLAMA_SERVER_BIN = binary;
    await expect(ensureLlamaServer(() => undefined)).rejects.toThrow(/is not an executable file/);
    chmodSync(binary, 0o755);
    await expect(ensureLlamaServer(() => undefined)).resolves.toBe(binary);
  });

  it('names the missing build tools instead of starting a build it cannot finish', async () => {
    process.env.LLAMA_SERVER_DIR = tempDir();
    process.env.PATH = tempDir(); // holds no cmake, git or compiler
    delete process.env.CC;
    delete process.env.CXX;
    const lines: string[] = [];
    const failure = ensureLlamaServer((line) => lines.push(line));
    await expect(failure).rejects.toBeInstanceOf(LlamaServerBuildError);
    await expect(failure).rejects.toThrow(/missing: cmake, git, cc, c\+\+\. On Debian\/Ubuntu: sudo apt-get install cmake git build-essential/);
    expect(lines).toEqual([]);
  });
});

describe('peer table', () => {
  it('shows medians and the median of the rounds\' ratios, ours over theirs', () => {
    const runs = { ours: [{ v: 10 }, { v: 30 }, { v: 20 }], theirs: [{ v: 20 }, { v: 40 }, { v: 10 }] };
    // Ratios per round: 0.5, 0.75, 2 -> 0.75; medians 20 and 20.
    expect(pairedRow('x', runs, (run) => run.v)).toEqual({ what: 'x', theirs: 20, ours: 20, ratio: 0.75 });
    expect(markdownTable([pairedRow('decode, tok/s', runs, (run) => run.v), singleRow('RSS, MiB', 1234.4, 617.2), singleRow('gap, ms', 0.5, Number.NaN)])).toBe(
      [
        '| what | llama-server | this service | ours / theirs |',
        '| --- | --- | --- | --- |',
        '| decode, tok/s | 20.0 | 20.0 | 0.75× |',
        '| RSS, MiB | 1,234 | 617 | 0.50× |',
        '| gap, ms | 0.50 | - | - |',
      ].join('\n'),
    );
  });
});
