import { getLlama, LlamaLogLevel, type Llama } from 'node-llama-cpp';

export interface RuntimeOptions {
  /** Backend: `auto` takes a GPU when one works, `false` forces the CPU. */
  gpu: 'auto' | 'false' | 'cuda' | 'vulkan' | 'metal';
  /** Upper bound of CPU threads any context may use. */
  maxThreads: number;
  /** Forward llama.cpp warnings to this function; when absent, only errors are kept. */
  onEngineLog?: (level: string, message: string) => void;
}

/** Starts the one node-llama-cpp runtime shared by every model, from prebuilt binaries only. */
export async function createLlamaRuntime(options: RuntimeOptions): Promise<Llama> {
  return getLlama({
    gpu: options.gpu === 'false' ? false : options.gpu,
    // No compiler or network is assumed at run time: use the binaries the package ships.
    build: 'never',
    maxThreads: options.maxThreads,
    logLevel: options.onEngineLog ? LlamaLogLevel.warn : LlamaLogLevel.error,
    logger: (level, message) => options.onEngineLog?.(level, message.trimEnd()),
  });
}
