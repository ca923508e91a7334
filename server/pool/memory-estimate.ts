import { GgmlType, GgufInsights, readGgufFileInfo, type GgufTensorInfo, type Llama } from 'node-llama-cpp';
import { inspectGgufHeader } from './gguf-header.js';

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
  const header = await inspectGgufHeader(path);
  const info = await readGgufFileInfo(path, { logWarnings: false });
  const insights = await GgufInsights.from(info, llama);
  // Header, metadata and tensor table come first; the tensor data after them.
  const needed = info.metadataSize + (info.tensorInfoSize ?? 0) + tensorBytesNeeded(info.tensorInfo ?? []);
  // A copy cut short keeps a valid header; the tensors it lists must still fit in the file.
  if (needed > header.fileSize) throw new Error(`truncated: its tensors need ${needed} bytes but the file has ${header.fileSize}`);
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

/** Bytes per element of common tensor types ([bytes, elements] per block); others count as 0. */
const BLOCK_SIZES: Partial<Record<GgmlType, [number, number]>> = {
  [GgmlType.F32]: [4, 1],
  [GgmlType.F16]: [2, 1],
  [GgmlType.BF16]: [2, 1],
  [GgmlType.Q4_0]: [18, 32],
  [GgmlType.Q8_0]: [34, 32],
  [GgmlType.Q4_K]: [144, 256],
  [GgmlType.Q5_K]: [176, 256],
  [GgmlType.Q6_K]: [210, 256],
};

/** End of the furthest tensor's data, measured from the data section: a lower bound of the file size. */
function tensorBytesNeeded(tensors: readonly GgufTensorInfo[]): number {
  let needed = 0;
  for (const tensor of tensors) {
    const [bytes, elements] = BLOCK_SIZES[tensor.ggmlType] ?? [0, 1];
    const count = tensor.dimensions.reduce<number>((product, dimension) => product * Number(dimension), 1);
    needed = Math.max(needed, Number(tensor.offset) + Math.ceil((count * bytes) / elements));
  }
  return needed;
}
