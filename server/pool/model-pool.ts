import type { Llama } from 'node-llama-cpp';
import { ErrorCode, type ModelInfo } from '../../protocol/index.js';
import type { ModelActionResult } from '../../protocol/admin.js';
import { ServiceError } from '../errors.js';
import type { Logger } from '../telemetry/logger.js';
import { downloadModel } from './hf-download.js';
import { LoadedModel } from './loaded-model.js';
import { readManifest, type Manifest, type SamplingDefaults } from './manifest.js';
import { scanModels } from './model-catalog.js';
import { describeEntry, type ModelEntry } from './model-entry.js';
import { readModelFacts } from './memory-estimate.js';
import { watchFolder } from './model-watcher.js';
import type { PromptTokenizer } from '../tokenize/prompt-tokenizer.js';

export interface ModelPoolOptions {
  modelsDir: string;
  /** Model used when a request names none; empty: the manifest's default, else the first by name. */
  defaultModel: string;
  contextSize: number;
  sequences: number;
  threads: number;
  /** Prompt tokens per chunk while other sequences of the model generate. */
  prefillChunkTokens: number;
  maxQueue: number;
  queueTimeoutMs: number;
  /** Upper bound of the estimated memory of all loaded models and their contexts. */
  memoryBudgetBytes: number;
  /** Seconds idle before a model other than the default is unloaded; 0 keeps models loaded. */
  keepAliveS: number;
  mlock: boolean;
  /** Watch the models folder and apply added, removed and replaced files. */
  watch: boolean;
  sampling: SamplingDefaults;
  /** Tokenizes long prompts off the event loop; shared by every model. */
  tokenizer: PromptTokenizer;
  /** Told of every version that finished loading. */
  onLoaded?: (model: LoadedModel) => void;
}

/** What an admin action did; defined with the admin API in protocol/. */
export type { ModelActionResult };

const RESCAN_DEBOUNCE_MS = 300;
const KEEP_ALIVE_SWEEP_MS = 1000;

/**
 * The models of the models folder, shared by every connection: loaded on first use (or at start
 * when preloaded) within a memory budget, least recently used idle models unloaded to make room,
 * idle ones unloaded after their keep-alive, and files added, removed or replaced while serving.
 */
export class ModelPool {
  private readonly entries = new Map<string, ModelEntry>();
  private manifest: Manifest = { models: [] };
  private closed = false;
  /** Loads and evictions run one at a time so the budget is never decided twice at once. */
  private serial: Promise<unknown> = Promise.resolve();
  private watcher: { close(): void } | undefined;
  private readonly sweeper: ReturnType<typeof setInterval>;
  defaultName = '';

  private constructor(private readonly llama: Llama, private readonly options: ModelPoolOptions, private readonly logger: Logger) {
    this.sweeper = setInterval(() => this.unloadExpired(), KEEP_ALIVE_SWEEP_MS);
    this.sweeper.unref();
  }

  /** Scans the models folder and starts watching it; fails when no model or not the configured default is there. */
  static async open(llama: Llama, options: ModelPoolOptions, logger: Logger): Promise<ModelPool> {
    const pool = new ModelPool(llama, options, logger);
    await pool.rescan();
    const names = [...pool.entries.values()].filter((entry) => !entry.unsupported).map((entry) => entry.name);
    pool.defaultName = options.defaultModel || pool.manifest.default || names[0] || '';
    if (!pool.entries.has(pool.defaultName)) {
      clearInterval(pool.sweeper);
      throw new Error(pool.defaultName ? `default model "${pool.defaultName}" is not in ${options.modelsDir} (found: ${names.join(', ') || 'none'})` : `no GGUF model in ${options.modelsDir}`);
    }
    if (options.watch) pool.watcher = watchFolder(options.modelsDir, RESCAN_DEBOUNCE_MS, () => void pool.rescan());
    return pool;
  }

  /** True when the default model is loaded and can take requests. */
  get ready(): boolean {
    return this.notReadyReason() === undefined;
  }

  /** True while a version of the model is loaded. */
  isLoaded(name: string): boolean {
    return this.entries.get(name)?.current !== undefined;
  }

  /**
   * Why a request for the default model could not be served now, or undefined when it can: it is
   * loaded, or known and loadable on demand (after an unload or an eviction a request loads it).
   */
  notReadyReason(): string | undefined {
    if (this.closed) return 'shutting down';
    const entry = this.entries.get(this.defaultName);
    if (!entry) return `no model named "${this.defaultName}" in the models folder`;
    if (entry.current) return undefined;
    if (entry.loading) return `default model "${entry.name}" is loading`;
    if (entry.unsupported) return `default model "${entry.name}" cannot be served: ${entry.unsupported}`;
    if (entry.failure) return `default model "${entry.name}" failed: ${entry.failure}`;
    if (entry.downloadProgress !== undefined) return `default model "${entry.name}" is downloading (${Math.round(entry.downloadProgress * 100)} %)`;
    if (!entry.file) return `default model "${entry.name}" has no file`;
    return undefined;
  }

