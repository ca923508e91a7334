/// <reference types="svelte" />
import type { FeedFrame, FeedSnapshot, RecentError } from '../../../../protocol/index.js';
import { COLUMNS, readColumns, WINDOW_SECONDS } from '../metrics.js';
import { SeriesWindow } from '../series.js';
import type { FeedStatus } from '../services/feed-connection.js';

/** The connection the store drives; FeedConnection in the app, a fake in tests. */
export interface FeedLink {
  start(): void;
  stop(): void;
  reconnectNow(): void;
}

export type FeedLinkFactory = (token: string, handlers: { onFrame(frame: FeedFrame): void; onStatus(status: FeedStatus): void }) => FeedLink;

/** Recent errors kept for the Errors page, newest first. */
export const MAX_ERRORS = 200;

function errorKey(error: RecentError): string {
  return `${error.ts}|${error.code}|${error.model ?? ''}|${error.message}`;
}

/**
 * Live state of the service as the feed reports it: the newest snapshot for the tiles, a fixed
 * five-minute window of series for the charts, recent errors, and the connection's status.
 */
export class FeedStore {
  status = $state.raw<FeedStatus>({ state: 'stopped' });
  latest = $state.raw<FeedSnapshot | undefined>();
  errors = $state.raw<RecentError[]>([]);
  /** Bumped whenever the series window changed; charts redraw on it. */
  version = $state(0);
  /** Whether the feed has been open at least once since start(). */
  everOpened = $state(false);
  /** The chart data. Not reactive on purpose: it is shifted in place, `version` signals changes. */
  readonly series = new SeriesWindow(WINDOW_SECONDS, COLUMNS.length);
  private link: FeedLink | undefined;
  private errorKeys = new Set<string>();

  constructor(private readonly createLink: FeedLinkFactory) {}

  /** True while the dashboard should show the disconnected banner. */
  disconnected = $derived(this.status.state === 'waiting' || (this.status.state === 'connecting' && this.everOpened));

  start(token: string): void {
    this.stop();
    this.everOpened = false;
    this.link = this.createLink(token, {
      onFrame: (frame) => this.apply(frame),
      onStatus: (status) => {
        if (status.state === 'open') this.everOpened = true;
        this.status = status;
      },
    });
    this.link.start();
  }

  stop(): void {
    const link = this.link;
    this.link = undefined;
    link?.stop();
    this.status = { state: 'stopped' };
  }

  reconnectNow(): void {
    this.link?.reconnectNow();
  }

  /** Folds one feed frame in: a history replaces the window, a snapshot extends it. */
  apply(frame: FeedFrame): void {
    if (frame.t === 'history') {
      this.series.clear();
      const ordered = [...frame.snapshots].sort((a, b) => a.ts - b.ts);
      for (const snapshot of ordered) this.series.push(Math.round(snapshot.ts / 1000), readColumns(snapshot));
      const newest = ordered.at(-1);
      if (newest) {
        this.latest = newest;
        this.mergeErrors(newest.errors);
      }
    } else {
      if (this.latest && frame.ts < this.latest.ts) return;
      this.series.push(Math.round(frame.ts / 1000), readColumns(frame));
      this.latest = frame;
      this.mergeErrors(frame.errors);
    }
    this.version++;
  }

  /** Forgets everything shown (on sign-out). */
  reset(): void {
    this.series.clear();
    this.latest = undefined;
    this.errors = [];
    this.errorKeys.clear();
    this.version++;
  }

  private mergeErrors(incoming: readonly RecentError[]): void {
    const fresh = incoming.filter((error) => !this.errorKeys.has(errorKey(error)));
    if (fresh.length === 0) return;
    const merged = [...fresh, ...this.errors].sort((a, b) => b.ts - a.ts).slice(0, MAX_ERRORS);
    this.errors = merged;
    this.errorKeys = new Set(merged.map(errorKey));
  }
}
