import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BlockQuantError, dequantizeQ4_0, dequantizeQ8_0, Q4_0_BLOCK_BYTES, Q8_0_BLOCK_BYTES, quantizeQ4_0, quantizeQ8_0,
} from '../../server/model-maker/gguf/block-quant.js';
import { float16BitsToNumber, float32ToFloat16Bits } from '../../server/model-maker/gguf/f16.js';
import { encodedByteLength } from '../../server/model-maker/gguf/tensor-encoding.js';

const BLOCK = 32;
const half = (value: number) => float16BitsToNumber(float32ToFloat16Bits(value));

function encode(quantize: typeof quantizeQ8_0, blockBytes: number, values: Float32Array): Buffer {
  const out = Buffer.alloc((values.length / BLOCK) * blockBytes);
  expect(quantize(values, out, 0)).toBe(out.length);
  return out;
}

/** Blocks of float32 values, each block with its own magnitude so that scales differ from block to block. */
const blocks = fc
  .array(
    fc.tuple(
      fc.double({ min: 1e-3, max: 1e3, noNaN: true }),
      fc.array(fc.double({ min: -1, max: 1, noNaN: true }), { minLength: BLOCK, maxLength: BLOCK }),
    ),
    { minLength: 1, maxLength: 4 },
  )
  .map((list) => Float32Array.from(list.flatMap(([scale, unit]) => unit.map((value) => value * scale))));

function blockAmax(values: Float32Array, block: number): number {
  let amax = 0;
  for (let i = 0; i < BLOCK; i++) amax = Math.max(amax, Math.abs(values[block * BLOCK + i]!));
  return amax;
}

describe('Q8_0 blocks', () => {
  it('lay out an f16 scale amax / 127 and 32 int8 quants rounded half away from zero', () => {
    const values = Float32Array.from({ length: BLOCK }, (_, i) => (i - 16) / 2); // -8 ... 7.5, amax 8
    const bytes = encode(quantizeQ8_0, Q8_0_BLOCK_BYTES, values);
    expect(bytes.length).toBe(34);
    const d = Math.fround(8 / 127);
    expect(bytes.readUInt16LE(0)).toBe(float32ToFloat16Bits(d));
    const quants = [...bytes.subarray(2)].map((byte) => (byte << 24) >> 24);
    expect(quants[0]).toBe(-127);
    expect(quants[16]).toBe(0);
    // 0.5 / d = 7.9375 and 7.5 / d = 119.0625: plain rounding, computed as ggml does in f32.
    expect(quants[17]).toBe(8);
    expect(quants[31]).toBe(119);
  });

  it('round-trip within half a step of each block scale', () => {
    fc.assert(
      fc.property(blocks, (values) => {
        const decoded = dequantizeQ8_0(encode(quantizeQ8_0, Q8_0_BLOCK_BYTES, values), values.length);
        for (let block = 0; block < values.length / BLOCK; block++) {
          const amax = blockAmax(values, block);
          // Half a quantization step, plus the f16 rounding of the scale applied to up to 127 steps (a scale that
          // underflows f16 decodes the block as zeros).
          const d = amax / 127;
          const tolerance = d / 2 + 127 * Math.abs(half(d) - d) + amax * 1e-6;
          for (let i = block * BLOCK; i < (block + 1) * BLOCK; i++) {
            expect(Math.abs(decoded[i]! - values[i]!)).toBeLessThanOrEqual(tolerance);
          }
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe('Q4_0 blocks', () => {
  it('lay out an f16 scale max / -8, element j in the low nibble of byte j and element j + 16 in its high nibble', () => {
    const values = Float32Array.from({ length: BLOCK }, (_, i) => i - 16); // -16 ... 15: max is -16, d = 2
    const bytes = encode(quantizeQ4_0, Q4_0_BLOCK_BYTES, values);
    expect(bytes.length).toBe(18);
    expect(float16BitsToNumber(bytes.readUInt16LE(0))).toBe(2);
    // q = min(15, trunc(x / 2 + 8.5)): x = -16 -> 0, x = 0 -> 8, x = -15 -> 1, x = 1 -> 9, x = -1 -> 8,
    // x = 15 -> 15 (16 clamped).
    expect(bytes[2]).toBe(0 | (8 << 4));
    expect(bytes[3]).toBe(1 | (9 << 4));
    expect(bytes[2 + 15]).toBe(8 | (15 << 4));
    expect([...dequantizeQ4_0(bytes, BLOCK)].slice(0, 4)).toEqual([-16, -14, -14, -12]);
  });

  it('round-trip within one step of each block scale, and keep the largest value to f16 precision', () => {
    fc.assert(
      fc.property(blocks, (values) => {
        const decoded = dequantizeQ4_0(encode(quantizeQ4_0, Q4_0_BLOCK_BYTES, values), values.length);
        for (let block = 0; block < values.length / BLOCK; block++) {
          const amax = blockAmax(values, block);
          // A step is amax / 8; the one value on the far side of the largest may be clamped by a whole step. The
          // f16 rounding of the scale is applied to up to 8 steps.
          const d = amax / 8;
          const scaleError = 8 * Math.abs(half(d) - d);
          const tolerance = d + scaleError + amax * 1e-6;
          let largest = block * BLOCK;
          for (let i = block * BLOCK; i < (block + 1) * BLOCK; i++) {
            expect(Math.abs(decoded[i]! - values[i]!)).toBeLessThanOrEqual(tolerance);
            if (Math.abs(values[i]!) > Math.abs(values[largest]!)) largest = i;
          }
          expect(Math.abs(decoded[largest]! - values[largest]!)).toBeLessThanOrEqual(scaleError + amax * 1e-6);
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe('block quantization', () => {
  it('stores an all-zero block as zeros', () => {
    const zeros = new Float32Array(BLOCK);
    expect(dequantizeQ8_0(encode(quantizeQ8_0, Q8_0_BLOCK_BYTES, zeros), BLOCK).every((value) => value === 0)).toBe(true);
    expect(dequantizeQ4_0(encode(quantizeQ4_0, Q4_0_BLOCK_BYTES, zeros), BLOCK).every((value) => value === 0)).toBe(true);
  });

  it('refuses a count that is not a whole number of blocks', () => {
    const out = Buffer.alloc(64);
    expect(() => quantizeQ8_0(new Float32Array(33), out, 0)).toThrow(BlockQuantError);
    expect(() => quantizeQ4_0(new Float32Array(16), out, 0)).toThrow(/multiple of 32 values, got 16/);
    expect(() => encodedByteLength('q4_0', 48)).toThrow(/q4_0 needs a multiple of 32 values, got 48/);
    expect(encodedByteLength('q4_0', 64)).toBe(36);
    expect(encodedByteLength('q8_0', 64)).toBe(68);
  });
});
