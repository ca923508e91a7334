import { readFile } from 'node:fs/promises';
import path from 'node:path';

/** Sampling defaults a model applies when a request leaves them out. */
export interface SamplingDefaults {
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  /** Absent: 1 (off). */
  repeatPenalty?: number;
  /** Absent: 0 (off). */
  frequencyPenalty?: number;
  /** Absent: 0 (off). */
  presencePenalty?: number;
  /** How many recent tokens (prompt tail and reply) the penalties look at. Absent: 64. */
  penaltyLastTokens?: number;
}

/** One model's settings in `models.json`; every field but `name` is optional. */
export interface ManifestEntry {
  /** Name requests use. */
  name: string;
  /** GGUF file in the models folder. Default: `<name>.gguf`. */
  file?: string;
  /** `hf:<user>/<repo>/<file>`: downloaded into the models folder when the file is missing. */
  source?: string;
  /** Parallel sequences. Default: PARALLEL_SEQUENCES. */
  slots?: number;
  /** Tokens per sequence. Default: CONTEXT_SIZE. */
  contextSize?: number;
  sampling?: Partial<SamplingDefaults>;
  /** Load at start. Default: true for the default model, false otherwise. */
  preload?: boolean;
  /** Seconds idle before the model is unloaded; 0 keeps it. Default: KEEP_ALIVE_S (the default model: 0). */
  keepAliveS?: number;
  /** Lock the weights in RAM. Default: MLOCK. */
  mlock?: boolean;
}

export interface Manifest {
  /** Name of the default model. */
  default?: string;
  models: ManifestEntry[];
}

/** The manifest names something that cannot work; the message says which entry and field. */
export class ManifestError extends Error {
  override name = 'ManifestError';
}

export const MANIFEST_FILE = 'models.json';

/** Reads `<modelsDir>/models.json`; a missing file is an empty manifest. */
export async function readManifest(modelsDir: string): Promise<Manifest> {
  const file = path.join(modelsDir, MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { models: [] };
    throw error;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new ManifestError(`${file}: not valid JSON (${(error as Error).message})`);
  }
  return parseManifest(raw, file);
}

/** Validates a parsed manifest. */
export function parseManifest(raw: unknown, where = MANIFEST_FILE): Manifest {
  if (!isObject(raw)) throw new ManifestError(`${where}: expected an object with a "models" array`);
  const models = raw.models ?? [];
  if (!Array.isArray(models)) throw new ManifestError(`${where}: "models" must be an array`);
  const manifest: Manifest = { models: models.map((entry, index) => parseEntry(entry, `${where}: models[${index}]`)) };
  if (raw.default !== undefined) {
    if (typeof raw.default !== 'string') throw new ManifestError(`${where}: "default" must be a model name`);
    manifest.default = raw.default;
  }
  const names = new Set<string>();
  for (const entry of manifest.models) {
    if (names.has(entry.name)) throw new ManifestError(`${where}: model name "${entry.name}" appears twice`);
    names.add(entry.name);
  }
  return manifest;
}

function parseEntry(raw: unknown, where: string): ManifestEntry {
  if (!isObject(raw)) throw new ManifestError(`${where}: expected an object`);
  const name = raw.name;
  if (typeof name !== 'string' || !/^[A-Za-z0-9._-]{1,128}$/.test(name)) {
    throw new ManifestError(`${where}: "name" must be 1-128 letters, digits, ".", "_" or "-"`);
  }
  const entry: ManifestEntry = { name };
  if (raw.file !== undefined) {
    if (typeof raw.file !== 'string' || !raw.file.endsWith('.gguf') || raw.file.includes('/') || raw.file.includes('\\')) {
      throw new ManifestError(`${where}: "file" must be a .gguf file name inside the models folder`);
    }
    entry.file = raw.file;
  }
  if (raw.source !== undefined) {
    if (typeof raw.source !== 'string' || !/^hf:[^/\s]+\/[^/\s]+\/.+\.gguf$/.test(raw.source)) {
      throw new ManifestError(`${where}: "source" must look like hf:<user>/<repo>/<file>.gguf`);
    }
    entry.source = raw.source;
  }
  const slots = optionalInteger(raw, 'slots', 1, 256, where);
  if (slots !== undefined) entry.slots = slots;
  const contextSize = optionalInteger(raw, 'contextSize', 64, 1_048_576, where);
  if (contextSize !== undefined) entry.contextSize = contextSize;
  const keepAliveS = optionalInteger(raw, 'keepAliveS', 0, 31_536_000, where);
  if (keepAliveS !== undefined) entry.keepAliveS = keepAliveS;
  for (const key of ['preload', 'mlock'] as const) {
    if (raw[key] === undefined) continue;
    if (typeof raw[key] !== 'boolean') throw new ManifestError(`${where}: "${key}" must be true or false`);
    entry[key] = raw[key];
  }
  if (raw.sampling !== undefined) entry.sampling = parseSampling(raw.sampling, `${where}.sampling`);
  return entry;
}

function parseSampling(raw: unknown, where: string): Partial<SamplingDefaults> {
  if (!isObject(raw)) throw new ManifestError(`${where}: expected an object`);
  const limits: Record<keyof SamplingDefaults, [number, number]> = {
    temperature: [0, 10],
    topK: [0, 1_000_000],
    topP: [0, 1],
    minP: [0, 1],
    repeatPenalty: [0.1, 10],
    frequencyPenalty: [-2, 2],
    presencePenalty: [-2, 2],
    penaltyLastTokens: [0, 4096],
  };
  const sampling: Partial<SamplingDefaults> = {};
  for (const [key, [min, max]] of Object.entries(limits) as [keyof SamplingDefaults, [number, number]][]) {
    const value = raw[key];
    if (value === undefined) continue;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max || (key === 'penaltyLastTokens' && !Number.isInteger(value))) {
      throw new ManifestError(`${where}: "${key}" must be ${key === 'penaltyLastTokens' ? 'an integer' : 'a number'} from ${min} to ${max}`);
    }
    sampling[key] = value;
  }
  return sampling;
}

function optionalInteger(raw: Record<string, unknown>, key: string, min: number, max: number, where: string): number | undefined {
  const value = raw[key];
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new ManifestError(`${where}: "${key}" must be an integer from ${min} to ${max}`);
  }
  return value;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
