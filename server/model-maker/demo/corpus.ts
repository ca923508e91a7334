import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export class CorpusNotFoundError extends Error {
  override name = 'CorpusNotFoundError';
}

const CORPUS_RELATIVE_DIR = join('models', 'corpus');

/**
 * Locates models/corpus by walking up from this module, so it is found both when running the TypeScript
 * sources and when running a compiled copy under dist/.
 */
export function findCorpusDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let depth = 0; depth < 6; depth++) {
    const candidate = join(dir, CORPUS_RELATIVE_DIR);
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw new CorpusNotFoundError(`no ${CORPUS_RELATIVE_DIR} directory above ${fileURLToPath(import.meta.url)}`);
}

/** Every *.txt file of the corpus directory in name order, joined as paragraphs. */
export async function readCorpus(dir: string = findCorpusDir()): Promise<string> {
  const names = (await readdir(dir)).filter((name) => name.endsWith('.txt')).sort();
  if (names.length === 0) throw new CorpusNotFoundError(`no .txt files in ${dir}`);
  const texts = await Promise.all(names.map((name) => readFile(join(dir, name), 'utf8')));
  return texts.map((text) => text.replaceAll('\r\n', '\n').trim()).join('\n\n');
}

/** Every *.chatml file of the corpus directory in name order: conversations in ChatML form. */
export async function readChatCorpus(dir: string = findCorpusDir()): Promise<string> {
  const names = (await readdir(dir)).filter((name) => name.endsWith('.chatml')).sort();
  if (names.length === 0) throw new CorpusNotFoundError(`no .chatml files in ${dir}`);
  const texts = await Promise.all(names.map((name) => readFile(join(dir, name), 'utf8')));
  return texts.map((text) => text.replaceAll('\r\n', '\n').trim()).join('\n\n') + '\n';
}
