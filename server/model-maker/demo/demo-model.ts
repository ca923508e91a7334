import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { readGgufHeadStrings } from '../gguf/gguf-strings.js';
import type { GgufWriteSummary } from '../gguf/gguf-writer.js';
import type { LlamaWeightType } from '../gguf/llama-gguf.js';
import { planBigramModel, writeBigramModel } from './bigram-model.js';
import { parseChatCorpus } from './chatml.js';
import { CorpusNotFoundError, readChatCorpus, readCorpus } from './corpus.js';

/** File name the demo model is written under. */
export const DEMO_MODEL_FILE = 'demo.gguf';

/**
 * At temperature 0 the demo model continues this prompt with "é", which has no piece of its own and is emitted
 * as two byte tokens (0xC3 0xA9): a check that streaming never splits a multi-byte character.
 */
export const DEMO_MULTIBYTE_PROMPT = 'Every morning began at the little caf';
export const DEMO_MULTIBYTE_EXPECTED = 'é';

/** general.name of every demo model. */
export const DEMO_MODEL_NAME = 'demo-bigram';
/**
 * Revision of the code that makes the demo model: raise it whenever a change to it changes the model (tokens,
 * template, statistics, layout). The model's general.version is this revision and a digest of the corpus, so
 * that ensureDemoModel rewrites a demo model made by other code or from another corpus.
 * 3: ChatML template and markers, trained on the replies of ChatML conversations too.
 */
export const DEMO_MODEL_REVISION = 3;

export interface DemoModelOptions {
  seed?: number;
  /** Directory of *.txt prose and *.chatml conversations to learn from; defaults to the repository's models/corpus. */
  corpusDir?: string;
  /** Storage of the weight matrices; unset: q8_0 with an f16 output matrix (see writeBigramModel). */
  type?: LlamaWeightType;
}

/**
 * Makes sure `modelsDir` holds a model: when it has no *.gguf file, writes the demo model there as
 * demo.gguf (creating the directory); a demo model there of another version (older code, another corpus)
 * is written again. Returns demo.gguf's path when written, otherwise the existing demo.gguf or else the
 * first *.gguf in name order.
 */
export async function ensureDemoModel(
  modelsDir: string,
  options: DemoModelOptions = {},
): Promise<{ path: string; created: boolean }> {
  await mkdir(modelsDir, { recursive: true });
  const existing = await listModelFiles(modelsDir);
  const path = join(modelsDir, DEMO_MODEL_FILE);
  if (existing.includes(DEMO_MODEL_FILE)) {
    if (!(await isOutdatedDemoModel(path, options.corpusDir))) return { path, created: false };
  } else if (existing.length > 0) {
    return { path: join(modelsDir, existing[0]!), created: false };
  }
  await writeDemoModel(path, options);
  return { path, created: true };
}

/** Writes the demo model to `path` regardless of what else exists. */
export async function writeDemoModel(path: string, options: DemoModelOptions = {}): Promise<GgufWriteSummary> {
  const { corpus, chats, version } = await readDemoCorpus(options.corpusDir);
  const plan = planBigramModel(corpus, {
    conversations: parseChatCorpus(chats),
    ...(options.seed !== undefined && { seed: options.seed }),
  });
  return writeBigramModel(path, plan, {
    name: DEMO_MODEL_NAME,
    ...(options.type !== undefined && { type: options.type }),
    extra: { 'general.version': { type: 'string', value: version } },
  });
}

/** The general.version a demo model made now from this corpus carries. */
export async function demoModelVersion(corpusDir?: string): Promise<string> {
  return (await readDemoCorpus(corpusDir)).version;
}

async function readDemoCorpus(corpusDir: string | undefined): Promise<{ corpus: string; chats: string; version: string }> {
  const [corpus, chats] = await Promise.all([readCorpus(corpusDir), readChatCorpus(corpusDir)]);
  const digest = createHash('sha256').update(corpus).update('\0').update(chats).digest('hex').slice(0, 12);
  return { corpus, chats, version: `${DEMO_MODEL_REVISION}.${digest}` };
}

/** Whether `path` holds a demo model of the current version (one this code would write from this corpus). */
export async function isCurrentDemoModel(path: string, corpusDir?: string): Promise<boolean> {
  if (!existsSync(path)) return false;
  const found = await readGgufHeadStrings(path, ['general.name', 'general.version']);
  return found['general.name'] === DEMO_MODEL_NAME && found['general.version'] === (await demoModelVersion(corpusDir));
}

// Only a demo model (its general.name) of another version is replaced: a model of the operator's that happens
// to be called demo.gguf is left alone, and so is a demo model where there is no corpus to make it again from.
async function isOutdatedDemoModel(path: string, corpusDir: string | undefined): Promise<boolean> {
  const found = await readGgufHeadStrings(path, ['general.name']);
  if (found['general.name'] !== DEMO_MODEL_NAME) return false;
  try {
    return !(await isCurrentDemoModel(path, corpusDir));
  } catch (error) {
    if (error instanceof CorpusNotFoundError || (error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

async function listModelFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile() && entry.name.toLowerCase().endsWith('.gguf'))
    .map((entry) => entry.name)
    .sort();
}
