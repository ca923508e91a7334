import { encodeFrame, type EngineInfo, type FeedHistory, type FeedSnapshot, type ModelInfo, type ResourceFigures } from '../../protocol/index.js';
import type { LiveStats } from './live-stats.js';
import { RecentRing } from './sliding-window.js';

/** uWS pub/sub topic every feed socket subscribes to. */
export const FEED_TOPIC = 'admin/feed';

export interface FeedSources {
  live: LiveStats;
  models(): ModelInfo[];
  /** Open connections on the stream endpoint (the session registry's count). */
  connections(): number;
  /** The engine loaded, carried in every snapshot (a few dozen bytes). */
  engine?: EngineInfo;
}

/**
 * The live feed: one snapshot a second, encoded once and published to a topic, so the cost is the
 * same for 0 or 100 dashboards. The last `historySeconds` snapshots are kept (a fixed ring) for
 * clients that join later.
 */
export class LiveFeed {
  private readonly history: RecentRing<FeedSnapshot>;
  private latestSnapshot: FeedSnapshot | undefined;

  constructor(private readonly sources: FeedSources, historySeconds: number) {
    this.history = new RecentRing(Math.max(1, historySeconds));
  }

  /** The newest snapshot, if any. */
  get latest(): FeedSnapshot | undefined {
    return this.latestSnapshot;
  }

  /** Builds this second's snapshot (after the windows rolled), keeps it and returns its encoding. */
  snapshot(resources: ResourceFigures, models: ModelInfo[] = this.sources.models()): { snapshot: FeedSnapshot; encoded: Uint8Array } {
    const live = this.sources.live;
    let running = 0;
    let waiting = 0;
    let busy = 0;
    let total = 0;
    for (const model of models) {
      busy += model.slotsBusy ?? 0;
      total += model.slotsTotal ?? 0;
      waiting += model.queueLength ?? 0;
    }
    running = busy;
    const snapshot: FeedSnapshot = {
      t: 'snapshot',
      ts: Date.now(),
      tokensPerSecond: { s1: round1(live.tokens.perSecond(1)), s10: round1(live.tokens.perSecond(10)), s60: round1(live.tokens.perSecond(60)) },
      ttftMs: live.timeToFirstToken.percentiles(),
      interTokenMs: live.interToken.percentiles(),
      requests: { running, waiting, completedTotal: live.completedTotal, failedTotal: live.failedTotal },
      slots: { busy, total },
      connections: this.sources.connections(),
      resources,
      models,
      errors: live.errors.toArray(),
      ...(this.sources.engine && { engine: this.sources.engine }),
    };
    this.history.push(snapshot);
    this.latestSnapshot = snapshot;
    return { snapshot, encoded: encodeFrame(snapshot, 'msgpack') as Uint8Array };
  }

  /** The first frame for a new client: every kept snapshot, oldest first. */
  historyFrame(): Uint8Array {
    const frame: FeedHistory = { t: 'history', snapshots: this.history.toArray() };
    return encodeFrame(frame, 'msgpack') as Uint8Array;
  }
}

const round1 = (value: number): number => Math.round(value * 10) / 10;
