import type { SpmVocab } from '../demo/spm-vocab.js';
import type { GgufMetadata } from './gguf-writer.js';

/** The hyper-parameters that fix a llama model's tensor shapes and per-token cost. */
export interface LlamaShape {
  layers: number;
  embd: number;
  ff: number;
  heads: number;
  kvHeads: number;
  /** Per-head width; defaults to embd / heads. */
  headDim?: number;
  contextLength: number;
  ropeFreqBase?: number;
  rmsEpsilon?: number;
}

export type LlamaTensorRole = 'embedding' | 'norm' | 'attn_q' | 'attn_k' | 'attn_v' | 'attn_output' | 'ffn_gate' | 'ffn_up' | 'ffn_down' | 'output';

export interface LlamaTensorSlot {
  name: string;
  /** Fastest-varying first. */
  dims: number[];
  role: LlamaTensorRole;
  /** Block index for per-layer tensors. */
  layer?: number;
}

/** How the 2-D weight matrices of a model are stored (norm vectors always stay f32). */
export type LlamaWeightType = 'f16' | 'q8_0' | 'q4_0';

/** Every LlamaWeightType, for command-line checks. */
export const LLAMA_WEIGHT_TYPES: readonly LlamaWeightType[] = ['f16', 'q8_0', 'q4_0'];

/** llama.cpp's general.file_type codes (LLAMA_FTYPE_ALL_F32, MOSTLY_F16, MOSTLY_Q4_0, MOSTLY_Q8_0) for the types written here. */
export const LLAMA_FILE_TYPE = { f32: 0, f16: 1, q4_0: 2, q8_0: 7 } as const;

export class LlamaShapeError extends Error {
  override name = 'LlamaShapeError';
}

/** Head width used for the shape, validating that the heads tile the attention projections. */
export function headDimOf(shape: LlamaShape): number {
  const headDim = shape.headDim ?? shape.embd / shape.heads;
  if (!Number.isInteger(headDim) || headDim <= 0 || headDim % 2 !== 0) {
    throw new LlamaShapeError(`head width ${headDim} must be a positive even integer (embd ${shape.embd}, heads ${shape.heads})`);
  }
  if (shape.heads % shape.kvHeads !== 0) {
    throw new LlamaShapeError(`heads ${shape.heads} must be a multiple of kv heads ${shape.kvHeads}`);
  }
  return headDim;
}

/** The tensors a llama model needs, in the order they are written; `tiedOutput` omits output.weight. */
export function llamaTensorSlots(shape: LlamaShape, vocabSize: number, tiedOutput = false): LlamaTensorSlot[] {
  const headDim = headDimOf(shape);
  const qWidth = shape.heads * headDim;
  const kvWidth = shape.kvHeads * headDim;
  const slots: LlamaTensorSlot[] = [{ name: 'token_embd.weight', dims: [shape.embd, vocabSize], role: 'embedding' }];
  for (let layer = 0; layer < shape.layers; layer++) {
    const blk = `blk.${layer}`;
    slots.push(
      { name: `${blk}.attn_norm.weight`, dims: [shape.embd], role: 'norm', layer },
      { name: `${blk}.attn_q.weight`, dims: [shape.embd, qWidth], role: 'attn_q', layer },
      { name: `${blk}.attn_k.weight`, dims: [shape.embd, kvWidth], role: 'attn_k', layer },
      { name: `${blk}.attn_v.weight`, dims: [shape.embd, kvWidth], role: 'attn_v', layer },
      { name: `${blk}.attn_output.weight`, dims: [qWidth, shape.embd], role: 'attn_output', layer },
      { name: `${blk}.ffn_norm.weight`, dims: [shape.embd], role: 'norm', layer },
      { name: `${blk}.ffn_gate.weight`, dims: [shape.embd, shape.ff], role: 'ffn_gate', layer },
      { name: `${blk}.ffn_up.weight`, dims: [shape.embd, shape.ff], role: 'ffn_up', layer },
      { name: `${blk}.ffn_down.weight`, dims: [shape.ff, shape.embd], role: 'ffn_down', layer },
    );
  }
  slots.push({ name: 'output_norm.weight', dims: [shape.embd], role: 'norm' });
  if (!tiedOutput) slots.push({ name: 'output.weight', dims: [shape.embd, vocabSize], role: 'output' });
  return slots;
}

/** GGUF metadata for a llama-architecture model with a SentencePiece vocabulary. */
export function llamaMetadata(options: {
  name: string;
  shape: LlamaShape;
  vocab: SpmVocab;
  fileType: number;
  extra?: GgufMetadata;
}): GgufMetadata {
  const { shape, vocab } = options;
  const headDim = headDimOf(shape);
  return {
    'general.architecture': { type: 'string', value: 'llama' },
    'general.name': { type: 'string', value: options.name },
    'general.file_type': { type: 'uint32', value: options.fileType },
    'general.quantization_version': { type: 'uint32', value: 2 },
    'general.alignment': { type: 'uint32', value: 32 },
    ...options.extra,
    'llama.vocab_size': { type: 'uint32', value: vocab.tokens.length },
    'llama.context_length': { type: 'uint32', value: shape.contextLength },
    'llama.embedding_length': { type: 'uint32', value: shape.embd },
    'llama.block_count': { type: 'uint32', value: shape.layers },
    'llama.feed_forward_length': { type: 'uint32', value: shape.ff },
    'llama.attention.head_count': { type: 'uint32', value: shape.heads },
    'llama.attention.head_count_kv': { type: 'uint32', value: shape.kvHeads },
    'llama.attention.key_length': { type: 'uint32', value: headDim },
    'llama.attention.value_length': { type: 'uint32', value: headDim },
    'llama.rope.dimension_count': { type: 'uint32', value: headDim },
    'llama.rope.freq_base': { type: 'float32', value: shape.ropeFreqBase ?? 10000 },
    'llama.attention.layer_norm_rms_epsilon': { type: 'float32', value: shape.rmsEpsilon ?? 1e-5 },
    'tokenizer.ggml.model': { type: 'string', value: 'llama' },
    'tokenizer.ggml.tokens': { type: 'string[]', value: vocab.tokens },
    'tokenizer.ggml.scores': { type: 'float32[]', value: vocab.scores },
    'tokenizer.ggml.token_type': { type: 'int32[]', value: vocab.types },
    'tokenizer.ggml.bos_token_id': { type: 'uint32', value: vocab.bosId },
    'tokenizer.ggml.eos_token_id': { type: 'uint32', value: vocab.eosId },
    'tokenizer.ggml.unknown_token_id': { type: 'uint32', value: vocab.unkId },
    ...(vocab.eotId !== undefined && { 'tokenizer.ggml.eot_token_id': { type: 'uint32', value: vocab.eotId } as const }),
    'tokenizer.ggml.add_bos_token': { type: 'bool', value: true },
    'tokenizer.ggml.add_eos_token': { type: 'bool', value: false },
  };
}
