import { open } from 'node:fs/promises';

const GGUF_MAGIC = 0x46554747;
const HEAD_BYTES = 64 * 1024;
// Byte sizes of GGUF's fixed-size value types, by type id; 8 (string) and 9 (array) are handled apart.
const FIXED_SIZES: Readonly<Record<number, number>> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
const STRING = 8;
const ARRAY = 9;

/**
 * Reads the string values of `keys` from the start of a GGUF file's metadata (its first 64 KiB, where writers
 * put the general.* keys). Keys that are absent, not strings, or further in are missing from the result; a file
 * that is not GGUF gives an empty result.
 */
export async function readGgufHeadStrings(path: string, keys: readonly string[]): Promise<Record<string, string>> {
  const file = await open(path, 'r');
  let head: Buffer;
  try {
    const buffer = Buffer.alloc(HEAD_BYTES);
    const { bytesRead } = await file.read(buffer, 0, HEAD_BYTES, 0);
    head = buffer.subarray(0, bytesRead);
  } finally {
    await file.close();
  }
  const found: Record<string, string> = {};
  if (head.length < 24 || head.readUInt32LE(0) !== GGUF_MAGIC || head.readUInt32LE(4) < 2) return found;
  const wanted = new Set(keys);
  const kvCount = Number(head.readBigUInt64LE(16));
  let at = 24;
  const readString = (): string => {
    const length = Number(head.readBigUInt64LE(at));
    if (at + 8 + length > head.length) throw new RangeError('past the head');
    const text = head.toString('utf8', at + 8, at + 8 + length);
    at += 8 + length;
    return text;
  };
  const skipValue = (type: number): void => {
    if (type === STRING) {
      readString();
    } else if (type === ARRAY) {
      const itemType = head.readUInt32LE(at);
      const count = Number(head.readBigUInt64LE(at + 4));
      at += 12;
      if (itemType !== STRING && itemType !== ARRAY && FIXED_SIZES[itemType] !== undefined) at += count * FIXED_SIZES[itemType];
      else for (let i = 0; i < count; i++) skipValue(itemType);
    } else {
      const size = FIXED_SIZES[type];
      if (size === undefined) throw new RangeError(`unknown GGUF value type ${type}`);
      at += size;
    }
  };
  try {
    for (let index = 0; index < kvCount && Object.keys(found).length < wanted.size; index++) {
      const key = readString();
      const type = head.readUInt32LE(at);
      at += 4;
      if (wanted.has(key) && type === STRING) found[key] = readString();
      else skipValue(type);
    }
  } catch (error) {
    // A truncated head or a value past 64 KiB: what was found so far is the answer.
    if (!(error instanceof RangeError)) throw error;
  }
  return found;
}
