import type { RecentError } from '../../protocol/index.js';
import { PercentileWindow, RateWindow, RecentRing } from './sliding-window.js';

/** Seconds over which the feed's latency percentiles are computed. */
export const PERCENTILE_WINDOW_S = 60;
/** Recent errors the feed carries. */
export const RECENT_ERRORS = 20;
const MAX_ERROR_MESSAGE = 200;

/**
 * What the live feed needs beyond Prometheus: per-second token counts and latency buckets over
 * sliding windows, request totals and the latest errors. Fixed memory; updated without allocating
 * on the token path, rolled once a second by the feed.
 */
export class LiveStats {
  readonly tokens = new RateWindow(60);
  readonly timeToFirstToken = new PercentileWindow(PERCENTILE_WINDOW_S);
  readonly interToken = new PercentileWindow(PERCENTILE_WINDOW_S);
  readonly errors = new RecentRing<RecentError>(RECENT_ERRORS);
  /** Requests that ended with reason stop or length. */
  completedTotal = 0;
  /** Requests that ended with an err frame (refused or failed). */
  failedTotal = 0;

  /** Closes the current second of every window; it lasted `elapsedMs`. */
  roll(elapsedMs: number): void {
    this.tokens.roll(elapsedMs);
    this.timeToFirstToken.roll();
    this.interToken.roll();
  }

  recordError(code: string, message: string, model: string | undefined): void {
    const error: RecentError = { ts: Date.now(), code, message: message.length > MAX_ERROR_MESSAGE ? `${message.slice(0, MAX_ERROR_MESSAGE)}…` : message };
    if (model !== undefined) error.model = model;
    this.errors.push(error);
  }
}
