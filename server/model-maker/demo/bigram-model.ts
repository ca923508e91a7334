import { writeGgufFile, type GgufMetadata, type GgufTensorSource, type GgufTensorType, type GgufWriteSummary } from '../gguf/gguf-writer.js';
import {
  LLAMA_FILE_TYPE, llamaMetadata, llamaTensorSlots, type LlamaShape, type LlamaTensorRole, type LlamaTensorSlot, type LlamaWeightType,
} from '../gguf/llama-gguf.js';
import { CHATML_TEMPLATE, IM_END, IM_START, renderChatML, type ChatMessage } from './chatml.js';
import { endOfReplyLogits } from './reply-end.js';
import { trainPieces } from './piece-trainer.js';
import { SeededRandom } from './seeded-random.js';
import { SpmTokenizer } from './spm-tokenizer.js';
import { backoffDistribution, isMidCharacter, smoothedRow, tokenKind } from './bigram-smoothing.js';
import { addControlTokens, addPieces, byteFallbackVocab, TOKEN_TYPE, type SpmVocab } from './spm-vocab.js';

export interface BigramModelOptions {
  seed?: number;
  /** Multi-character pieces to learn; more merges give whole-word tokens but sparser statistics. */
  merges?: number;
  /** Most frequent tokens that get an anti-repetition history slot. */
  historySize?: number;
  /** Logit penalty per unit of a token's share of the context so far. */
  historyPenalty?: number;
  contextLength?: number;
  /**
   * Conversations whose assistant replies are learned alongside the prose, tokenized as within a rendered ChatML
   * conversation: they teach how a reply starts and after which pieces it ends. Without them the model has the
   * ChatML tokens but no turn detector, and `<|im_end|>` is never generated.
   */
  conversations?: readonly (readonly ChatMessage[])[];
}

/** The ChatML part of a plan: the marker tokens, and the residual slot the turn detector sets once a marker is in context. */
export interface ChatPlan {
  startId: number;
  endId: number;
  /** Residual slot fed by the turn detector (the second attention head). */
  slot: number;
}

/**
 * Everything needed to write the model. Residual-stream layout: slots [0, contextCount) one-hot encode the
 * current token (slot 0 stands for any token never seen in the corpus); the next historySize slots hold, via
 * uniform attention (head 0), the share of the context taken by each tracked token; the slot after them holds
 * the chat turn detector (head 1), which attends only to `<|im_start|>` tokens: 0 in plain text, CHAT_SIGNAL
 * once a ChatML turn has begun. `<|im_end|>` is reachable only through that slot, so plain completions never
 * end by themselves while chat replies do.
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
  /** Present when the model learned from conversations. */
  chat?: ChatPlan;
}

const DEFAULTS = { seed: 1, merges: 800, historySize: 128, historyPenalty: 16, contextLength: 4096 } as const;
const RMS_EPSILON = 1e-5;
// Log-probability of a transition never seen; e^-40 is never drawn in practice.
const UNSEEN_LOG_PROB = -40;
// Control tokens (notably EOS) sit far below even unseen transitions, so generation runs to maxTokens.
const CONTROL_LOG_PROB = -60;
const FFN_WIDTH = 32;
// Attention score of a `<|im_start|>` key for the turn detector. Its query and key use the last rotary pair of
// the head, the slowest one, so the score barely moves with distance (in a 128-wide head it keeps over 0.88 of
// it across 4096 positions), while every other key scores 0: the marker takes all of the attention.
const DETECTOR_SCORE = 48;
// Small, so that the detector slot barely changes the output norm (the logits shrink by ~3 % in a chat).
const CHAT_SIGNAL = 0.25;
// Logit that `<|im_end|>` loses without the detector, and gains back with it: the highest end logit minus
// CONTROL_LOG_PROB, so in plain text it sits at or below the other control tokens.
const MAX_END_LOGIT = 4;
const CHAT_GATE = MAX_END_LOGIT - CONTROL_LOG_PROB;

/**
 * Derives a bigram language model from `corpus`: a vocabulary of learned pieces plus byte fallback, and
 * smoothed next-token log-probabilities counted over the corpus exactly as llama.cpp will tokenize it.
 */
