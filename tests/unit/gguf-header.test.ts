import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GgufHeaderError, inspectGgufHeader } from '../../server/pool/gguf-header.js';
import { writeGgufFile } from '../../server/model-maker/gguf/gguf-writer.js';

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gguf-header-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

// A 24-byte GGUF header followed by `padding` zero bytes.
function header(options: { magic?: string; version?: number; tensors?: bigint; kvs?: bigint; padding?: number }): Buffer {
  const bytes = Buffer.alloc(24 + (options.padding ?? 1210));
  bytes.write(options.magic ?? 'GGUF', 0, 'ascii');
  bytes.writeUInt32LE(options.version ?? 3, 4);
  bytes.writeBigUInt64LE(options.tensors ?? 1n, 8);
  bytes.writeBigUInt64LE(options.kvs ?? 1n, 16);
  return bytes;
}

async function reasonFor(contents: Buffer): Promise<string> {
  const path = join(dir, `case-${Math.random().toString(36).slice(2)}.gguf`);
  await writeFile(path, contents);
  const error = await inspectGgufHeader(path).then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(GgufHeaderError);
  expect((error as GgufHeaderError).path).toBe(path);
  return (error as GgufHeaderError).reason;
}

describe('inspectGgufHeader', () => {
  it('accepts a file written by the GGUF writer', async () => {
    const path = join(dir, 'good.gguf');
    await writeGgufFile(path, { 'general.name': { type: 'string', value: 'header-test' } }, [
      { name: 'weights', dims: [32, 2], type: 'f16', values: () => [new Float32Array(64).fill(0.5)] },
    ]);
    const info = await inspectGgufHeader(path);
    expect(info).toMatchObject({ version: 3, tensorCount: 1, kvCount: 2 }); // general.alignment is added
    expect(info.fileSize).toBeGreaterThan(24);
  });

  it('accepts version 2 headers', async () => {
    const path = join(dir, 'v2.gguf');
    await writeFile(path, header({ version: 2 }));
    await expect(inspectGgufHeader(path)).resolves.toMatchObject({ version: 2, tensorCount: 1, kvCount: 1, fileSize: 1234 });
  });

  it('rejects a file with the wrong magic', async () => {
    expect(await reasonFor(header({ magic: 'GGML' }))).toBe('not a GGUF file (bad magic)');
    expect(await reasonFor(Buffer.from('{"model": "not really"}\n'))).toBe('not a GGUF file (bad magic)');
  });

  it('rejects truncated files', async () => {
    expect(await reasonFor(Buffer.alloc(0))).toMatch(/^truncated/);
    expect(await reasonFor(Buffer.from('GG'))).toMatch(/^truncated/);
    expect(await reasonFor(header({}).subarray(0, 20))).toBe('truncated (20 bytes, too short for a GGUF header)');
  });

  it('rejects unsupported versions', async () => {
    expect(await reasonFor(header({ version: 7 }))).toBe('unsupported GGUF version 7');
    expect(await reasonFor(header({ version: 1 }))).toBe('unsupported GGUF version 1');
  });

  it('names big-endian files instead of reporting a huge version', async () => {
    const bytes = header({});
    bytes.writeUInt32BE(3, 4);
    expect(await reasonFor(bytes)).toBe('big-endian GGUF version 3 is not supported');
  });

  it('rejects tensor and KV counts the file cannot hold', async () => {
    expect(await reasonFor(header({ tensors: 4294967295n }))).toBe('tensor count 4294967295 impossible for a 1234-byte file');
    expect(await reasonFor(header({ tensors: 2n ** 64n - 1n }))).toBe(
      'tensor count 18446744073709551615 impossible for a 1234-byte file',
    );
    expect(await reasonFor(header({ kvs: 1000n }))).toBe('KV count 1000 impossible for a 1234-byte file');
    // Each count alone fits, together they do not.
    expect(await reasonFor(header({ tensors: 40n, kvs: 20n }))).toBe(
      '40 tensors and 20 KV entries impossible for a 1234-byte file',
    );
  });

  it('rejects a GGUF without tensors, which cannot be a model', async () => {
    expect(await reasonFor(header({ tensors: 0n }))).toBe('no tensors (not a model file)');
  });

  it('lets a missing file fail with the usual ENOENT error', async () => {
    await expect(inspectGgufHeader(join(dir, 'missing.gguf'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
