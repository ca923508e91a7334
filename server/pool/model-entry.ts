import type { ModelInfo } from '../../protocol/index.js';
import type { LoadedModel } from './loaded-model.js';
import type { ManifestEntry } from './manifest.js';
import type { CatalogFile } from './model-catalog.js';
import type { ModelFacts } from './memory-estimate.js';

/** Everything the pool tracks for one model name. */
export interface ModelEntry {
  name: string;
  settings: ManifestEntry;
  /** The file on disk; absent while a download is pending or for unsupported folders. */
  file?: CatalogFile;
  /** Header facts of `file`, once read. */
  facts?: ModelFacts;
  /** Why the model cannot load (cleared when its file changes). */
  failure?: string;
  /** Why the model can never load here (an unsupported format). */
  unsupported?: string;
  /** The version new requests go to. */
  current?: LoadedModel;
  /** A load (or replacement) in progress; new requests wait for it. */
  loading?: Promise<LoadedModel>;
  /** Older versions finishing their requests before they free their memory. */
  retiring: Set<LoadedModel>;
  lastUsedAt: number;
  /** Download progress 0..1 while the file is being fetched. */
  downloadProgress?: number;
}

/** The entry as clients and operators see it. */
export function describeEntry(entry: ModelEntry, isDefault: boolean): ModelInfo {
  const version = entry.current ?? [...entry.retiring][0];
  const info: ModelInfo = { name: entry.name, state: stateOf(entry), default: isDefault };
  if (entry.file) info.sizeBytes = entry.file.sizeBytes;
  if (entry.facts) {
    info.architecture = entry.facts.architecture;
    info.contextSize = entry.facts.trainContextSize;
    info.memoryBytes = entry.facts.estimatedBytes;
  }
  if (version) {
    info.contextSize = version.contextSize;
    info.slotsBusy = version.scheduler.busy;
    info.slotsTotal = version.scheduler.total;
    info.queueLength = version.scheduler.queued;
    info.memoryBytes = version.estimatedBytes;
  }
  if (entry.lastUsedAt > 0) info.lastUsedAt = entry.lastUsedAt;
  if (entry.downloadProgress !== undefined) info.progress = entry.downloadProgress;
  const reason = entry.unsupported ?? entry.failure;
  if (reason) info.reason = reason;
  return info;
}

function stateOf(entry: ModelEntry): ModelInfo['state'] {
  if (entry.unsupported) return 'unsupported';
  if (entry.downloadProgress !== undefined) return 'downloading';
  if (entry.loading) return 'loading';
  if (entry.current) return 'loaded';
  if (entry.retiring.size > 0) return 'unloading';
  if (entry.failure) return 'failed';
  return 'available';
}
