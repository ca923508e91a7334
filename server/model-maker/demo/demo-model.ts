import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { GgufWriteSummary } from '../gguf/gguf-writer.js';
import { planBigramModel, writeBigramModel } from './bigram-model.js';
import { readCorpus } from './corpus.js';

/** File name the demo model is written under. */
export const DEMO_MODEL_FILE = 'demo.gguf';

/**
 * At temperature 0 the demo model continues this prompt with "é", which has no piece of its own and is emitted
 * as two byte tokens (0xC3 0xA9): a check that streaming never splits a multi-byte character.
 */
export const DEMO_MULTIBYTE_PROMPT = 'Every morning began at the little caf';
export const DEMO_MULTIBYTE_EXPECTED = 'é';

export interface DemoModelOptions {
  seed?: number;
  /** Directory of *.txt files to learn from; defaults to the repository's models/corpus. */
  corpusDir?: string;
}

/**
 * Makes sure `modelsDir` holds a model: when it has no *.gguf file, writes the demo model there as
 * demo.gguf (creating the directory). Returns demo.gguf's path when written, otherwise the existing
 * demo.gguf or else the first *.gguf in name order.
 */
export async function ensureDemoModel(
  modelsDir: string,
  options: DemoModelOptions = {},
): Promise<{ path: string; created: boolean }> {
  await mkdir(modelsDir, { recursive: true });
  const existing = await listModelFiles(modelsDir);
  if (existing.length > 0) {
    const name = existing.includes(DEMO_MODEL_FILE) ? DEMO_MODEL_FILE : existing[0]!;
    return { path: join(modelsDir, name), created: false };
  }
  const path = join(modelsDir, DEMO_MODEL_FILE);
  await writeDemoModel(path, options);
  return { path, created: true };
}

/** Writes the demo model to `path` regardless of what else exists. */
export async function writeDemoModel(path: string, options: DemoModelOptions = {}): Promise<GgufWriteSummary> {
  const corpus = await readCorpus(options.corpusDir);
  const plan = planBigramModel(corpus, options.seed === undefined ? {} : { seed: options.seed });
  return writeBigramModel(path, plan, 'demo-bigram');
}

async function listModelFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile() && entry.name.toLowerCase().endsWith('.gguf'))
    .map((entry) => entry.name)
    .sort();
}
