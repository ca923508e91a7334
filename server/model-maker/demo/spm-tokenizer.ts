import { SPACE_MARK, type SpmVocab } from './spm-vocab.js';

interface SymbolNode {
  start: number;
  length: number; // 0 once merged into its left neighbour
  prev: number;
  next: number;
}

interface Bigram {
  left: number;
  right: number;
  score: number;
  length: number;
}

/**
 * A faithful copy of llama.cpp's SentencePiece ("llama") tokenizer: greedy merges of adjacent symbols into the
 * highest-scoring vocabulary piece, with characters outside the vocabulary falling back to byte tokens.
 * Used to count bigrams over the corpus exactly as the runtime will tokenize it.
 */
export class SpmTokenizer {
  private readonly ids = new Map<string, number>();
  private readonly byteIds: number[] = [];

  constructor(private readonly vocab: SpmVocab) {
    vocab.tokens.forEach((token, id) => {
      if (!this.ids.has(token)) this.ids.set(token, id);
    });
    for (let byte = 0; byte < 256; byte++) {
      const id = this.ids.get(`<0x${byte.toString(16).toUpperCase().padStart(2, '0')}>`);
      if (id === undefined) throw new Error(`vocab lacks byte token for 0x${byte.toString(16)}`);
      this.byteIds.push(id);
    }
  }

  /**
   * Token ids for `text` without BOS, with the given special tokens recognised as llama.cpp does when it parses
   * special tokens: the text is split around them, and each fragment that follows one (or starts the text)
   * gets the leading space.
   */
  tokenizeWithSpecials(text: string, specials: ReadonlyMap<string, number>): number[] {
    if (specials.size === 0) return this.tokenize(text);
    const pattern = new RegExp([...specials.keys()].sort((a, b) => b.length - a.length).map(escapeRegExp).join('|'), 'g');
    const output: number[] = [];
    let previousSpecial = true;
    let at = 0;
    const pushText = (fragment: string) => {
      if (fragment.length === 0) return;
      output.push(...this.tokenize(fragment, previousSpecial));
      previousSpecial = false;
    };
    for (const match of text.matchAll(pattern)) {
      pushText(text.slice(at, match.index));
      output.push(specials.get(match[0])!);
      previousSpecial = true;
      at = match.index + match[0].length;
    }
    pushText(text.slice(at));
    return output;
  }

  /** Token ids for `text` without BOS; like llama.cpp, a leading space is added and spaces become "▁". */
  tokenize(text: string, addSpacePrefix = true): number[] {
    const escaped = ((addSpacePrefix ? ' ' : '') + text).replaceAll(' ', SPACE_MARK);
    if (escaped.length === 0) return [];
    const symbols: SymbolNode[] = [];
    let offset = 0;
    for (const char of escaped) {
      const index = symbols.length;
      symbols.push({ start: offset, length: char.length, prev: index - 1, next: index + 1 });
      offset += char.length;
    }
    symbols[symbols.length - 1]!.next = -1;

    const queue = new BigramQueue();
    const reverseMerges = new Map<string, [number, number]>();
    const tryAddBigram = (left: number, right: number) => {
      if (left === -1 || right === -1) return;
      const leftSymbol = symbols[left]!;
      const merged = escaped.slice(leftSymbol.start, leftSymbol.start + leftSymbol.length + symbols[right]!.length);
      const id = this.ids.get(merged);
      if (id === undefined) return;
      queue.push({ left, right, score: this.vocab.scores[id]!, length: merged.length });
      reverseMerges.set(merged, [left, right]);
    };

    for (let i = 1; i < symbols.length; i++) tryAddBigram(i - 1, i);
    for (let bigram = queue.pop(); bigram !== undefined; bigram = queue.pop()) {
      const left = symbols[bigram.left]!;
      const right = symbols[bigram.right]!;
      if (left.length === 0 || right.length === 0 || left.length + right.length !== bigram.length) continue;
      left.length += right.length;
      right.length = 0;
      left.next = right.next;
      if (right.next >= 0) symbols[right.next]!.prev = bigram.left;
      tryAddBigram(left.prev, bigram.left);
      tryAddBigram(bigram.left, left.next);
    }

    const output: number[] = [];
    const resegment = (symbol: SymbolNode) => {
      const piece = escaped.slice(symbol.start, symbol.start + symbol.length);
      const id = this.ids.get(piece);
      if (id !== undefined) {
        output.push(id);
        return;
      }
      const parts = reverseMerges.get(piece);
      if (parts === undefined) {
        for (const byte of Buffer.from(piece, 'utf8')) output.push(this.byteIds[byte]!);
        return;
      }
      resegment(symbols[parts[0]]!);
      resegment(symbols[parts[1]]!);
    };
    for (let i = 0; i !== -1; i = symbols[i]!.next) resegment(symbols[i]!);
    return output;
  }
}

// Max-heap ordered like llama.cpp's queue: higher score first, then the leftmost pair.
class BigramQueue {
  private readonly heap: Bigram[] = [];

  push(item: Bigram): void {
    const heap = this.heap;
    heap.push(item);
    for (let i = heap.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }

  pop(): Bigram | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (heap.length > 0 && last !== undefined) {
      heap[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let best = i;
        if (l < heap.length && before(heap[l]!, heap[best]!)) best = l;
        if (r < heap.length && before(heap[r]!, heap[best]!)) best = r;
        if (best === i) break;
        [heap[i], heap[best]] = [heap[best]!, heap[i]!];
        i = best;
      }
    }
    return top;
  }
}

function before(a: Bigram, b: Bigram): boolean {
  return a.score > b.score || (a.score === b.score && a.left < b.left);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
