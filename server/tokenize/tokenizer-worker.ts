import { parentPort, workerData } from 'node:worker_threads';
import { getLlama, LlamaLogLevel, LlamaText, resolveChatWrapper, type Llama, type LlamaGpuType, type LlamaModel } from 'node-llama-cpp';
import { chatWrapperTypeOf } from '../chat/chat-template.js';
import { engineLoadOptions } from '../engine/llama-runtime.js';
import type { StopRequest, TokenizeResult, TokenizerWorkerData, WorkerJob } from './tokenizer-messages.js';

/*
 * Worker thread that tokenizes long prompts off the main event loop. It loads each model file
 * vocabulary-only (no weights), keeps the few most recently used, and answers one job at a time.
 */

const MAX_VOCABS = 4;

let llama: Promise<Llama> | undefined;
const vocabs = new Map<string, Promise<LlamaModel>>();

/**
 * The engine the service loaded (a second build in the process would bind to its libraries),
 * on the CPU: vocabularies need no GPU. A native build exists only for the backend it was built
 * for, so a native GPU build is loaded for its GPU.
 */
function loadEngine(engine: TokenizerWorkerData): Promise<Llama> {
  const gpu = engine.build === 'native' && engine.backend !== 'cpu' ? (engine.backend as LlamaGpuType) : false;
  return getLlama({ gpu, ...engineLoadOptions(engine.build), logLevel: LlamaLogLevel.error });
}

function vocabOf(job: WorkerJob): Promise<LlamaModel> {
  const key = `${job.path}\n${job.fingerprint}`;
  let model = vocabs.get(key);
  if (model) {
    // Most recently used last, so the first entry is the one to evict.
    vocabs.delete(key);
  } else {
    llama ??= loadEngine((workerData as TokenizerWorkerData | null) ?? { build: 'auto', backend: 'cpu' });
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

async function run(job: WorkerJob): Promise<TokenizeResult> {
  try {
    const model = await vocabOf(job);
    if ('chatWrapper' in job) return { id: job.id, ok: true, chatWrapper: chatWrapperTypeOf(resolveChatWrapper(model, { warningLogs: false })) };
    const tokens = Uint32Array.from(typeof job.text === 'string' ? model.tokenize(job.text) : LlamaText.fromJSON(job.text).tokenize(model.tokenizer));
    return { id: job.id, ok: true, tokens };
  } catch (error) {
    return { id: job.id, ok: false, message: error instanceof Error ? error.message : String(error) };
  }
}

/** Frees every vocabulary and the engine, so that terminating this thread finds no native object alive. */
async function release(): Promise<void> {
  const models = [...vocabs.values()];
  vocabs.clear();
  await Promise.allSettled(models.map((model) => model.then((vocab) => vocab.dispose())));
  const engine = llama;
  llama = undefined;
  await engine?.then((runtime) => runtime.dispose(), () => undefined);
}

parentPort!.on('message', (job: WorkerJob | StopRequest) => {
  if ('stop' in job) {
    void release().finally(() => parentPort!.postMessage({ stopped: true }));
    return;
  }
  void run(job).then((result) => parentPort!.postMessage(result, result.ok && 'tokens' in result ? [result.tokens.buffer as ArrayBuffer] : []));
});
