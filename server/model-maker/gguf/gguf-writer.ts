import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ByteBuilder } from './byte-builder.js';
import {
  encodedByteLength, encodeValues, GGML_TYPE_IDS, isBlockQuantized, QUANT_BLOCK_VALUES, type GgufTensorType,
} from './tensor-encoding.js';

export type { GgufTensorType } from './tensor-encoding.js';

export type GgufValue =
  | { type: 'string'; value: string }
  | { type: 'uint32'; value: number }
  | { type: 'int32'; value: number }
  | { type: 'float32'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string[]'; value: readonly string[] }
  | { type: 'float32[]'; value: ArrayLike<number> }
  | { type: 'int32[]'; value: ArrayLike<number> };

/** Metadata key/values, written in insertion order. */
export type GgufMetadata = Readonly<Record<string, GgufValue>>;

export interface GgufTensorSource {
  name: string;
  /** Dimensions fastest-varying first, as GGUF stores them (token_embd.weight is [n_embd, n_vocab]). */
  dims: readonly number[];
  type: GgufTensorType;
  /** Yields the values in storage order, in chunks of any size (whole 32-value blocks for q8_0 and q4_0). */
  values: () => Iterable<Float32Array> | AsyncIterable<Float32Array>;
}

export interface GgufWriteSummary {
  path: string;
  bytes: number;
  tensorCount: number;
  parameterCount: number;
}

export class GgufWriteError extends Error {
  override name = 'GgufWriteError';
}

const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian uint32
const GGUF_VERSION = 3;
const DEFAULT_ALIGNMENT = 32;
const STAGING_BYTES = 8 * 1024 * 1024;
const VALUE_TYPE_IDS = { uint32: 4, int32: 5, float32: 6, bool: 7, string: 8, array: 9 } as const;

/**
 * Writes a GGUF v3 file, streaming tensor data one chunk at a time so memory stays flat whatever the model size.
 * The file appears at `path` only once complete: it is written under a temporary name and renamed.
 */
export async function writeGgufFile(
  path: string,
  metadata: GgufMetadata,
  tensors: readonly GgufTensorSource[],
): Promise<GgufWriteSummary> {
  const alignment = readAlignment(metadata);
  const layout = layOutTensors(tensors, alignment);
  const header = buildHeader(metadata, tensors, layout.offsets, alignment);

  await mkdir(dirname(path), { recursive: true });
  const tempPath = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const file = await open(tempPath, 'w');
  try {
    const sink = new StagedWriter(file);
    await sink.write(header);
    for (const [index, tensor] of tensors.entries()) {
      await writeTensorData(sink, tensor, layout.valueCounts[index]!);
      await sink.write(Buffer.alloc(paddingAfter(sink.position - header.length, alignment)));
    }
    await sink.flush();
    await file.sync();
    await file.close();
    await rename(tempPath, path);
    return {
      path,
      bytes: sink.position,
      tensorCount: tensors.length,
      parameterCount: layout.valueCounts.reduce((sum, count) => sum + count, 0),
    };
  } catch (error) {
    await file.close().catch(() => undefined);
    await rm(tempPath, { force: true });
    throw error;
  }
}

function readAlignment(metadata: GgufMetadata): number {
  const entry = metadata['general.alignment'];
  if (entry === undefined) return DEFAULT_ALIGNMENT;
  if (entry.type !== 'uint32' || entry.value <= 0 || entry.value % 8 !== 0) {
    throw new GgufWriteError('general.alignment must be a uint32 multiple of 8');
  }
  return entry.value;
}

function layOutTensors(tensors: readonly GgufTensorSource[], alignment: number) {
  const names = new Set<string>();
  const offsets: number[] = [];
  const valueCounts: number[] = [];
  let offset = 0;
  for (const tensor of tensors) {
    if (names.has(tensor.name)) throw new GgufWriteError(`duplicate tensor name ${tensor.name}`);
    names.add(tensor.name);
    if (tensor.dims.length === 0 || tensor.dims.some((dim) => !Number.isSafeInteger(dim) || dim <= 0)) {
      throw new GgufWriteError(`tensor ${tensor.name} has invalid dims [${tensor.dims.join(', ')}]`);
    }
    if (isBlockQuantized(tensor.type) && tensor.dims[0]! % QUANT_BLOCK_VALUES !== 0) {
      throw new GgufWriteError(
        `${tensor.type} tensor ${tensor.name} has rows of ${tensor.dims[0]} values; ${tensor.type} needs a multiple of ${QUANT_BLOCK_VALUES}`,
      );
    }
    const valueCount = tensor.dims.reduce((product, dim) => product * dim, 1);
    offsets.push(offset);
    valueCounts.push(valueCount);
    offset += encodedByteLength(tensor.type, valueCount);
    offset += paddingAfter(offset, alignment);
  }
  return { offsets, valueCounts };
}

function buildHeader(
  metadata: GgufMetadata,
  tensors: readonly GgufTensorSource[],
  offsets: readonly number[],
  alignment: number,
): Buffer {
  const entries = Object.entries(metadata);
  const hasAlignmentKey = 'general.alignment' in metadata;
  const out = new ByteBuilder();
  out.uint32(GGUF_MAGIC);
  out.uint32(GGUF_VERSION);
  out.uint64(tensors.length);
  out.uint64(entries.length + (hasAlignmentKey ? 0 : 1));
  for (const [key, value] of entries) {
    out.string(key);
    writeValue(out, value);
  }
  if (!hasAlignmentKey) {
    out.string('general.alignment');
    writeValue(out, { type: 'uint32', value: alignment });
  }
  for (const [index, tensor] of tensors.entries()) {
    out.string(tensor.name);
    out.uint32(tensor.dims.length);
    for (const dim of tensor.dims) out.uint64(dim);
    out.uint32(GGML_TYPE_IDS[tensor.type]);
    out.uint64(offsets[index]!);
  }
  out.zeros(paddingAfter(out.length, alignment));
  return out.toBuffer();
}

function writeValue(out: ByteBuilder, entry: GgufValue): void {
  switch (entry.type) {
    case 'string':
      out.uint32(VALUE_TYPE_IDS.string);
      return out.string(entry.value);
    case 'uint32':
      out.uint32(VALUE_TYPE_IDS.uint32);
      return out.uint32(entry.value);
    case 'int32':
      out.uint32(VALUE_TYPE_IDS.int32);
      return out.int32(entry.value);
    case 'float32':
      out.uint32(VALUE_TYPE_IDS.float32);
      return out.float32(entry.value);
    case 'bool':
      out.uint32(VALUE_TYPE_IDS.bool);
      return out.uint8(entry.value ? 1 : 0);
    case 'string[]':
      writeArrayHeader(out, VALUE_TYPE_IDS.string, entry.value.length);
      for (const item of entry.value) out.string(item);
      return;
    case 'float32[]':
      writeArrayHeader(out, VALUE_TYPE_IDS.float32, entry.value.length);
      for (let i = 0; i < entry.value.length; i++) out.float32(entry.value[i]!);
      return;
    case 'int32[]':
      writeArrayHeader(out, VALUE_TYPE_IDS.int32, entry.value.length);
      for (let i = 0; i < entry.value.length; i++) out.int32(entry.value[i]!);
      return;
  }
}

function writeArrayHeader(out: ByteBuilder, itemType: number, count: number): void {
  out.uint32(VALUE_TYPE_IDS.array);
  out.uint32(itemType);
  out.uint64(count);
}

async function writeTensorData(sink: StagedWriter, tensor: GgufTensorSource, expectedValues: number): Promise<void> {
  let written = 0;
  for await (const chunk of tensor.values()) {
    written += chunk.length;
    if (written > expectedValues) break;
    await sink.writeEncoded(tensor.type, chunk);
  }
  if (written !== expectedValues) {
    throw new GgufWriteError(`tensor ${tensor.name} produced ${written} values, expected ${expectedValues}`);
  }
}

function paddingAfter(offset: number, alignment: number): number {
  return (alignment - (offset % alignment)) % alignment;
}

// Collects small writes into one large buffer so a multi-GB file costs few syscalls.
class StagedWriter {
  private readonly staging = Buffer.alloc(STAGING_BYTES);
  private staged = 0;
  position = 0;

  constructor(private readonly file: FileHandle) {}

  async write(bytes: Buffer): Promise<void> {
    if (this.staged + bytes.length > this.staging.length) await this.flush();
    if (bytes.length > this.staging.length) {
      await this.writeFully(bytes);
    } else {
      bytes.copy(this.staging, this.staged);
      this.staged += bytes.length;
    }
    this.position += bytes.length;
  }

  async writeEncoded(type: GgufTensorType, values: Float32Array): Promise<void> {
    const byteLength = encodedByteLength(type, values.length);
    if (byteLength > this.staging.length) {
      const own = Buffer.allocUnsafe(byteLength);
      encodeValues(type, values, own, 0);
      return this.write(own);
    }
    if (this.staged + byteLength > this.staging.length) await this.flush();
    this.staged += encodeValues(type, values, this.staging, this.staged);
    this.position += byteLength;
  }

  async flush(): Promise<void> {
    if (this.staged === 0) return;
    await this.writeFully(this.staging.subarray(0, this.staged));
    this.staged = 0;
  }

  private async writeFully(bytes: Buffer): Promise<void> {
    let done = 0;
    while (done < bytes.length) {
      const { bytesWritten } = await this.file.write(bytes, done, bytes.length - done);
      done += bytesWritten;
    }
  }
}
