import { readFileSync } from 'node:fs';
import path from 'node:path';

const CORPUS_FILE = path.resolve(import.meta.dirname, '../../models/corpus/alice-in-wonderland.txt');

/**
 * Prose that the model's tokenizer (`tokenize`, the model's own, without BOS) turns into about
 * `tokens` tokens (within 1 %), cut from the demo corpus and repeated as needed.
 */
export async function sizedPrompt(tokens: number, tokenize: (text: string) => Promise<number[]>): Promise<{ text: string; tokens: number }> {
  const prose = readFileSync(CORPUS_FILE, 'utf8').replace(/\s+/g, ' ').trim();
  const take = (chars: number): string => prose.repeat(Math.ceil(chars / prose.length)).slice(0, chars).trimEnd();
  let chars = tokens * 4;
  let text = take(chars);
  let count = (await tokenize(text)).length;
  for (let step = 0; step < 6 && Math.abs(count - tokens) > tokens * 0.01; step++) {
    chars = Math.max(1, Math.round((chars * tokens) / count));
    text = take(chars);
    count = (await tokenize(text)).length;
  }
  return { text, tokens: count };
}
