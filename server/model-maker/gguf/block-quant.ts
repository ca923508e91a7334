import { float16BitsToNumber, float32ToFloat16Bits } from './f16.js';

/** Values per block in ggml's Q8_0 and Q4_0 formats: a row must hold a whole number of blocks. */
export const QUANT_BLOCK_VALUES = 32;
/** One f16 scale, then 32 int8 quants. */
export const Q8_0_BLOCK_BYTES = 2 + QUANT_BLOCK_VALUES;
/** One f16 scale, then 32 4-bit quants packed two to a byte. */
export const Q4_0_BLOCK_BYTES = 2 + QUANT_BLOCK_VALUES / 2;

const HALF_BLOCK = QUANT_BLOCK_VALUES / 2;

/**
 * Quantizes whole blocks of `values` to Q8_0 into `out` at `offset`, exactly as ggml's quantize_row_q8_0_ref:
 * d = amax / 127, q = round-half-away(x / d). Returns the bytes written.
 */
export function quantizeQ8_0(values: Float32Array, out: Buffer, offset: number): number {
  const blocks = wholeBlocks(values.length);
  for (let block = 0; block < blocks; block++) {
    const first = block * QUANT_BLOCK_VALUES;
    const at = offset + block * Q8_0_BLOCK_BYTES;
    let amax = 0;
    for (let i = 0; i < QUANT_BLOCK_VALUES; i++) amax = Math.max(amax, Math.abs(values[first + i]!));
    // ggml divides by the f32 scale and stores only its f16 rounding.
    const d = Math.fround(amax / 127);
    const inverse = d !== 0 ? Math.fround(1 / d) : 0;
    out.writeUInt16LE(float32ToFloat16Bits(d), at);
    for (let i = 0; i < QUANT_BLOCK_VALUES; i++) out.writeInt8(quant8(values[first + i]!, inverse), at + 2 + i);
  }
  return blocks * Q8_0_BLOCK_BYTES;
}

/** Decodes `count` values of Q8_0 blocks starting at `offset`: x = d * q. */
export function dequantizeQ8_0(bytes: Buffer, count: number, offset = 0): Float32Array {
  const values = new Float32Array(wholeBlocks(count) * QUANT_BLOCK_VALUES);
  for (let block = 0; block * QUANT_BLOCK_VALUES < values.length; block++) {
    const at = offset + block * Q8_0_BLOCK_BYTES;
    const d = float16BitsToNumber(bytes.readUInt16LE(at));
    for (let i = 0; i < QUANT_BLOCK_VALUES; i++) values[block * QUANT_BLOCK_VALUES + i] = d * bytes.readInt8(at + 2 + i);
  }
  return values;
}

/**
 * Quantizes whole blocks of `values` to Q4_0 into `out` at `offset`, exactly as ggml's quantize_row_q4_0_ref:
 * d = max / -8 where max is the signed value of largest magnitude, q = min(15, trunc(x / d + 8.5)); element j
 * goes in the low nibble of byte j and element j + 16 in its high nibble. Returns the bytes written.
 */
export function quantizeQ4_0(values: Float32Array, out: Buffer, offset: number): number {
  const blocks = wholeBlocks(values.length);
  for (let block = 0; block < blocks; block++) {
    const first = block * QUANT_BLOCK_VALUES;
    const at = offset + block * Q4_0_BLOCK_BYTES;
    let amax = 0;
    let max = 0;
    for (let i = 0; i < QUANT_BLOCK_VALUES; i++) {
      const value = values[first + i]!;
      if (amax < Math.abs(value)) {
        amax = Math.abs(value);
        max = value;
      }
    }
    const d = Math.fround(max / -8);
    const inverse = d !== 0 ? Math.fround(1 / d) : 0;
    out.writeUInt16LE(float32ToFloat16Bits(d), at);
    for (let j = 0; j < HALF_BLOCK; j++) {
      const low = nibble(values[first + j]!, inverse);
      const high = nibble(values[first + HALF_BLOCK + j]!, inverse);
      out.writeUInt8(low | (high << 4), at + 2 + j);
    }
  }
  return blocks * Q4_0_BLOCK_BYTES;
}

/** Decodes `count` values of Q4_0 blocks starting at `offset`: x = d * (q - 8). */
export function dequantizeQ4_0(bytes: Buffer, count: number, offset = 0): Float32Array {
  const values = new Float32Array(wholeBlocks(count) * QUANT_BLOCK_VALUES);
  for (let block = 0; block * QUANT_BLOCK_VALUES < values.length; block++) {
    const at = offset + block * Q4_0_BLOCK_BYTES;
    const d = float16BitsToNumber(bytes.readUInt16LE(at));
    const first = block * QUANT_BLOCK_VALUES;
    for (let j = 0; j < HALF_BLOCK; j++) {
      const byte = bytes.readUInt8(at + 2 + j);
      values[first + j] = d * ((byte & 0x0f) - 8);
      values[first + HALF_BLOCK + j] = d * ((byte >> 4) - 8);
    }
  }
  return values;
}

export class BlockQuantError extends Error {
  override name = 'BlockQuantError';
}

function wholeBlocks(valueCount: number): number {
  if (valueCount % QUANT_BLOCK_VALUES !== 0) {
    throw new BlockQuantError(`block quantization needs a multiple of ${QUANT_BLOCK_VALUES} values, got ${valueCount}`);
  }
  return valueCount / QUANT_BLOCK_VALUES;
}

// roundf, half away from zero. A block of subnormal values has a scale whose f32 inverse overflows, where C's
// cast is undefined: such values are clamped to the int8 range, and 0 * Infinity stays 0.
function quant8(value: number, inverse: number): number {
  const scaled = Math.fround(value * inverse);
  if (Number.isNaN(scaled)) return 0;
  return Math.max(-127, Math.min(127, scaled < 0 ? -Math.round(-scaled) : Math.round(scaled)));
}

// The C code adds 8.5 in f32 and truncates towards zero with an (int8_t) cast; the same overflow as in quant8
// is clamped to the nibble range.
function nibble(value: number, inverse: number): number {
  const shifted = Math.fround(Math.fround(value * inverse) + 8.5);
  if (Number.isNaN(shifted)) return 8;
  return Math.max(0, Math.min(15, Math.trunc(shifted)));
}
