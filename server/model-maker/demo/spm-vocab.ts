/** A SentencePiece ("llama") vocabulary as llama.cpp reads it from tokenizer.ggml.* keys. */
export interface SpmVocab {
  tokens: string[];
  scores: number[];
  types: number[];
  unkId: number;
  bosId: number;
  eosId: number;
  /** End of a turn (a chat reply), when the vocabulary has one: generation stops at it as at EOS. */
  eotId?: number;
}

/** llama.cpp's token attribute codes for tokenizer.ggml.token_type. */
export const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, unused: 5, byte: 6 } as const;

/** SentencePiece marks a space with U+2581 so pieces can carry word boundaries. */
export const SPACE_MARK = '\u2581';
export const UNK_ID = 0;
export const BOS_ID = 1;
export const EOS_ID = 2;
/** Id of byte-fallback token <0x00>; byte b is FIRST_BYTE_ID + b. */
export const FIRST_BYTE_ID = 3;

/** `<unk>`, `<s>`, `</s>`, then the 256 byte-fallback tokens `<0x00>`..`<0xFF>`: the base every model here shares. */
export function byteFallbackVocab(): SpmVocab {
  const vocab: SpmVocab = { tokens: [], scores: [], types: [], unkId: UNK_ID, bosId: BOS_ID, eosId: EOS_ID };
  push(vocab, '<unk>', 0, TOKEN_TYPE.unknown);
  push(vocab, '<s>', 0, TOKEN_TYPE.control);
  push(vocab, '</s>', 0, TOKEN_TYPE.control);
  for (let byte = 0; byte < 256; byte++) {
    push(vocab, `<0x${byte.toString(16).toUpperCase().padStart(2, '0')}>`, 0, TOKEN_TYPE.byte);
  }
  return vocab;
}

/** Appends normal pieces; a higher score makes llama.cpp's tokenizer merge into that piece first. */
export function addPieces(vocab: SpmVocab, pieces: readonly { text: string; score: number }[]): void {
  const seen = new Set(vocab.tokens);
  for (const piece of pieces) {
    if (seen.has(piece.text)) throw new Error(`duplicate vocab piece ${JSON.stringify(piece.text)}`);
    seen.add(piece.text);
    push(vocab, piece.text, piece.score, TOKEN_TYPE.normal);
  }
}

/** Appends control tokens (such as chat markers), which the tokenizer emits only where a prompt names them. */
export function addControlTokens(vocab: SpmVocab, texts: readonly string[]): number[] {
  return texts.map((text) => {
    if (vocab.tokens.includes(text)) throw new Error(`duplicate vocab piece ${JSON.stringify(text)}`);
    push(vocab, text, 0, TOKEN_TYPE.control);
    return vocab.tokens.length - 1;
  });
}

/**
 * Pads the vocabulary to `size` with distinct word-like filler pieces ("▁ba", "▁be", ...), so a shape model's
 * random output still detokenizes to visible text.
 */
export function padVocab(vocab: SpmVocab, size: number): void {
  if (size < vocab.tokens.length) throw new Error(`vocab size ${size} is below the ${vocab.tokens.length} base tokens`);
  const seen = new Set(vocab.tokens);
  const consonants = 'bdfghklmnprstvz';
  const vowels = 'aeiou';
  for (let index = 0; vocab.tokens.length < size; index++) {
    let word = '';
    for (let rest = index; ; rest = Math.floor(rest / 75) - 1) {
      const syllable = rest % 75;
      word += consonants[Math.floor(syllable / 5)]! + vowels[syllable % 5]!;
      if (rest < 75) break;
    }
    const text = SPACE_MARK + word;
    if (seen.has(text)) continue;
    seen.add(text);
    push(vocab, text, -1e6 - index, TOKEN_TYPE.normal);
  }
}

function push(vocab: SpmVocab, text: string, score: number, type: number): void {
  vocab.tokens.push(text);
  vocab.scores.push(score);
  vocab.types.push(type);
}
