import type { ModelInfo } from './frames.js';

/** Path of the admin-only live metrics WebSocket (msgpack frames, one snapshot a second). */
export const FEED_PATH = '/v1/admin/feed';

/**
 * Subprotocol of the feed. Browsers, which cannot set headers on a WebSocket, offer it together
 * with `bearer.<admin token>`; only this entry is echoed.
 */
export const FEED_SUBPROTOCOL = 'llm.feed.v1.msgpack';

/** Latency percentiles over the feed's sliding window, in milliseconds; null when no sample. */
export interface Percentiles {
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

/** Process and machine resources at the snapshot's time. */
export interface ResourceFigures {
  /** System CPU load, 0..1 across all cores. */
  cpuLoad: number;
  /** This process's CPU use in cores (1 = one core busy). */
  processCpu: number;
  memTotalBytes: number;
  memUsedBytes: number;
  rssBytes: number;
  heapUsedBytes: number;
  heapTotalBytes: number;
  /** Event-loop delay over the last second, in milliseconds. */
  eventLoopDelayMs: { p50: number; p99: number; max: number };
  /** Memory node-llama-cpp reports for each loaded model and its context. */
  models: { name: string; modelBytes: number; contextBytes: number }[];
}

/**
 * The node-llama-cpp engine this process loaded (fixed for its lifetime; also the
 * `llm_engine_info` metric's labels).
 */
export interface EngineInfo {
  /** `native`: built on this machine for its CPU (`npm run build:engine`); `prebuilt`: the binaries the package ships. */
  build: 'native' | 'prebuilt';
  /** Compute backend: `cpu`, `cuda`, `vulkan` or `metal`. */
  backend: string;
  /**
   * CPU library actually loaded: a prebuilt variant (`zen4`, `haswell`, ...), `native` (built with
   * `-march=native`), `generic` (one prebuilt CPU library for all), or `unknown` where the
   * process's mappings cannot be read or name none.
   */
  cpuVariant: string;
  /** llama.cpp release of the engine. */
  llamaCppRelease: string;
}

/** An error recently sent to a client or raised in the server. */
export interface RecentError {
  ts: number;
  code: string;
  message: string;
  model?: string;
}

/** One second of the service, as the dashboard draws it. */
export interface FeedSnapshot {
  t: 'snapshot';
  /** Epoch milliseconds. */
  ts: number;
  /** Generated tokens per second averaged over the last 1, 10 and 60 seconds. */
  tokensPerSecond: { s1: number; s10: number; s60: number };
  ttftMs: Percentiles;
  interTokenMs: Percentiles;
  /**
   * Running and waiting now; since start, requests that ended with reason stop or length
   * (completed) and requests answered with an `err` frame (failed; cancels are neither).
   */
  requests: { running: number; waiting: number; completedTotal: number; failedTotal: number };
  slots: { busy: number; total: number };
  connections: number;
  resources: ResourceFigures;
  models: ModelInfo[];
  errors: RecentError[];
  /** The engine loaded; absent from a server that does not report it. */
  engine?: EngineInfo;
}

/** First frame to a feed client: up to the last 5 minutes of snapshots, oldest first. */
export interface FeedHistory {
  t: 'history';
  snapshots: FeedSnapshot[];
}

export type FeedFrame = FeedSnapshot | FeedHistory;
