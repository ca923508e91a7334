import { Q4_0_BLOCK_BYTES, Q8_0_BLOCK_BYTES, QUANT_BLOCK_VALUES, quantizeQ4_0, quantizeQ8_0 } from './block-quant.js';
import { float32ToFloat16Bits } from './f16.js';

export { QUANT_BLOCK_VALUES } from './block-quant.js';

export type GgufTensorType = 'f32' | 'f16' | 'q8_0' | 'q4_0';

/** ggml's numeric type ids, as stored in a GGUF tensor info. */
export const GGML_TYPE_IDS: Readonly<Record<GgufTensorType, number>> = { f32: 0, f16: 1, q4_0: 2, q8_0: 8 };

export class TensorEncodingError extends Error {
  override name = 'TensorEncodingError';
}

/** Whether `type` stores values in blocks of QUANT_BLOCK_VALUES, so a tensor row must be a whole number of blocks. */
export function isBlockQuantized(type: GgufTensorType): type is 'q8_0' | 'q4_0' {
  return type === 'q8_0' || type === 'q4_0';
}

/** Bytes that `valueCount` values occupy once encoded as `type`. */
export function encodedByteLength(type: GgufTensorType, valueCount: number): number {
  switch (type) {
    case 'f32':
      return valueCount * 4;
    case 'f16':
      return valueCount * 2;
    case 'q8_0':
    case 'q4_0':
      if (valueCount % QUANT_BLOCK_VALUES !== 0) {
        throw new TensorEncodingError(`${type} needs a multiple of ${QUANT_BLOCK_VALUES} values, got ${valueCount}`);
      }
      return (valueCount / QUANT_BLOCK_VALUES) * (type === 'q8_0' ? Q8_0_BLOCK_BYTES : Q4_0_BLOCK_BYTES);
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
      return quantizeQ8_0(values, out, offset);
    case 'q4_0':
      return quantizeQ4_0(values, out, offset);
  }
}
