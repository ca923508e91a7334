import { writeGgufFile, type GgufTensorSource, type GgufWriteSummary } from '../gguf/gguf-writer.js';
import { LLAMA_FILE_TYPE, llamaMetadata, llamaTensorSlots, type LlamaShape, type LlamaTensorSlot } from '../gguf/llama-gguf.js';
import { trainPieces } from './piece-trainer.js';
import { SeededRandom } from './seeded-random.js';
import { SpmTokenizer } from './spm-tokenizer.js';
import { backoffDistribution, isMidCharacter, smoothedRow, tokenKind } from './bigram-smoothing.js';
import { addPieces, byteFallbackVocab, TOKEN_TYPE, type SpmVocab } from './spm-vocab.js';

export interface BigramModelOptions {
  seed?: number;
  /** Multi-character pieces to learn; more merges give whole-word tokens but sparser statistics. */
  merges?: number;
  /** Most frequent tokens that get an anti-repetition history slot. */
  historySize?: number;
  /** Logit penalty per unit of a token's share of the context so far. */
  historyPenalty?: number;
  contextLength?: number;
}

/**
 * Everything needed to write the model. Residual-stream layout: slots [0, contextCount) one-hot encode the
 * current token (slot 0 stands for any token never seen in the corpus); the next historySize slots hold, via
 * uniform attention, the share of the context taken by each tracked token.
 */
export interface BigramModelPlan {
  vocab: SpmVocab;
  shape: LlamaShape;
  contextCount: number;
  historySize: number;
  /** Context slot of each token id. */
  contextSlot: Int32Array;
  /** History index of each token id, or -1 when it is not tracked. */
  historyIndex: Int32Array;
  /** Natural-log next-token probabilities, row per context slot: logProb[slot * vocabSize + token]. */
  logProb: Float32Array;
  historyPenalty: number;
  /** Factor RMSNorm applies to a unit one-hot vector; weights are divided by it. */
  normGain: number;
  /** Number of corpus tokens the statistics come from. */
  corpusTokens: number;
}

const DEFAULTS = { seed: 1, merges: 800, historySize: 128, historyPenalty: 16, contextLength: 4096 } as const;
const RMS_EPSILON = 1e-5;
// Log-probability of a transition never seen; e^-40 is never drawn in practice.
const UNSEEN_LOG_PROB = -40;
// Control tokens (notably EOS) sit far below even unseen transitions, so generation runs to maxTokens.
const CONTROL_LOG_PROB = -60;
const FFN_WIDTH = 32;

/**
 * Derives a bigram language model from `corpus`: a vocabulary of learned pieces plus byte fallback, and
 * smoothed next-token log-probabilities counted over the corpus exactly as llama.cpp will tokenize it.
 */
export function planBigramModel(corpus: string, options: BigramModelOptions = {}): BigramModelPlan {
  const settings = { ...DEFAULTS, ...options };
  const vocab = buildVocab(corpus, settings.merges);
  const vocabSize = vocab.tokens.length;
  const stream = new SpmTokenizer(vocab).tokenize(corpus);

  const unigram = new Float64Array(vocabSize);
  const contextSlot = new Int32Array(vocabSize);
  const slotToken: number[] = [-1];
  for (const [position, token] of stream.entries()) {
    unigram[token]! += 1;
    if (position < stream.length - 1 && contextSlot[token] === 0) {
      contextSlot[token] = slotToken.length;
      slotToken.push(token);
    }
  }
  const contextCount = slotToken.length;
  const followCounts = new Float64Array(contextCount * vocabSize);
  for (let i = 1; i < stream.length; i++) followCounts[contextSlot[stream[i - 1]!]! * vocabSize + stream[i]!]! += 1;

  const backoff = backoffDistribution(unigram, vocab);
  const kinds = vocab.tokens.map(tokenKind);
  const logProb = new Float32Array(contextCount * vocabSize);
  const random = new SeededRandom(settings.seed);
  for (let slot = 0; slot < contextCount; slot++) {
    const row = followCounts.subarray(slot * vocabSize, (slot + 1) * vocabSize);
    const probabilities = slot === 0 ? backoff : smoothedRow(row, backoff, kinds, isMidCharacter(slotToken[slot]!));
    for (let token = 0; token < vocabSize; token++) {
      const p = probabilities[token]!;
      // The seed only moves transitions that never occur, so every seed tells the same story.
      const value = vocab.types[token] !== TOKEN_TYPE.normal && vocab.types[token] !== TOKEN_TYPE.byte
        ? CONTROL_LOG_PROB
        : p > 0 ? Math.max(Math.log(p), UNSEEN_LOG_PROB) : UNSEEN_LOG_PROB - 4 * random.float();
      logProb[slot * vocabSize + token] = value;
    }
  }

  const historyIndex = new Int32Array(vocabSize).fill(-1);
  const tracked = [...unigram.keys()]
    .filter((token) => contextSlot[token]! > 0)
    .sort((a, b) => unigram[b]! - unigram[a]! || a - b)
    .slice(0, settings.historySize);
  tracked.forEach((token, index) => (historyIndex[token] = index));
  const historySize = roundUp(Math.max(tracked.length, 32), 32);
  const embd = roundUp(contextCount + historySize, 32);
  return {
    vocab,
    shape: {
      layers: 1, embd, ff: FFN_WIDTH, heads: 1, kvHeads: 1, headDim: historySize,
      contextLength: settings.contextLength, rmsEpsilon: RMS_EPSILON,
    },
    contextCount,
    historySize,
    contextSlot,
    historyIndex,
    logProb,
    historyPenalty: settings.historyPenalty,
    normGain: 1 / Math.sqrt(1 / embd + RMS_EPSILON),
    corpusTokens: stream.length,
  };
}

