import { SPACE_MARK } from './spm-vocab.js';

export interface ReplyEndInputs {
  /** Context slot of each token id (0: never seen before another token). */
  contextSlot: Int32Array;
  contextCount: number;
  /** The token that ends a turn (`<|im_end|>`). */
  endId: number;
  /** Vocabulary texts, to tell which pieces close a sentence. */
  tokens: readonly string[];
  maxLogit: number;
  unseenLogit: number;
}

// A sentence-final piece: ends with . ! or ?, perhaps followed by closing quotes or brackets.
const SENTENCE_END = /[.!?]['")\]]*$/;
// Pseudo-observations of the average end rate that every sentence-final piece starts with, so that a reply may
// end after any full stop, not only after the exact pieces that ended a reply in the corpus.
const PRIOR_WEIGHT = 4;

/**
 * Per context slot, the logit that makes the end of a turn as likely, after that piece, as it was in the
 * conversations: log(p / (1 - p)) beside a row of next-piece log-probabilities that sums to one. Sentence-final
 * pieces share the rate of all of them (Bayesian smoothing); other pieces keep what they showed, usually nothing.
 */
export function endOfReplyLogits(chats: readonly (readonly number[])[], inputs: ReplyEndInputs): Float32Array {
  const { contextSlot, contextCount, endId } = inputs;
  const ends = new Float64Array(contextCount);
  const follows = new Float64Array(contextCount);
  for (const stream of chats) {
    for (let i = 1; i < stream.length; i++) {
      const slot = contextSlot[stream[i - 1]!]!;
      follows[slot]! += 1;
      if (stream[i] === endId) ends[slot]! += 1;
    }
  }
  const slotToken = new Int32Array(contextCount);
  contextSlot.forEach((slot, token) => {
    if (slot > 0) slotToken[slot] = token;
  });
  const sentenceFinal = (slot: number) => slot > 0 && SENTENCE_END.test(inputs.tokens[slotToken[slot]!]!.replaceAll(SPACE_MARK, ' '));

  let finalEnds = 0;
  let finalFollows = 0;
  for (let slot = 1; slot < contextCount; slot++) {
    if (!sentenceFinal(slot)) continue;
    finalEnds += ends[slot]!;
    finalFollows += follows[slot]!;
  }
  const prior = finalFollows > 0 ? finalEnds / finalFollows : 0;

  const logits = new Float32Array(contextCount).fill(inputs.unseenLogit);
  for (let slot = 1; slot < contextCount; slot++) {
    const p = sentenceFinal(slot)
      ? (ends[slot]! + PRIOR_WEIGHT * prior) / (follows[slot]! + PRIOR_WEIGHT)
      : follows[slot]! > 0 ? ends[slot]! / follows[slot]! : 0;
    if (p <= 0) continue;
    const logit = p >= 1 ? inputs.maxLogit : Math.log(p / (1 - p));
    logits[slot] = Math.min(inputs.maxLogit, Math.max(inputs.unseenLogit, logit));
  }
  return logits;
}
