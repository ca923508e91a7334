import { parentPort } from 'node:worker_threads';
import { getLlama, LlamaLogLevel, type Llama, type LlamaModel } from 'node-llama-cpp';
import type { TokenizeJob, TokenizeResult } from './tokenizer-messages.js';

/*
 * Worker thread that tokenizes long prompts off the main event loop. It loads each model file
 * vocabulary-only (no weights), keeps the few most recently used, and answers one job at a time.
 */

const MAX_VOCABS = 4;

let llama: Promise<Llama> | undefined;
const vocabs = new Map<string, Promise<LlamaModel>>();

function vocabOf(job: TokenizeJob): Promise<LlamaModel> {
  const key = `${job.path}\n${job.fingerprint}`;
  let model = vocabs.get(key);
  if (model) {
    // Most recently used last, so the first entry is the one to evict.
    vocabs.delete(key);
  } else {
    llama ??= getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
    model = llama.then((runtime) => runtime.loadModel({ modelPath: job.path, vocabOnly: true }));
    // A failed load is not kept: the next job tries again.
    model.catch(() => vocabs.delete(key));
  }
  vocabs.set(key, model);
  while (vocabs.size > MAX_VOCABS) {
    const [oldest, evicted] = vocabs.entries().next().value as [string, Promise<LlamaModel>];
    vocabs.delete(oldest);
    void evicted.then((vocab) => vocab.dispose(), () => undefined);
  }
  return model;
}

async function run(job: TokenizeJob): Promise<TokenizeResult> {
  try {
    const model = await vocabOf(job);
    const tokens = Uint32Array.from(model.tokenize(job.text));
    return { id: job.id, ok: true, tokens };
  } catch (error) {
    return { id: job.id, ok: false, message: error instanceof Error ? error.message : String(error) };
  }
}

parentPort!.on('message', (job: TokenizeJob) => {
  void run(job).then((result) => parentPort!.postMessage(result, result.ok ? [result.tokens.buffer as ArrayBuffer] : []));
});
