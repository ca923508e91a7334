import type { FeedSnapshot } from '../../protocol/index.js';

/** A plausible feed snapshot; override what a test looks at. */
export function snapshot(overrides: Partial<FeedSnapshot> = {}): FeedSnapshot {
  return {
    t: 'snapshot',
    ts: 1_700_000_000_000,
    tokensPerSecond: { s1: 50, s10: 45, s60: 40 },
    ttftMs: { p50: 20, p95: 40, p99: 60 },
    interTokenMs: { p50: null, p95: null, p99: null },
    requests: { running: 1, waiting: 0, completedTotal: 10, failedTotal: 1 },
    slots: { busy: 1, total: 2 },
    connections: 2,
    resources: {
      cpuLoad: 0.5,
      processCpu: 0.75,
      memTotalBytes: 8e9,
      memUsedBytes: 4e9,
      rssBytes: 400e6,
      heapUsedBytes: 50e6,
      heapTotalBytes: 80e6,
      eventLoopDelayMs: { p50: 1, p99: 3, max: 5 },
      models: [],
    },
    models: [{ name: 'demo', state: 'loaded', default: true }],
    errors: [],
    ...overrides,
  };
}
