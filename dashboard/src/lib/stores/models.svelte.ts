/// <reference types="svelte" />
import type { ModelInfo } from '../../../../protocol/index.js';
import type { AdminApi, ModelAction, ModelRow } from '../services/admin-api.js';
import { AdminApiError } from '../services/admin-api.js';

/** What happened to the last action on a model, shown in its row. */
export interface ActionNote {
  ok: boolean;
  text: string;
}

const DONE: Record<ModelAction, string> = { load: 'loaded', unload: 'unloaded', reload: 'reloaded' };

/** Which actions a model in `state` offers. */
export function actionsFor(state: ModelInfo['state']): ModelAction[] {
  switch (state) {
    case 'loaded': return ['unload', 'reload'];
    case 'available':
    case 'failed': return ['load'];
    default: return [];
  }
}

/** The Models page: every model, actions in progress, and their outcomes. */
export class ModelsStore {
  models = $state.raw<ModelRow[]>([]);
  loaded = $state(false);
  error = $state<string | undefined>();
  /** Action running per model name. */
  pending = $state<Record<string, ModelAction>>({});
  notes = $state<Record<string, ActionNote>>({});
  private refreshedAt = 0;

  constructor(private readonly api: Pick<AdminApi, 'models' | 'modelAction'>, private readonly now: () => number = Date.now) {}

  async refresh(): Promise<void> {
    const started = this.now();
    try {
      const models = await this.api.models();
      // A feed snapshot that arrived while this request was in flight is newer: keep it.
      if (started >= this.refreshedAt) {
        this.models = models;
        this.refreshedAt = started;
      }
      this.loaded = true;
      this.error = undefined;
    } catch (error) {
      this.error = `Could not list models: ${(error as Error).message}`;
    }
  }

  /** Takes the list from a feed snapshot, which is at most a second old. */
  applyFeed(models: readonly ModelRow[], ts: number): void {
    if (ts < this.refreshedAt) return;
    this.models = models.map((model) => ({ ...this.models.find((row) => row.name === model.name), ...model }));
    this.refreshedAt = ts;
    this.loaded = true;
  }

  /** Runs a load, unload or reload; the row shows the progress, then the outcome. */
  async act(name: string, action: ModelAction): Promise<void> {
    if (this.pending[name]) return;
    this.pending[name] = action;
    delete this.notes[name];
    const started = this.now();
    try {
      const result = await this.api.modelAction(name, action);
      const ms = typeof result.ms === 'number' ? result.ms : this.now() - started;
      this.notes[name] =
        result.outcome === 'failed'
          ? { ok: false, text: `${action} failed${result.message ? `: ${result.message}` : ''}` }
          : { ok: true, text: `${DONE[action]} in ${ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`}` };
    } catch (error) {
      const message = error instanceof AdminApiError ? error.message : (error as Error).message;
      this.notes[name] = { ok: false, text: `${action} failed: ${message}` };
    } finally {
      delete this.pending[name];
    }
    await this.refresh();
  }
}
