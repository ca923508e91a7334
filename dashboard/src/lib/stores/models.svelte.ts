/// <reference types="svelte" />
import type { ModelAction, ModelInfo } from '../../../../protocol/index.js';
import type { AdminApi } from '../services/admin-api.js';
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

/**
 * Where a model list stands in time, on the server's clock only (the browser's may be minutes off,
 * so it is never compared with a server time): a feed snapshot at its `ts`; a `GET /api/models`
 * answer just after the newest snapshot received or shown when it was asked for (the server
 * answered after that snapshot was taken), and after the answers to earlier requests. A snapshot
 * with a later `ts` counts as newer than the answer, which carries no time of its own.
 */
interface ListStamp {
  /** Server time (epoch ms) of the snapshot, or of the newest one known when the request was sent; -Infinity: none. */
  serverTs: number;
  /** 0 for a snapshot; the request's number for an API answer (later requests higher). */
  request: number;
}

function isNewer(a: ListStamp, b: ListStamp): boolean {
  return a.serverTs !== b.serverTs ? a.serverTs > b.serverTs : a.request > b.request;
}

/** The Models page: every model, actions in progress, and their outcomes. */
export class ModelsStore {
  models = $state.raw<ModelInfo[]>([]);
  loaded = $state(false);
  error = $state<string | undefined>();
  /** Action running per model name. */
  pending = $state<Record<string, ModelAction>>({});
  notes = $state<Record<string, ActionNote>>({});
  /** Where the list shown stands. */
  private shown: ListStamp = { serverTs: -Infinity, request: 0 };
  private requests = 0;

  /**
   * `serverTime`: the server time (`ts`) of the newest feed snapshot received, undefined before
   * any; it stamps API answers so they are ordered against feed snapshots on the server's clock.
   */
  constructor(
    private readonly api: Pick<AdminApi, 'models' | 'modelAction'>,
    private readonly serverTime: () => number | undefined = () => undefined,
  ) {}

  async refresh(): Promise<void> {
    const stamp: ListStamp = { serverTs: Math.max(this.serverTime() ?? -Infinity, this.shown.serverTs), request: ++this.requests };
    try {
      const models = await this.api.models();
      // A snapshot taken after the request was sent, or a later request's answer, may be newer: keep it.
      if (isNewer(stamp, this.shown)) {
        this.models = models;
        this.shown = stamp;
      }
      this.loaded = true;
      this.error = undefined;
    } catch (error) {
      this.error = `Could not list models: ${(error as Error).message}`;
    }
  }

  /** Takes the list from a feed snapshot taken at `ts` (server time), unless a newer list is shown. */
  applyFeed(models: readonly ModelInfo[], ts: number): void {
    const stamp: ListStamp = { serverTs: ts, request: 0 };
    if (!isNewer(stamp, this.shown)) return;
    this.models = models.map((model) => ({ ...this.models.find((row) => row.name === model.name), ...model }));
    this.shown = stamp;
    this.loaded = true;
  }

  /** Runs a load, unload or reload; the row shows the progress, then the outcome. */
  async act(name: string, action: ModelAction): Promise<void> {
    if (this.pending[name]) return;
    this.pending[name] = action;
    delete this.notes[name];
    const started = performance.now();
    try {
      const result = await this.api.modelAction(name, action);
      const ms = typeof result.ms === 'number' ? result.ms : performance.now() - started;
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
