import type { FeedSnapshot } from '../../../protocol/index.js';
import { formatBytes, formatMs, formatPercent, formatTokensPerSecond, sig3 } from './format.js';

/*
 * What the overview plots: one column per line, read out of a feed snapshot, and the charts that
 * group them. The feed store keeps every column in one SeriesWindow; a chart picks its columns.
 */

export interface Column {
  key: string;
  label: string;
  read(snapshot: FeedSnapshot): number | null;
}

export const COLUMNS = [
  { key: 'tok1', label: 'tokens/s (1 s)', read: (s) => s.tokensPerSecond.s1 },
  { key: 'tok10', label: 'tokens/s (10 s avg)', read: (s) => s.tokensPerSecond.s10 },
  { key: 'ttft50', label: 'TTFT p50', read: (s) => s.ttftMs.p50 },
  { key: 'ttft95', label: 'TTFT p95', read: (s) => s.ttftMs.p95 },
  { key: 'itl50', label: 'inter-token p50', read: (s) => s.interTokenMs.p50 },
  { key: 'itl95', label: 'inter-token p95', read: (s) => s.interTokenMs.p95 },
  { key: 'running', label: 'running', read: (s) => s.requests.running },
  { key: 'waiting', label: 'waiting', read: (s) => s.requests.waiting },
  { key: 'connections', label: 'connections', read: (s) => s.connections },
  { key: 'rss', label: 'process RSS', read: (s) => s.resources.rssBytes },
  { key: 'heap', label: 'JS heap used', read: (s) => s.resources.heapUsedBytes },
  { key: 'memUsed', label: 'system used', read: (s) => s.resources.memUsedBytes },
  { key: 'memTotal', label: 'system total', read: (s) => s.resources.memTotalBytes },
  { key: 'cpuSystem', label: 'system CPU', read: (s) => s.resources.cpuLoad },
  // processCpu is in cores: plotted on the same percent axis, 100% is one whole core.
  { key: 'cpuProcess', label: 'this process (100% = 1 core)', read: (s) => s.resources.processCpu },
] as const satisfies readonly Column[];

export type ColumnKey = (typeof COLUMNS)[number]['key'];

export const COLUMN_INDEX: Readonly<Record<ColumnKey, number>> = Object.fromEntries(COLUMNS.map((column, index) => [column.key, index])) as Record<ColumnKey, number>;

/** Values of every column for one snapshot, in COLUMNS order. */
export function readColumns(snapshot: FeedSnapshot): (number | null)[] {
  return COLUMNS.map((column) => {
    try {
      return column.read(snapshot);
    } catch {
      return null; // a snapshot missing a section plots a gap rather than breaking the chart
    }
  });
}

export type Unit = 'tokens' | 'ms' | 'count' | 'bytes' | 'fraction';

/** Axis and legend text for a value in a unit. */
export function formatUnit(unit: Unit, value: number | null | undefined): string {
  switch (unit) {
    case 'tokens': return formatTokensPerSecond(value);
    case 'ms': return formatMs(value);
    case 'bytes': return formatBytes(value);
    case 'fraction': return formatPercent(value);
    case 'count': return typeof value === 'number' && Number.isFinite(value) ? (Number.isInteger(value) ? value.toString() : sig3(value)) : '—';
  }
}

export interface ChartSpec {
  id: string;
  title: string;
  unit: Unit;
  /** Columns drawn, each with its colour variable (`--series-1`...) and an optional dash. */
  lines: { key: ColumnKey; color: string; dash?: number[]; fill?: boolean }[];
  /** Lowest upper bound of the y axis, so a flat zero line does not look like noise. */
  minMax?: number;
  /** Log scale (base 2), for figures orders of magnitude apart. */
  log?: boolean;
}

export const CHARTS: readonly ChartSpec[] = [
  { id: 'throughput', title: 'Throughput', unit: 'tokens', minMax: 1, lines: [{ key: 'tok1', color: '--series-1', fill: true }, { key: 'tok10', color: '--series-2' }] },
  { id: 'ttft', title: 'Time to first token', unit: 'ms', minMax: 1, lines: [{ key: 'ttft50', color: '--series-1' }, { key: 'ttft95', color: '--series-3', dash: [6, 4] }] },
  { id: 'itl', title: 'Inter-token latency', unit: 'ms', minMax: 1, lines: [{ key: 'itl50', color: '--series-1' }, { key: 'itl95', color: '--series-3', dash: [6, 4] }] },
  { id: 'requests', title: 'Requests and connections', unit: 'count', minMax: 2, lines: [{ key: 'running', color: '--series-1', fill: true }, { key: 'waiting', color: '--series-3' }, { key: 'connections', color: '--series-2' }] },
  { id: 'memory', title: 'Memory', unit: 'bytes', log: true, lines: [{ key: 'rss', color: '--series-1', fill: true }, { key: 'heap', color: '--series-2' }, { key: 'memUsed', color: '--series-4' }, { key: 'memTotal', color: '--series-4', dash: [6, 4] }] },
  { id: 'cpu', title: 'CPU', unit: 'fraction', minMax: 1, lines: [{ key: 'cpuSystem', color: '--series-4', fill: true }, { key: 'cpuProcess', color: '--series-1' }] },
];

/** Seconds of history the charts show (the feed keeps five minutes). */
export const WINDOW_SECONDS = 300;
