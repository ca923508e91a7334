import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';

/** A GGUF file found in the models folder. */
export interface CatalogFile {
  fileName: string;
  path: string;
  sizeBytes: number;
  /** Changes whenever the file is replaced or rewritten. */
  fingerprint: string;
}

/** A folder that holds a model in a format the engine cannot run. */
export interface UnsupportedModel {
  name: string;
  reason: string;
}

export interface Catalog {
  files: CatalogFile[];
  unsupported: UnsupportedModel[];
}

const SAFETENSORS_HINT =
  'HuggingFace safetensors folder: convert it to GGUF first (llama.cpp: python convert_hf_to_gguf.py <folder> --outfile <name>.gguf), then put the .gguf here';

/** Lists the GGUF files (by name) and unsupported model folders of the models folder. */
export async function scanModels(modelsDir: string): Promise<Catalog> {
  let entries: import('node:fs').Dirent[];
  try {
    entries = await readdir(modelsDir, { withFileTypes: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { files: [], unsupported: [] };
    throw error;
  }
  const files: CatalogFile[] = [];
  const unsupported: UnsupportedModel[] = [];
  for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    const entryPath = path.join(modelsDir, entry.name);
    if (entry.isDirectory()) {
      const inside = await readdir(entryPath).catch(() => [] as string[]);
      if (inside.some((name) => name.endsWith('.safetensors'))) unsupported.push({ name: entry.name, reason: SAFETENSORS_HINT });
      continue;
    }
    if (!entry.name.toLowerCase().endsWith('.gguf')) continue;
    const info = await stat(entryPath).catch(() => undefined);
    if (!info?.isFile()) continue;
    files.push({ fileName: entry.name, path: entryPath, sizeBytes: info.size, fingerprint: `${info.ino}:${info.size}:${info.mtimeMs}` });
  }
  return { files, unsupported };
}