  /** Loads the default model and those the manifest marks `preload`. */
  async preload(): Promise<void> {
    const wanted = [...this.entries.values()].filter((entry) => entry.name === this.defaultName || entry.settings.preload);
    await Promise.all(wanted.map((entry) => this.resolve(entry.name)));
  }

  /** Every model with its state, for `hello`, `models` and `GET /api/models`. */
  list(): ModelInfo[] {
    return [...this.entries.values()].map((entry) => describeEntry(entry, entry.name === this.defaultName));
  }

  /** The version of a model that takes new requests now, if loaded (the default model when no name). */
  current(name = this.defaultName): LoadedModel | undefined {
    return this.entries.get(name)?.current;
  }

  /** The loaded versions, for memory figures. */
  loadedModels(): LoadedModel[] {
    return [...this.entries.values()].flatMap((entry) => [...(entry.current ? [entry.current] : []), ...entry.retiring]);
  }

  /**
   * The version of the model (the default when no name) that takes new requests, loading it when
   * needed, held so it cannot retire until `release` is called: call it once the request leased
   * a slot from `model.scheduler` or gave up.
   */
  async checkout(name: string | undefined): Promise<{ model: LoadedModel; release: () => void }> {
    const model = await this.resolve(name ?? this.defaultName);
    const release = model.hold();
    const entry = this.entries.get(model.name);
    if (entry) entry.lastUsedAt = Date.now();
    return { model, release };
  }

  /** Admin: loads a model now. */
  load(name: string): Promise<ModelActionResult> {
    return this.act(name, 'load', async () => {
      await this.resolve(name);
      return 'loaded';
    });
  }

  /** Admin: unloads a model once its running requests are done; a later request loads it again. */
  unload(name: string): Promise<ModelActionResult> {
    return this.act(name, 'unload', async (entry) => {
      await this.unloadEntry(entry, 'admin');
      return 'unloaded';
    });
  }

  /** Admin: loads the file again beside the running version, then retires the old one. */
  reload(name: string): Promise<ModelActionResult> {
    return this.act(name, 'reload', async (entry) => {
      entry.failure = undefined;
      await (entry.current ? this.replace(entry) : this.resolve(name));
      return 'reloaded';
    });
  }

  /** Re-reads the folder and the manifest: new files appear, removed ones drain away, replaced ones swap. */
  async rescan(): Promise<void> {
    if (this.closed) return;
    try {
      this.manifest = await readManifest(this.options.modelsDir);
    } catch (error) {
      this.logger.error({ err: error }, 'models.json ignored');
    }
    const catalog = await scanModels(this.options.modelsDir);
    const seen = new Set<string>();
    for (const file of catalog.files) {
      const settings = this.manifest.models.find((model) => (model.file ?? `${model.name}.gguf`) === file.fileName) ?? { name: file.fileName.slice(0, -'.gguf'.length) };
      seen.add(settings.name);
      const entry = this.entries.get(settings.name);
      if (!entry) {
        const added: ModelEntry = { name: settings.name, settings, file, retiring: new Set(), lastUsedAt: 0 };
        this.entries.set(added.name, added);
        await this.readFacts(added);
        if (this.defaultName) this.logger.info({ model: added.name }, 'model file added');
        continue;
      }
      entry.settings = settings;
      if (entry.file?.fingerprint === file.fingerprint) continue;
      const hadFile = entry.file !== undefined;
      entry.file = file;
      entry.failure = undefined;
      entry.downloadProgress = undefined;
      await this.readFacts(entry);
      if (entry.current && !entry.failure) {
        this.logger.info({ model: entry.name }, 'model file replaced: loading the new version beside the old');
        void this.replace(entry).catch((error: Error) => this.logger.error({ err: error, model: entry.name }, 'replacement failed'));
      } else if (hadFile) {
        this.logger.info({ model: entry.name }, 'model file changed');
      }
    }
    for (const unsupported of catalog.unsupported) {
      seen.add(unsupported.name);
      if (!this.entries.has(unsupported.name)) this.entries.set(unsupported.name, { name: unsupported.name, settings: { name: unsupported.name }, unsupported: unsupported.reason, retiring: new Set(), lastUsedAt: 0 });
    }
    for (const settings of this.manifest.models.filter((model) => model.source && !seen.has(model.name))) {
      seen.add(settings.name);
      if (!this.entries.has(settings.name)) this.startDownload({ name: settings.name, settings, retiring: new Set(), lastUsedAt: 0 });
    }
    for (const entry of [...this.entries.values()]) {
      if (seen.has(entry.name) || entry.downloadProgress !== undefined) continue;
      this.entries.delete(entry.name);
      this.logger.info({ model: entry.name }, 'model file removed: unloading once its requests finish');
      if (entry.current) void this.unloadEntry(entry, 'removed');
    }
  }