/** Writes the planned model as GGUF: one zero-cost transformer block around the bigram tables. */
export async function writeBigramModel(path: string, plan: BigramModelPlan, name = 'demo-bigram'): Promise<GgufWriteSummary> {
  const metadata = llamaMetadata({
    name,
    shape: plan.shape,
    vocab: plan.vocab,
    fileType: LLAMA_FILE_TYPE.q8_0,
    extra: {
      'general.description': {
        type: 'string',
        value: `Bigram model over a public-domain corpus (${plan.corpusTokens} tokens); for demos and tests.`,
      },
    },
  });
  const tensors: GgufTensorSource[] = llamaTensorSlots(plan.shape, plan.vocab.tokens.length).map((slot) => ({
    name: slot.name,
    dims: slot.dims,
    // Log-probabilities need f16 precision; the other matrices are zeros and one-hot entries, which q8_0 keeps.
    type: slot.role === 'norm' ? 'f32' : slot.role === 'output' ? 'f16' : 'q8_0',
    values: () => rows(slot, (row, values) => fillRow(plan, slot, row, values)),
  }));
  return writeGgufFile(path, metadata, tensors);
}

function buildVocab(corpus: string, merges: number): SpmVocab {
  // Two-byte UTF-8 characters (é, ü, ñ...) get no piece: the model must spell them with byte tokens.
  // A line break does get one, so that a paragraph break can become a single "\n\n" piece.
  const hasOwnPiece = (char: string) => {
    const code = char.codePointAt(0)!;
    return code === 0x0a || (code >= 0x20 && code !== 0x7f && (code < 0x80 || code > 0x7ff));
  };
  const pieces = trainPieces(corpus, hasOwnPiece, merges);
  const vocab = byteFallbackVocab();
  addPieces(vocab, [
    ...pieces.merged.map((text, rank) => ({ text, score: -1 - rank })),
    ...pieces.chars.map((text, rank) => ({ text, score: -1 - pieces.merged.length - rank })),
  ]);
  return vocab;
}

function fillRow(plan: BigramModelPlan, slot: LlamaTensorSlot, row: number, values: Float32Array): void {
  const { contextCount, normGain } = plan;
  switch (slot.role) {
    case 'embedding':
      values[plan.contextSlot[row]!] = 1;
      return;
    case 'norm':
      values.fill(1);
      return;
    case 'attn_v': {
      // Row h copies "token h is current" out of the one-hot slot, undoing attn_norm's gain.
      const token = plan.historyIndex.indexOf(row);
      if (token >= 0) values[plan.contextSlot[token]!] = 1 / normGain;
      return;
    }
    case 'attn_output':
      // Residual slot contextCount + h receives the attention average for tracked token h.
      if (row >= contextCount && row < contextCount + plan.historySize) values[row - contextCount] = 1;
      return;
    case 'output': {
      const vocabSize = plan.vocab.tokens.length;
      for (let context = 0; context < contextCount; context++) {
        values[context] = plan.logProb[context * vocabSize + row]! / normGain;
      }
      const history = plan.historyIndex[row]!;
      if (history >= 0) values[contextCount + history] = -plan.historyPenalty / normGain;
      return;
    }
    default:
      // Queries, keys and the feed-forward network stay zero: attention is a plain average and the
      // feed-forward block adds nothing to the residual stream.
      return;
  }
}

function* rows(slot: LlamaTensorSlot, fill: (row: number, values: Float32Array) => void): Generator<Float32Array> {
  const rowLength = slot.dims[0]!;
  const rowCount = slot.dims.slice(1).reduce((product, dim) => product * dim, 1);
  const values = new Float32Array(rowLength);
  for (let row = 0; row < rowCount; row++) {
    values.fill(0);
    fill(row, values);
    yield values;
  }
}

function roundUp(value: number, multiple: number): number {
  return Math.ceil(value / multiple) * multiple;
}
