import { createLlamaRuntime } from '../../server/engine/llama-runtime.js';
import { ServiceError } from '../../server/errors.js';
import { LoadedModel } from '../../server/pool/loaded-model.js';
import { PromptTokenizer } from '../../server/tokenize/prompt-tokenizer.js';
import { ErrorCode } from '../../protocol/index.js';
import { ensureModelFiles, MODEL_FILES } from './model-files.js';

/** The demo model loaded in this process on the prebuilt CPU engine, as the pool loads it. */
export interface DemoEngine {
  model: LoadedModel;
  close(): Promise<void>;
}

/** Loads the demo model with `sequences` slots and greedy defaults, with its own tokenizer. */
export async function loadDemoEngine(options: { sequences: number; prefillChunkTokens: number }): Promise<DemoEngine> {
  await ensureModelFiles();
  const { llama } = await createLlamaRuntime({ gpu: 'false', build: 'prebuilt', maxThreads: 1 });
  const tokenizer = new PromptTokenizer({ inlineMaxChars: 1_000_000, maxQueue: 16, maxQueuedPerOwner: 8, queueTimeoutMs: 30_000, idleMs: 60_000 });
  const model = await LoadedModel.load(
    llama,
    { name: 'demo', path: MODEL_FILES.demo, fingerprint: 'demo', estimatedBytes: 0 },
    {
      contextSize: 2048,
      sequences: options.sequences,
      threads: 1,
      prefillChunkTokens: options.prefillChunkTokens,
      mlock: false,
      sampling: { temperature: 0, topK: 40, topP: 0.95, minP: 0.05 },
      tokenizer,
      maxQueue: 8,
      queueTimeoutMs: 30_000,
    },
  );
  return {
    model,
    async close() {
      await model.dispose(new ServiceError(ErrorCode.shuttingDown, 'test over'));
      await tokenizer.close();
    },
  };
}