  /** Stops watching and frees every model; waiting requests are refused with shutting_down. */
  async close(): Promise<void> {
    this.closed = true;
    this.watcher?.close();
    clearInterval(this.sweeper);
    const error = new ServiceError(ErrorCode.shuttingDown, 'the server is shutting down');
    await this.options.tokenizer.close();
    await Promise.all(this.loadedModels().map((model) => model.dispose(error)));
  }

  private async resolve(name: string): Promise<LoadedModel> {
    if (this.closed) throw new ServiceError(ErrorCode.shuttingDown, 'the server is shutting down');
    const entry = this.entries.get(name);
    if (!entry) throw new ServiceError(ErrorCode.modelNotFound, `no model named "${name}"`, { details: { model: name } });
    if (entry.loading) return entry.loading;
    if (entry.current) return entry.current;
    if (entry.unsupported) throw new ServiceError(ErrorCode.modelUnavailable, `model "${name}" cannot be served: ${entry.unsupported}`);
    if (entry.downloadProgress !== undefined) throw new ServiceError(ErrorCode.modelUnavailable, `model "${name}" is still downloading (${Math.round(entry.downloadProgress * 100)} %)`, { retryAfterMs: 5000 });
    if (entry.failure) throw new ServiceError(ErrorCode.modelUnavailable, `model "${name}" failed: ${entry.failure}`);
    const loading = this.exclusive(async () => {
      const loaded = await this.loadVersion(entry);
      entry.current = loaded;
      return loaded;
    });
    entry.loading = loading;
    return loading.finally(() => {
      if (entry.loading === loading) entry.loading = undefined;
    });
  }

  /** Loads the entry's file as a new version, making room first; records a failure on the entry. */
  private async loadVersion(entry: ModelEntry, retiringAlongside?: LoadedModel): Promise<LoadedModel> {
    if (!entry.file) throw new ServiceError(ErrorCode.modelUnavailable, `model "${entry.name}" has no file`);
    if (!entry.facts) await this.readFacts(entry);
    if (entry.failure || !entry.facts) throw new ServiceError(ErrorCode.modelUnavailable, `model "${entry.name}" failed: ${entry.failure}`);
    await this.makeRoom(entry.facts.estimatedBytes, entry, retiringAlongside);
    const { settings } = entry;
    try {
      const loaded = await LoadedModel.load(
        this.llama,
        { name: entry.name, path: entry.file.path, fingerprint: entry.file.fingerprint, estimatedBytes: entry.facts.estimatedBytes },
        {
          contextSize: settings.contextSize ?? this.options.contextSize,
          sequences: settings.slots ?? this.options.sequences,
          threads: this.options.threads,
          prefillChunkTokens: this.options.prefillChunkTokens,
          mlock: settings.mlock ?? this.options.mlock,
          sampling: { ...this.options.sampling, ...settings.sampling },
          tokenizer: this.options.tokenizer,
          maxQueue: this.options.maxQueue,
          queueTimeoutMs: this.options.queueTimeoutMs,
        },
      );
      this.logger.info({ model: entry.name, loadMs: Math.round(loaded.loadMs), estimatedBytes: entry.facts.estimatedBytes }, 'model loaded');
      this.options.onLoaded?.(loaded);
      return loaded;
    } catch (error) {
      entry.failure = (error as Error).message;
      this.logger.error({ err: error, model: entry.name }, 'model failed to load');
      throw new ServiceError(ErrorCode.modelUnavailable, `model "${entry.name}" failed to load: ${entry.failure}`, { cause: error });
    }
  }

  /**
   * Swaps in a new version of a replaced file. When both fit, the new one loads beside the old;
   * otherwise the old one finishes its requests first and new requests wait for the swap.
   */
  private replace(entry: ModelEntry): Promise<LoadedModel> {
    const old = entry.current;
    const loading = this.exclusive(async () => {
      let fresh: LoadedModel;
      try {
        fresh = await this.loadVersion(entry, old);
      } catch (error) {
        if (!old || !(error instanceof ServiceError) || error.code !== ErrorCode.insufficientMemory) throw error;
        entry.current = undefined;
        await this.retire(entry, old);
        fresh = await this.loadVersion(entry);
      }
      entry.current = fresh;
      if (old && old !== fresh) void this.retire(entry, old);
      return fresh;
    });
    entry.loading = loading;
    return loading.finally(() => {
      if (entry.loading === loading) entry.loading = undefined;
    });
  }

