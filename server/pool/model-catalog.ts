import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';

/** A model file found in the models folder. */
export interface CatalogEntry {
  /** File name without `.gguf`; what requests name in `gen.model`. */
  name: string;
  path: string;
  sizeBytes: number;
  modifiedMs: number;
}

/** Lists the GGUF files of a folder, sorted by name; a missing folder lists nothing. */
export async function scanModels(modelsDir: string): Promise<CatalogEntry[]> {
  let names: string[];
  try {
    names = await readdir(modelsDir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const entries: CatalogEntry[] = [];
  for (const file of names.filter((name) => name.toLowerCase().endsWith('.gguf')).sort()) {
    const filePath = path.join(modelsDir, file);
    const info = await stat(filePath).catch(() => undefined);
    if (!info?.isFile()) continue;
    entries.push({ name: file.slice(0, -'.gguf'.length), path: filePath, sizeBytes: info.size, modifiedMs: info.mtimeMs });
  }
  return entries;
}
