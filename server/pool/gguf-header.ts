import { open } from 'node:fs/promises';

export interface GgufHeaderInfo {
  version: number;
  tensorCount: number;
  kvCount: number;
  fileSize: number;
}

export class GgufHeaderError extends Error {
  override name = 'GgufHeaderError';

  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`${path}: ${reason}`);
  }
}

const MAGIC = Buffer.from('GGUF', 'ascii');
const HEADER_BYTES = 24; // magic, uint32 version, uint64 tensor count, uint64 metadata count
const SUPPORTED_VERSIONS = new Set([2, 3]);
// Smallest possible encodings: a tensor info is name length + n_dims + type + offset;
// a KV entry is key length + value type + a one-byte value.
const MIN_TENSOR_INFO_BYTES = 8 + 4 + 4 + 8;
const MIN_KV_ENTRY_BYTES = 8 + 4 + 1;

/**
 * Reads only the fixed GGUF header and checks that it can describe a real model of this file's size.
 * A garbage header can make a full GGUF parser loop or allocate wildly, so call this before loading a model.
 * Throws GgufHeaderError with a human-readable `reason` when the file is not a plausible GGUF model.
 */
export async function inspectGgufHeader(path: string): Promise<GgufHeaderInfo> {
  const file = await open(path, 'r');
  try {
    const fileSize = (await file.stat()).size;
    const header = Buffer.alloc(HEADER_BYTES);
    const { bytesRead } = await file.read(header, 0, HEADER_BYTES, 0);
    return parseHeader(path, header.subarray(0, bytesRead), fileSize);
  } finally {
    await file.close();
  }
}

function parseHeader(path: string, header: Buffer, fileSize: number): GgufHeaderInfo {
  const fail = (reason: string): never => {
    throw new GgufHeaderError(path, reason);
  };
  if (header.length < MAGIC.length) fail(`truncated (${fileSize} bytes, too short for a GGUF header)`);
  if (!header.subarray(0, MAGIC.length).equals(MAGIC)) fail('not a GGUF file (bad magic)');
  if (header.length < HEADER_BYTES) fail(`truncated (${fileSize} bytes, too short for a GGUF header)`);

  const version = header.readUInt32LE(4);
  if (!SUPPORTED_VERSIONS.has(version)) {
    const swapped = header.readUInt32BE(4);
    fail(
      SUPPORTED_VERSIONS.has(swapped)
        ? `big-endian GGUF version ${swapped} is not supported`
        : `unsupported GGUF version ${version}`,
    );
  }

  const tensorCount = header.readBigUInt64LE(8);
  const kvCount = header.readBigUInt64LE(16);
  const spaceAfterHeader = BigInt(Math.max(0, fileSize - HEADER_BYTES));
  if (tensorCount === 0n) fail('no tensors (not a model file)');
  if (tensorCount * BigInt(MIN_TENSOR_INFO_BYTES) > spaceAfterHeader) {
    fail(`tensor count ${tensorCount} impossible for a ${fileSize}-byte file`);
  }
  if (kvCount * BigInt(MIN_KV_ENTRY_BYTES) > spaceAfterHeader) {
    fail(`KV count ${kvCount} impossible for a ${fileSize}-byte file`);
  }
  const minimumSize =
    tensorCount * BigInt(MIN_TENSOR_INFO_BYTES) + kvCount * BigInt(MIN_KV_ENTRY_BYTES);
  if (minimumSize > spaceAfterHeader) {
    fail(`${tensorCount} tensors and ${kvCount} KV entries impossible for a ${fileSize}-byte file`);
  }
  return { version, tensorCount: Number(tensorCount), kvCount: Number(kvCount), fileSize };
}