export function planBigramModel(corpus: string, options: BigramModelOptions = {}): BigramModelPlan {
  const settings = { ...DEFAULTS, ...options };
  const vocab = buildVocab(corpus, settings.merges);
  // Appended after every piece, so the ids of the pieces do not depend on the chat markers.
  const [startId, endId] = addControlTokens(vocab, [IM_START, IM_END]) as [number, number];
  vocab.eotId = endId;
  const vocabSize = vocab.tokens.length;
  const isControl = (token: number) => vocab.types[token] !== TOKEN_TYPE.normal && vocab.types[token] !== TOKEN_TYPE.byte;
  const tokenizer = new SpmTokenizer(vocab);
  const specials = new Map([[IM_START, startId], [IM_END, endId]]);
  const prose = tokenizer.tokenize(corpus);
  // Only the replies are learned: the model never writes the prompt side (system and user turns, role names),
  // and their repeated phrases would leak into plain completions.
  const replies = (settings.conversations ?? [])
    .flatMap((messages) => messages.filter((message) => message.role === 'assistant'))
    .map((message) => replyStream(tokenizer, specials, message.content));
  const streams = [prose, ...replies];

  const unigram = new Float64Array(vocabSize);
  const contextSlot = new Int32Array(vocabSize);
  const slotToken: number[] = [-1];
  for (const stream of streams) {
    for (const [position, token] of stream.entries()) {
      if (!isControl(token)) unigram[token]! += 1;
      if (position < stream.length - 1 && contextSlot[token] === 0) {
        contextSlot[token] = slotToken.length;
        slotToken.push(token);
      }
    }
  }
  if (replies.length > 0 && contextSlot[startId] === 0) {
    // The turn detector keys on this slot; what follows the marker is the prompt's business (backoff row).
    contextSlot[startId] = slotToken.length;
    slotToken.push(startId);
  }
  const contextCount = slotToken.length;
  // Control tokens get fixed logits, so the rows count only the pieces that follow.
  const followCounts = new Float64Array(contextCount * vocabSize);
  for (const stream of streams) {
    for (let i = 1; i < stream.length; i++) {
      if (!isControl(stream[i]!)) followCounts[contextSlot[stream[i - 1]!]! * vocabSize + stream[i]!]! += 1;
    }
  }
  const endLogit = endOfReplyLogits(replies, {
    contextSlot, contextCount, endId, tokens: vocab.tokens, maxLogit: MAX_END_LOGIT, unseenLogit: UNSEEN_LOG_PROB,
  });

  const backoff = backoffDistribution(unigram, vocab);
  const kinds = vocab.tokens.map(tokenKind);
  const logProb = new Float32Array(contextCount * vocabSize);
  const random = new SeededRandom(settings.seed);
  for (let slot = 0; slot < contextCount; slot++) {
    const row = followCounts.subarray(slot * vocabSize, (slot + 1) * vocabSize);
    const seen = row.some((count) => count > 0);
    const probabilities = slot === 0 || !seen ? backoff : smoothedRow(row, backoff, kinds, isMidCharacter(slotToken[slot]!));
    for (let token = 0; token < vocabSize; token++) {
      const p = probabilities[token]!;
      // The seed only moves transitions that never occur, so every seed tells the same story.
      const value = token === endId
        ? endLogit[slot]! - CHAT_GATE
        : isControl(token)
          ? CONTROL_LOG_PROB
          : p > 0 ? Math.max(Math.log(p), UNSEEN_LOG_PROB) : UNSEEN_LOG_PROB - 4 * random.float();
      logProb[slot * vocabSize + token] = value;
    }
  }

  const historyIndex = new Int32Array(vocabSize).fill(-1);
  const tracked = [...unigram.keys()]
    .filter((token) => contextSlot[token]! > 0 && !isControl(token))
    .sort((a, b) => unigram[b]! - unigram[a]! || a - b)
    .slice(0, settings.historySize);
  tracked.forEach((token, index) => (historyIndex[token] = index));
  const historySize = roundUp(Math.max(tracked.length, 32), 32);
  const chat = replies.length > 0 ? { startId, endId, slot: contextCount + historySize } : undefined;
  const embd = roundUp(contextCount + historySize + (chat ? 1 : 0), 32);
  return {
    vocab,
    shape: {
      layers: 1, embd, ff: FFN_WIDTH, heads: 2, kvHeads: 2, headDim: historySize,
      contextLength: settings.contextLength, rmsEpsilon: RMS_EPSILON,
    },
    contextCount,
    historySize,
    contextSlot,
    historyIndex,
    logProb,
    historyPenalty: settings.historyPenalty,
    normGain: 1 / Math.sqrt(1 / embd + RMS_EPSILON),
    corpusTokens: streams.reduce((sum, stream) => sum + stream.length, 0),
    ...(chat && { chat }),
  };
}

