import { writeGgufFile, type GgufTensorSource, type GgufWriteSummary } from '../gguf/gguf-writer.js';
import {
  headDimOf, LLAMA_FILE_TYPE, LlamaShapeError, llamaMetadata, llamaTensorSlots,
  type LlamaShape, type LlamaTensorSlot, type LlamaWeightType,
} from '../gguf/llama-gguf.js';
import { isBlockQuantized, QUANT_BLOCK_VALUES } from '../gguf/tensor-encoding.js';
import { normalQuantileTable } from './normal-table.js';
import { SeededRandom } from './seeded-random.js';
import { addPieces, byteFallbackVocab, padVocab, SPACE_MARK, type SpmVocab } from './spm-vocab.js';

/** Storage of the 2-D weight matrices; norm vectors always stay f32. */
export type ShapeQuant = LlamaWeightType;

export interface ShapeModelSpec extends LlamaShape {
  vocabSize: number;
  /** Reuse token_embd as the output matrix, as small models such as SmolLM and Llama 3.2 do. */
  tiedOutput: boolean;
}

export type ShapePresetName = 'tiny' | '100m' | '135m' | '1b';

/** Shapes of real models, so that a synthetic model costs the same per token as the one it stands in for. */
export const SHAPE_PRESETS: Readonly<Record<ShapePresetName, ShapeModelSpec>> = {
  tiny: { layers: 2, embd: 64, ff: 128, heads: 4, kvHeads: 2, vocabSize: 512, contextLength: 2048, tiedOutput: false },
  '100m': { layers: 12, embd: 768, ff: 2048, heads: 12, kvHeads: 12, vocabSize: 32000, contextLength: 2048, tiedOutput: true },
  '135m': { layers: 30, embd: 576, ff: 1536, heads: 9, kvHeads: 3, vocabSize: 49152, contextLength: 2048, tiedOutput: true },
  '1b': {
    layers: 16, embd: 2048, ff: 8192, heads: 32, kvHeads: 8, vocabSize: 128256, contextLength: 8192,
    ropeFreqBase: 500000, tiedOutput: true,
  },
};

export interface ShapeModelOptions {
  quant?: ShapeQuant;
  seed?: number;
  name?: string;
}

const WEIGHT_STD = 0.02;
const CHUNK_VALUES = 1 << 20;

/** Parameters a model of this shape holds (tied output counted once). */
export function shapeParameterCount(spec: ShapeModelSpec): number {
  return llamaTensorSlots(spec, spec.vocabSize, spec.tiedOutput)
    .reduce((sum, slot) => sum + slot.dims.reduce((product, dim) => product * dim, 1), 0);
}

/**
 * Writes a llama model of the given shape filled with seeded normal-ish weights (std 0.02).
 * Its output is noise, but its memory footprint and per-token compute match a trained model of that shape.
 */
export async function writeShapeModel(path: string, spec: ShapeModelSpec, options: ShapeModelOptions = {}): Promise<GgufWriteSummary> {
  const quant = options.quant ?? 'f16';
  const seed = options.seed ?? 1;
  checkShapeFitsType(spec, quant);
  const vocab = shapeVocab(spec.vocabSize);
  const metadata = llamaMetadata({
    name: options.name ?? `shape-${spec.layers}x${spec.embd}-${quant}`,
    shape: spec,
    vocab,
    fileType: LLAMA_FILE_TYPE[quant],
    extra: { 'general.description': { type: 'string', value: `Random weights (seed ${seed}) shaped like a real model; output is noise.` } },
  });
  const random = new SeededRandom(seed);
  const table = normalQuantileTable(WEIGHT_STD);
  const tensors: GgufTensorSource[] = llamaTensorSlots(spec, spec.vocabSize, spec.tiedOutput).map((slot) => ({
    name: slot.name,
    dims: slot.dims,
    type: slot.role === 'norm' ? 'f32' : quant,
    values: () => (slot.role === 'norm' ? ones(slot) : randomValues(slot, random, table)),
  }));
  return writeGgufFile(path, metadata, tensors);
}

/**
 * Refuses a shape whose weight rows (embd, the attention width, ff) are not whole numbers of quantization blocks,
 * naming each offender, before anything is written.
 */
export function checkShapeFitsType(spec: ShapeModelSpec, quant: ShapeQuant): void {
  if (!isBlockQuantized(quant)) return;
  const rows = { embd: spec.embd, ff: spec.ff, 'heads x head width': spec.heads * headDimOf(spec) };
  const bad = Object.entries(rows).filter(([, length]) => length % QUANT_BLOCK_VALUES !== 0);
  if (bad.length > 0) {
    throw new LlamaShapeError(
      `${quant} stores weights in blocks of ${QUANT_BLOCK_VALUES} values: ` +
        `${bad.map(([name, length]) => `${name} (${length})`).join(', ')} must be ${bad.length > 1 ? 'multiples' : 'a multiple'} of ${QUANT_BLOCK_VALUES}`,
    );
  }
}

// Byte-fallback vocab plus printable ASCII pieces (so prompts tokenize readably), padded with filler words.
function shapeVocab(size: number): SpmVocab {
  const vocab = byteFallbackVocab();
  const printable: { text: string; score: number }[] = [];
  for (let code = 0x20; code < 0x7f; code++) {
    printable.push({ text: code === 0x20 ? SPACE_MARK : String.fromCharCode(code), score: -1000 - code });
  }
  if (vocab.tokens.length + printable.length <= size) addPieces(vocab, printable);
  padVocab(vocab, size);
  return vocab;
}

function* ones(slot: LlamaTensorSlot): Generator<Float32Array> {
  yield new Float32Array(slot.dims[0]!).fill(1);
}

function* randomValues(slot: LlamaTensorSlot, random: SeededRandom, table: Float32Array): Generator<Float32Array> {
  const rowLength = slot.dims[0]!;
  const total = slot.dims.reduce((product, dim) => product * dim, 1);
  // Whole rows per chunk keep every chunk a whole number of quantization blocks.
  const chunkValues = Math.max(1, Math.floor(CHUNK_VALUES / rowLength)) * rowLength;
  const chunk = new Float32Array(chunkValues);
  for (let done = 0; done < total; done += chunkValues) {
    const count = Math.min(chunkValues, total - done);
    for (let i = 0; i < count; i += 2) {
      const bits = random.uint32();
      chunk[i] = table[bits & 0xffff]!;
      if (i + 1 < count) chunk[i + 1] = table[bits >>> 16]!;
    }
    yield count === chunkValues ? chunk : chunk.subarray(0, count);
  }
}
