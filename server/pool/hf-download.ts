import { resolveModelFile } from 'node-llama-cpp';

/**
 * Downloads `hf:<user>/<repo>/<file>` into `directory` as `fileName` with node-llama-cpp's
 * resolver (which honours MODEL_ENDPOINT / HF_ENDPOINT and skips a file already there), reporting
 * progress 0..1; resolves with the file's path.
 */
export async function downloadModel(source: string, directory: string, fileName: string, onProgress: (progress: number) => void): Promise<string> {
  return resolveModelFile(source, {
    directory,
    fileName,
    cli: false,
    onProgress: ({ totalSize, downloadedSize }) => onProgress(totalSize > 0 ? downloadedSize / totalSize : 0),
  });
}