export interface BigramWriteOptions {
  name?: string;
  /**
   * Storage of the weight matrices. Unset: q8_0, with the output matrix kept in f16: it holds the log-probabilities,
   * while the others hold only zeros and one constant per row, which q8_0 (and q4_0) keep to f16 precision. q4_0
   * keeps the output matrix in q8_0, as llama.cpp's quantizer keeps output.weight at a higher precision: 4 bits
   * cannot hold log-probabilities.
   */
  type?: LlamaWeightType;
  /** More metadata, written after the general.* keys. */
  extra?: GgufMetadata;
}

/** Writes the planned model as GGUF: one zero-cost transformer block around the bigram tables. */
export async function writeBigramModel(path: string, plan: BigramModelPlan, options: BigramWriteOptions = {}): Promise<GgufWriteSummary> {
  const metadata = llamaMetadata({
    name: options.name ?? 'demo-bigram',
    shape: plan.shape,
    vocab: plan.vocab,
    fileType: LLAMA_FILE_TYPE[options.type ?? 'q8_0'],
    extra: {
      ...options.extra,
      'general.description': {
        type: 'string',
        value: `Bigram model over public-domain prose and ChatML replies (${plan.corpusTokens} tokens); for demos and tests.`,
      },
      ...(plan.chat && { 'tokenizer.chat_template': { type: 'string', value: CHATML_TEMPLATE } as const }),
    },
  });
  const tensors: GgufTensorSource[] = llamaTensorSlots(plan.shape, plan.vocab.tokens.length).map((slot) => ({
    name: slot.name,
    dims: slot.dims,
    type: tensorType(slot.role, options.type),
    values: () => rows(slot, (row, values) => fillRow(plan, slot, row, values)),
  }));
  return writeGgufFile(path, metadata, tensors);
}

function tensorType(role: LlamaTensorRole, type: LlamaWeightType | undefined): GgufTensorType {
  if (role === 'norm') return 'f32';
  if (type === undefined) return role === 'output' ? 'f16' : 'q8_0';
  return type === 'q4_0' && role === 'output' ? 'q8_0' : type;
}

// A reply as generation meets it: from the line break that closes `<|im_start|>assistant` to `<|im_end|>`,
// tokenized exactly as within a rendered conversation (each fragment after a marker gets the leading space).
function replyStream(tokenizer: SpmTokenizer, specials: ReadonlyMap<string, number>, content: string): number[] {
  const endId = specials.get(IM_END)!;
  const tokens = tokenizer.tokenizeWithSpecials(renderChatML([{ role: 'assistant', content }]), specials);
  const newline = tokenizer.tokenize('\n', false);
  const start = tokens.findIndex((_, index) => newline.every((token, offset) => tokens[index + offset] === token));
  return tokens.slice(start, tokens.lastIndexOf(endId) + 1);
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
  const { contextCount, historySize, normGain, chat } = plan;
  // The detector's query and key live in the last rotary pair of head 1.
  const detectorRow = 2 * historySize - 2;
  switch (slot.role) {
    case 'embedding':
      values[plan.contextSlot[row]!] = 1;
      return;
    case 'norm':
      values.fill(1);
      return;
    case 'attn_q':
      // Every token asks the same question: is there a turn marker?
      if (chat && row === detectorRow) values.fill(1 / normGain, 0, contextCount);
      return;
    case 'attn_k':
      // Only `<|im_start|>` answers; the attention scale divides the score by sqrt(head width).
      if (chat && row === detectorRow) {
        values[plan.contextSlot[chat.startId]!] = (DETECTOR_SCORE * Math.sqrt(historySize)) / normGain;
      }
      return;
    case 'attn_v': {
      if (chat && row === historySize) {
        values[plan.contextSlot[chat.startId]!] = 1 / normGain;
        return;
      }
      // Row h copies "token h is current" out of the one-hot slot, undoing attn_norm's gain.
      const token = row < historySize ? plan.historyIndex.indexOf(row) : -1;
      if (token >= 0) values[plan.contextSlot[token]!] = 1 / normGain;
      return;
    }
    case 'attn_output':
      // Residual slot contextCount + h receives the attention average for tracked token h.
      if (row >= contextCount && row < contextCount + historySize) values[row - contextCount] = 1;
      if (chat && row === chat.slot) values[historySize] = CHAT_SIGNAL;
      return;
    case 'output': {
      const vocabSize = plan.vocab.tokens.length;
      for (let context = 0; context < contextCount; context++) {
        values[context] = plan.logProb[context * vocabSize + row]! / normGain;
      }
      const history = plan.historyIndex[row]!;
      if (history >= 0) values[contextCount + history] = -plan.historyPenalty / normGain;
      if (chat && row === chat.endId) values[chat.slot] = CHAT_GATE / (CHAT_SIGNAL * normGain);
      return;
    }
    default:
      // Head 0's queries and keys and the feed-forward network stay zero: that head is a plain average and the
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
