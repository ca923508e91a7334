/**
 * A single pass over msgpack bytes that admits only plain data before the decoder sees it:
 * maps with string keys, arrays, strings, numbers, booleans and nil. Extensions (msgpackr's
 * records, structured clone, Set, RegExp, Error...), binary blobs, nesting deeper than
 * MAX_DEPTH and headers that claim more items or bytes than the frame holds are refused here,
 * so the decoder never allocates for a lie.
 */

/**
 * Deepest nesting of maps and arrays a frame may have: room for a chat's JSON schema of 32 levels
 * (a level is up to two containers, as in `properties.name`) inside its frame.
 */
export const MAX_DEPTH = 80;

const remainingAt = new Float64Array(MAX_DEPTH + 1);
const isMapAt = new Uint8Array(MAX_DEPTH + 1);

/** Returns null when `bytes` hold exactly one plain msgpack value, else the reason they do not. */
export function checkPlainMsgpack(bytes: Uint8Array): string | null {
  const end = bytes.length;
  if (end === 0) return 'empty frame';
  let pos = 0;
  let depth = 0;
  remainingAt[0] = 1;
  isMapAt[0] = 0;
  while (depth >= 0) {
    if (remainingAt[depth] === 0) {
      depth--;
      continue;
    }
    if (pos >= end) return 'truncated msgpack';
    // Inside a map, every even-numbered item (counting down) is a key and must be a string.
    const expectKey = isMapAt[depth] === 1 && (remainingAt[depth]! % 2 === 0);
    remainingAt[depth]!--;
    const b = bytes[pos++]!;
    let strLen = -1;
    let count = -1;
    let map = false;
    if (b <= 0x7f || b >= 0xe0) {
      // fixint
    } else if (b <= 0x8f) {
      count = (b & 0x0f) * 2;
      map = true;
    } else if (b <= 0x9f) {
      count = b & 0x0f;
    } else if (b <= 0xbf) {
      strLen = b & 0x1f;
    } else {
      switch (b) {
        case 0xc0: case 0xc2: case 0xc3: break;
        case 0xca: pos += 4; break;
        case 0xcb: pos += 8; break;
        case 0xcc: case 0xd0: pos += 1; break;
        case 0xcd: case 0xd1: pos += 2; break;
        case 0xce: case 0xd2: pos += 4; break;
        case 0xcf: case 0xd3: pos += 8; break;
        case 0xd9: if (pos + 1 > end) return 'truncated msgpack'; strLen = bytes[pos]!; pos += 1; break;
        case 0xda: if (pos + 2 > end) return 'truncated msgpack'; strLen = read16(bytes, pos); pos += 2; break;
        case 0xdb: if (pos + 4 > end) return 'truncated msgpack'; strLen = read32(bytes, pos); pos += 4; break;
        case 0xdc: if (pos + 2 > end) return 'truncated msgpack'; count = read16(bytes, pos); pos += 2; break;
        case 0xdd: if (pos + 4 > end) return 'truncated msgpack'; count = read32(bytes, pos); pos += 4; break;
        case 0xde: if (pos + 2 > end) return 'truncated msgpack'; count = read16(bytes, pos) * 2; map = true; pos += 2; break;
        case 0xdf: if (pos + 4 > end) return 'truncated msgpack'; count = read32(bytes, pos) * 2; map = true; pos += 4; break;
        case 0xc4: case 0xc5: case 0xc6: return 'binary values are not accepted';
        case 0xc1: return 'invalid msgpack byte 0xc1';
        default: return 'msgpack extensions are not accepted';
      }
    }
    if (expectKey && strLen < 0) return 'map keys must be strings';
    if (strLen >= 0) pos += strLen;
    if (pos > end) return 'truncated msgpack';
    if (count > 0) {
      // Every item takes at least one byte, so a count beyond the bytes left is a lie.
      if (count > end - pos) return 'msgpack length header exceeds the frame';
      if (depth + 1 > MAX_DEPTH) return `nesting deeper than ${MAX_DEPTH}`;
      depth++;
      remainingAt[depth] = count;
      isMapAt[depth] = map ? 1 : 0;
    }
  }
  if (pos !== end) return 'trailing bytes after the frame';
  return null;
}

function read16(bytes: Uint8Array, pos: number): number {
  return (bytes[pos]! << 8) | bytes[pos + 1]!;
}

function read32(bytes: Uint8Array, pos: number): number {
  return bytes[pos]! * 0x1000000 + ((bytes[pos + 1]! << 16) | (bytes[pos + 2]! << 8) | bytes[pos + 3]!);
}
