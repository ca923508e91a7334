import { GgufInsights, readGgufFileInfo, type Llama } from 'node-llama-cpp';
import { inspectGgufHeader } from '../gguf/gguf-header.js';

/** What the pool knows of a model file before loading it. */
export interface ModelFacts {
  architecture: string;
  trainContextSize: number;
  /** Weights plus a context of the configured size and sequences, in bytes. */
  estimatedBytes: number;
}

/**
 * Reads a GGUF file's header and metadata (never the weights) and estimates the memory of the
 * weights and of a context with `sequences` × `contextSize` tokens. The header is checked first:
 * garbage counts can make the library's reader hang.
 */
export async function readModelFacts(llama: Llama, path: string, contextSize: number, sequences: number): Promise<ModelFacts> {
  await inspectGgufHeader(path);
  const info = await readGgufFileInfo(path, { logWarnings: false });
  const insights = await GgufInsights.from(info, llama);
  const trainContextSize = insights.trainContextSize ?? contextSize;
  const weights = await insights.estimateModelResourceRequirementsV2({ gpuLayers: 0, useMmap: true });
  const context = await insights.estimateContextResourceRequirementsV2({
    contextSize: Math.min(contextSize, trainContextSize),
    modelGpuLayers: 0,
    sequences,
  });
  return {
    architecture: String(info.metadata.general.architecture),
    trainContextSize,
    estimatedBytes: weights.cpuRam + weights.gpuVram + context.cpuRam + context.gpuVram,
  };
}
