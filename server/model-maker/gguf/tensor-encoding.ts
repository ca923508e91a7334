import { float32ToFloat16Bits } from './f16.js';

export type GgufTensorType = 'f32' | 'f16' | 'q8_0';

/** ggml's numeric type ids, as stored in a GGUF tensor info. */
export const GGML_TYPE_IDS: Readonly<Record<GgufTensorType, number>> = { f32: 0, f16: 1, q8_0: 8 };

/** Values per Q8_0 block: one f16 scale followed by 32 int8 quants. */
export const Q8_0_BLOCK_VALUES = 32;
const Q8_0_BLOCK_BYTES = 2 + Q8_0_BLOCK_VALUES;

export class TensorEncodingError extends Error {
  override name = 'TensorEncodingError';
}

/** Bytes that `valueCount` values occupy once encoded as `type`. */
export function encodedByteLength(type: GgufTensorType, valueCount: number): number {
  switch (type) {
    case 'f32':
      return valueCount * 4;
    case 'f16':
      return valueCount * 2;
    case 'q8_0':
      if (valueCount % Q8_0_BLOCK_VALUES !== 0) {
        throw new TensorEncodingError(`q8_0 needs a multiple of ${Q8_0_BLOCK_VALUES} values, got ${valueCount}`);
      }
      return (valueCount / Q8_0_BLOCK_VALUES) * Q8_0_BLOCK_BYTES;
  }
}

/** Encodes `values` as `type` into `out` at `offset`; returns the number of bytes written. */
export function encodeValues(type: GgufTensorType, values: Float32Array, out: Buffer, offset: number): number {
  switch (type) {
    case 'f32':
      for (let i = 0; i < values.length; i++) out.writeFloatLE(values[i]!, offset + i * 4);
      return values.length * 4;
    case 'f16':
      for (let i = 0; i < values.length; i++) out.writeUInt16LE(float32ToFloat16Bits(values[i]!), offset + i * 2);
      return values.length * 2;
    case 'q8_0':
      return encodeQ8_0(values, out, offset);
  }
}

// Mirrors ggml's quantize_row_q8_0_ref: scale = max|x| / 127, quants = round-half-away(x / scale).
function encodeQ8_0(values: Float32Array, out: Buffer, offset: number): number {
  const bytes = encodedByteLength('q8_0', values.length);
  for (let block = 0, at = offset; block < values.length; block += Q8_0_BLOCK_VALUES, at += Q8_0_BLOCK_BYTES) {
    let amax = 0;
    for (let i = 0; i < Q8_0_BLOCK_VALUES; i++) amax = Math.max(amax, Math.abs(values[block + i]!));
    const scale = Math.fround(amax / 127);
    const inverse = scale !== 0 ? Math.fround(1 / scale) : 0;
    out.writeUInt16LE(float32ToFloat16Bits(scale), at);
    for (let i = 0; i < Q8_0_BLOCK_VALUES; i++) {
      const scaled = Math.fround(values[block + i]! * inverse);
      out.writeInt8(scaled < 0 ? -Math.round(-scaled) : Math.round(scaled), at + 2 + i);
    }
  }
  return bytes;
}
