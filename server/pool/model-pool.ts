import type { Llama } from 'node-llama-cpp';
import { ErrorCode, type ModelInfo } from '../../protocol/index.js';
import { ServiceError } from '../errors.js';
import { scanModels, type CatalogEntry } from './model-catalog.js';
import { LoadedModel, type LoadOptions } from './loaded-model.js';

export interface ModelPoolOptions extends LoadOptions {
  modelsDir: string;
  /** Name of the model used when a request names none; empty: the first by name. */
  defaultModel: string;
}

interface PoolEntry {
  catalog: CatalogEntry;
  loaded?: LoadedModel;
  loading?: Promise<LoadedModel>;
  failure?: string;
}

/** The models of the models folder, loaded on first use and shared by every connection. */
export class ModelPool {
  private readonly entries = new Map<string, PoolEntry>();
  private closed = false;

  private constructor(private readonly llama: Llama, private readonly options: ModelPoolOptions, readonly defaultName: string) {}

  /** Scans the models folder; fails when it holds no model or not the configured default. */
  static async open(llama: Llama, options: ModelPoolOptions): Promise<ModelPool> {
    const catalog = await scanModels(options.modelsDir);
    if (catalog.length === 0) throw new Error(`no GGUF model in ${options.modelsDir}`);
    const defaultName = options.defaultModel || catalog[0]!.name;
    if (!catalog.some((entry) => entry.name === defaultName)) {
      throw new Error(`DEFAULT_MODEL "${defaultName}" is not in ${options.modelsDir} (found: ${catalog.map((entry) => entry.name).join(', ')})`);
    }
    const pool = new ModelPool(llama, options, defaultName);
    for (const entry of catalog) pool.entries.set(entry.name, { catalog: entry });
    return pool;
  }

  /** True when the default model is loaded and can take requests. */
  get ready(): boolean {
    return !this.closed && this.entries.get(this.defaultName)?.loaded !== undefined;
  }

  /** Every model with its state, for `hello`, `models` and `GET /api/models`. */
  list(): ModelInfo[] {
    return [...this.entries.values()].map(({ catalog, loaded, loading, failure }) => {
      const info: ModelInfo = {
        name: catalog.name,
        state: loaded ? 'loaded' : loading ? 'loading' : failure ? 'failed' : 'available',
        default: catalog.name === this.defaultName,
        sizeBytes: catalog.sizeBytes,
      };
      if (failure) info.reason = failure;
      if (loaded) {
        info.architecture = loaded.model.fileInfo.metadata.general.architecture;
        info.contextSize = loaded.contextSize;
        info.slotsBusy = loaded.scheduler.busy;
        info.slotsTotal = loaded.scheduler.total;
        info.queueLength = loaded.scheduler.queued;
      }
      return info;
    });
  }

  /** The loaded model of that name (the default when absent), loading it first if needed. */
  async get(name: string | undefined): Promise<LoadedModel> {
    if (this.closed) throw new ServiceError(ErrorCode.shuttingDown, 'the server is shutting down');
    const entry = this.entries.get(name ?? this.defaultName);
    if (!entry) throw new ServiceError(ErrorCode.modelNotFound, `no model named "${name}"`, { details: { model: name ?? '' } });
    if (entry.loaded) return entry.loaded;
    entry.loading ??= this.load(entry);
    return entry.loading;
  }

  /** Unloads every model; waiting requests are refused with shutting_down. */
  async close(): Promise<void> {
    this.closed = true;
    const error = new ServiceError(ErrorCode.shuttingDown, 'the server is shutting down');
    await Promise.all([...this.entries.values()].map((entry) => entry.loaded?.dispose(error)));
  }

  private async load(entry: PoolEntry): Promise<LoadedModel> {
    try {
      const loaded = await LoadedModel.load(this.llama, entry.catalog.name, entry.catalog.path, this.options);
      entry.loaded = loaded;
      entry.failure = undefined;
      return loaded;
    } catch (error) {
      entry.failure = (error as Error).message;
      throw new ServiceError(ErrorCode.modelUnavailable, `model "${entry.catalog.name}" failed to load: ${entry.failure}`, { cause: error });
    } finally {
      entry.loading = undefined;
    }
  }
}
