import { FIRST_BYTE_ID, SPACE_MARK, TOKEN_TYPE, type SpmVocab } from './spm-vocab.js';

/** Unigram distribution over tokens that may start a character: never a UTF-8 continuation byte. */
export function backoffDistribution(unigram: Float64Array, vocab: SpmVocab): Float64Array {
  const backoff = new Float64Array(unigram.length);
  let total = 0;
  for (let token = 0; token < unigram.length; token++) {
    if (vocab.types[token] === TOKEN_TYPE.byte && isContinuationByte(token - FIRST_BYTE_ID)) continue;
    backoff[token] = unigram[token]!;
    total += unigram[token]!;
  }
  for (let token = 0; token < backoff.length; token++) backoff[token]! /= total;
  return backoff;
}

/** Whether a token starts a word, continues one, or is something else; backoff respects what follows a token. */
export type TokenKind = 0 | 1 | 2;
const KIND_COUNT = 3;

/** Kind of a vocabulary piece, from its text. */
export function tokenKind(text: string): TokenKind {
  if (text.startsWith(SPACE_MARK)) return 0;
  return /^\p{L}/u.test(text) ? 1 : 2;
}

/**
 * Next-token probabilities from one context's follower counts: Witten-Bell interpolation with a backoff that
 * keeps the kind of follower seen after this token, so after a word-final piece the backoff offers new words,
 * not word middles. `strict` (after a non-ASCII byte) allows only observed transitions, so sampled byte
 * sequences always form valid UTF-8.
 */
export function smoothedRow(counts: Float64Array, backoff: Float64Array, kinds: readonly TokenKind[], strict: boolean): Float64Array {
  let total = 0;
  let distinct = 0;
  const kindCounts = new Float64Array(KIND_COUNT);
  const kindBackoff = new Float64Array(KIND_COUNT);
  for (let token = 0; token < counts.length; token++) {
    const count = counts[token]!;
    total += count;
    kindCounts[kinds[token]!]! += count;
    kindBackoff[kinds[token]!]! += backoff[token]!;
    if (count > 0) distinct++;
  }
  const row = new Float64Array(counts.length);
  const backoffWeight = strict ? 0 : distinct;
  for (let token = 0; token < counts.length; token++) {
    const kind = kinds[token]!;
    const kindShare = kindBackoff[kind]! > 0 ? kindCounts[kind]! / total / kindBackoff[kind]! : 0;
    row[token] = (counts[token]! + backoffWeight * kindShare * backoff[token]!) / (total + backoffWeight);
  }
  return row;
}

/** Whether a token is a byte of a multi-byte UTF-8 character (lead or continuation). */
export function isMidCharacter(token: number): boolean {
  const byte = token - FIRST_BYTE_ID;
  return byte >= 0x80 && byte <= 0xff;
}

function isContinuationByte(byte: number): boolean {
  return byte >= 0x80 && byte <= 0xbf;
}
