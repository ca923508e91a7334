import type { Paired } from './peer-rounds.js';
import { median } from './stats.js';

/** One line of the comparison: medians of both sides and the ratio ours / theirs. */
export interface PeerRow {
  what: string;
  theirs: number;
  ours: number;
  /** Median of the rounds' ratios (each round's two runs ran back to back), or of single values. */
  ratio: number;
}

/** A row from paired rounds: each side's median of `pick`, and the median of the per-round ratios. */
export function pairedRow<T>(what: string, runs: Paired<T>, pick: (run: T) => number): PeerRow {
  const ours = runs.ours.map(pick);
  const theirs = runs.theirs.map(pick);
  const ratios = ours.map((value, round) => value / theirs[round]!).filter(Number.isFinite);
  return { what, theirs: median(theirs), ours: median(ours), ratio: median(ratios) };
}

/** A row of two single values (memory). */
export function singleRow(what: string, theirs: number, ours: number): PeerRow {
  return { what, theirs, ours, ratio: ours / theirs };
}

/** The rows as a markdown table: | what | llama-server | this service | ours / theirs |. */
export function markdownTable(rows: readonly PeerRow[]): string {
  const lines = ['| what | llama-server | this service | ours / theirs |', '| --- | --- | --- | --- |'];
  for (const row of rows) lines.push(`| ${row.what} | ${formatValue(row.theirs)} | ${formatValue(row.ours)} | ${formatRatio(row.ratio)} |`);
  return lines.join('\n');
}

function formatValue(value: number): string {
  if (!Number.isFinite(value)) return '-';
  const digits = Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : 2;
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function formatRatio(ratio: number): string {
  return Number.isFinite(ratio) ? `${ratio.toFixed(2)}×` : '-';
}