  private async unloadEntry(entry: ModelEntry, cause: 'admin' | 'evicted' | 'expired' | 'removed'): Promise<void> {
    await entry.loading?.catch(() => undefined);
    const version = entry.current;
    if (!version) return;
    entry.current = undefined;
    await this.retire(entry, version);
    this.logger.info({ model: entry.name, cause }, 'model unloaded');
  }

  private async retire(entry: ModelEntry, version: LoadedModel): Promise<void> {
    entry.retiring.add(version);
    await version.retire();
    entry.retiring.delete(version);
  }

  /** Unloads idle models, least recently used first, until `bytes` more fit in the budget. */
  private async makeRoom(bytes: number, forEntry: ModelEntry, alongside?: LoadedModel): Promise<void> {
    const budget = this.options.memoryBudgetBytes;
    const used = (): number => this.loadedModels().reduce((sum, model) => sum + model.estimatedBytes, 0);
    const refuse = (): ServiceError =>
      new ServiceError(ErrorCode.insufficientMemory, `model "${forEntry.name}" needs about ${mib(bytes)} MiB; ${mib(used())} of ${mib(budget)} MiB are in use`, {
        details: { requiredBytes: bytes, usedBytes: used(), budgetBytes: budget },
      });
    if (bytes > budget) throw refuse();
    while (used() + bytes > budget) {
      const victim = [...this.entries.values()]
        .filter((entry) => entry !== forEntry && entry.name !== this.defaultName && entry.current?.isIdle && entry.current !== alongside)
        .sort((a, b) => a.lastUsedAt - b.lastUsedAt)[0];
      if (!victim) throw refuse();
      await this.unloadEntry(victim, 'evicted');
    }
  }

  private unloadExpired(): void {
    const now = Date.now();
    for (const entry of this.entries.values()) {
      const keepAliveS = entry.settings.keepAliveS ?? (entry.name === this.defaultName ? 0 : this.options.keepAliveS);
      if (keepAliveS > 0 && entry.current?.isIdle && !entry.loading && now - entry.lastUsedAt > keepAliveS * 1000) {
        void this.unloadEntry(entry, 'expired');
      }
    }
  }

  private async readFacts(entry: ModelEntry): Promise<void> {
    if (!entry.file) return;
    try {
      entry.facts = await readModelFacts(this.llama, entry.file.path, entry.settings.contextSize ?? this.options.contextSize, entry.settings.slots ?? this.options.sequences);
    } catch (error) {
      entry.facts = undefined;
      entry.failure = (error as Error).message;
      this.logger.warn({ model: entry.name, reason: entry.failure }, 'model file unusable');
    }
  }

  private startDownload(entry: ModelEntry): void {
    this.entries.set(entry.name, entry);
    entry.downloadProgress = 0;
    this.logger.info({ model: entry.name, source: entry.settings.source }, 'downloading model');
    // Saved under the name the manifest maps to this entry, so the folder scan links it.
    const fileName = entry.settings.file ?? `${entry.name}.gguf`;
    void downloadModel(entry.settings.source!, this.options.modelsDir, fileName, (progress) => (entry.downloadProgress = Math.min(progress, 0.99)))
      .then(() => {
        // Still "downloading" until the scan below finds the file and clears it.
        entry.downloadProgress = 1;
        this.logger.info({ model: entry.name }, 'model downloaded');
        return this.rescan();
      })
      .catch((error: Error) => {
        entry.downloadProgress = undefined;
        entry.failure = `download failed: ${error.message}`;
        this.logger.error({ model: entry.name, reason: entry.failure }, 'model download failed');
      });
  }

  private async act(name: string, action: ModelActionResult['action'], run: (entry: ModelEntry) => Promise<ModelActionResult['outcome']>): Promise<ModelActionResult> {
    const entry = this.entries.get(name);
    if (!entry) throw new ServiceError(ErrorCode.modelNotFound, `no model named "${name}"`);
    const started = performance.now();
    try {
      const outcome = await run(entry);
      const result = { model: name, action, outcome, ms: Math.round(performance.now() - started) };
      this.logger.info(result, 'admin model action');
      return result;
    } catch (error) {
      const result: ModelActionResult = { model: name, action, outcome: 'failed', ms: Math.round(performance.now() - started), message: (error as Error).message };
      this.logger.warn(result, 'admin model action failed');
      return result;
    }
  }

  private exclusive<T>(task: () => Promise<T>): Promise<T> {
    const run = this.serial.then(task, task);
    this.serial = run.catch(() => undefined);
    return run;
  }
}

function mib(bytes: number): number {
  return Math.round(bytes / 1024 / 1024);
}
