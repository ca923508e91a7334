import { SPACE_MARK } from './spm-vocab.js';

export interface TrainedPieces {
  /** Single characters that get their own piece, most frequent first. */
  chars: string[];
  /** Multi-character pieces in merge order: earlier pieces should score higher. */
  merged: string[];
}

/**
 * Learns SentencePiece-style pieces by byte-pair merging over the corpus words, so common words become single
 * tokens. Characters rejected by `hasOwnPiece` get no piece and later fall back to byte tokens.
 */
export function trainPieces(text: string, hasOwnPiece: (char: string) => boolean, mergeCount: number): TrainedPieces {
  const escaped = (' ' + text).replaceAll(' ', SPACE_MARK);
  const charCounts = new Map<string, number>();
  const wordCounts = new Map<string, number>();
  let word = '';
  const endWord = () => {
    if (word.length > 0) wordCounts.set(word, (wordCounts.get(word) ?? 0) + 1);
    word = '';
  };
  for (const char of escaped) {
    if (!hasOwnPiece(char)) {
      endWord();
      continue;
    }
    charCounts.set(char, (charCounts.get(char) ?? 0) + 1);
    // Pieces may start with a space mark but never contain one, as in SentencePiece; runs of line breaks
    // form pieces of their own so a paragraph break is one token.
    const isBreak = char === '\n';
    if (char === SPACE_MARK || isBreak !== word.startsWith('\n')) endWord();
    word += char;
  }
  endWord();

  const chars = [...charCounts.entries()]
    .sort((a, b) => b[1] - a[1] || compareStrings(a[0], b[0]))
    .map(([char]) => char);
  const words = [...wordCounts.entries()].map(([text, count]) => ({ symbols: [...text], count }));
  const known = new Set(chars);
  const merged: string[] = [];
  for (let round = 0; round < mergeCount; round++) {
    const best = mostFrequentPair(words);
    if (best === undefined) break;
    const [left, right] = best;
    const piece = left + right;
    if (!known.has(piece)) {
      known.add(piece);
      merged.push(piece);
    }
    for (const entry of words) entry.symbols = mergePair(entry.symbols, left, right);
  }
  return { chars, merged };
}

function mostFrequentPair(words: readonly { symbols: string[]; count: number }[]): [string, string] | undefined {
  const counts = new Map<string, number>();
  for (const { symbols, count } of words) {
    for (let i = 1; i < symbols.length; i++) {
      const key = symbols[i - 1] + '\u0000' + symbols[i];
      counts.set(key, (counts.get(key) ?? 0) + count);
    }
  }
  let bestKey: string | undefined;
  let bestCount = 1; // a pair seen once teaches nothing
  for (const [key, count] of counts) {
    if (count > bestCount || (count === bestCount && bestKey !== undefined && compareStrings(key, bestKey) < 0)) {
      bestKey = key;
      bestCount = count;
    }
  }
  if (bestKey === undefined) return undefined;
  const [left, right] = bestKey.split('\u0000') as [string, string];
  return [left, right];
}

function mergePair(symbols: string[], left: string, right: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < symbols.length; i++) {
    if (symbols[i] === left && symbols[i + 1] === right) {
      out.push(left + right);
      i++;
    } else {
      out.push(symbols[i]!);
    }
  }
  return out;
}

// Code-unit order, independent of locale, so training is reproducible everywhere.
function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
