import { describe, expect, it } from 'vitest';
import {
  formatAge,
  formatAgo,
  formatBytes,
  formatClock,
  formatCores,
  formatCount,
  formatMs,
  formatPercent,
  formatRatio,
  formatTokensPerSecond,
  NONE,
  sig3,
} from '../../dashboard/src/lib/format.js';
import { formatUnit } from '../../dashboard/src/lib/metrics.js';
import { backoffDelay } from '../../dashboard/src/lib/services/backoff.js';

describe('dashboard number formatting', () => {
  it('keeps three significant figures without exponents', () => {
    expect([0, 0.5, 0.1234, 1, 1.234, 12.34, 123.4, 1234.5, -2.5].map(sig3)).toEqual(['0', '0.5', '0.123', '1.00', '1.23', '12.3', '123', '1235', '-2.50']);
    expect(sig3(0.00012)).toBe('0.0001');
  });

  it.each([
    [0, '0 B'],
    [512, '512 B'],
    [1023, '1023 B'],
    [1024, '1.00 KiB'],
    [1536, '1.50 KiB'],
    [1024 * 1023.7, '1.00 MiB'],
    [12.34 * 1024 ** 2, '12.3 MiB'],
    [420 * 1024 ** 2, '420 MiB'],
    [1.21 * 1024 ** 3, '1.21 GiB'],
    [24e9, '22.4 GiB'],
    [3 * 1024 ** 4, '3.00 TiB'],
    [-2048, '-2.00 KiB'],
  ])('bytes %d → %s', (value, text) => {
    expect(formatBytes(value)).toBe(text);
  });

  it.each([
    [0, '0 ms'],
    [0.42, '0.42 ms'],
    [12.34, '12.3 ms'],
    [123.4, '123 ms'],
    [999.4, '999 ms'],
    [1234, '1.23 s'],
    [59_000, '59.0 s'],
    [125_000, '2 min 05 s'],
    [2 * 3600_000 + 5 * 60_000, '2 h 05 min'],
  ])('duration %d ms → %s', (value, text) => {
    expect(formatMs(value)).toBe(text);
  });

  it('shows a dash for unknown or impossible figures', () => {
    for (const format of [formatBytes, formatMs, formatCount, formatPercent, formatTokensPerSecond, formatCores, formatClock, formatAge]) {
      expect(format(null)).toBe(NONE);
      expect(format(undefined)).toBe(NONE);
      expect(format(Number.NaN)).toBe(NONE);
    }
    expect(formatMs(-1)).toBe(NONE); // ttftMs -1 means "no text was sent"
    expect(formatRatio(1, undefined)).toBe(NONE);
  });

  it('formats rates, shares, counts and cores with their units', () => {
    expect(formatTokensPerSecond(0)).toBe('0 tok/s');
    expect(formatTokensPerSecond(42.51)).toBe('42.5 tok/s');
    expect(formatTokensPerSecond(1234)).toBe('1.23k tok/s');
    expect(formatTokensPerSecond(25_400)).toBe('25.4k tok/s');
    expect(formatPercent(0)).toBe('0%');
    expect(formatPercent(0.042)).toBe('4.2%');
    expect(formatPercent(0.4249)).toBe('42%');
    expect(formatPercent(1)).toBe('100%');
    expect(formatCount(1234567)).toBe('1,234,567');
    expect(formatRatio(1, 2)).toBe('1 / 2');
    expect(formatCores(1)).toBe('1.00 core');
    expect(formatCores(0.25)).toBe('0.25 cores');
    expect(formatCores(2)).toBe('2.00 cores');
  });

  it('formats ages and relative times', () => {
    expect(formatAge(5_400)).toBe('5 s');
    expect(formatAge(3 * 60_000 + 10_000)).toBe('3 min');
    expect(formatAge(26 * 3600_000)).toBe('1 d 2 h');
    expect(formatAge(-50)).toBe('0 s');
    expect(formatAgo(undefined, 1000)).toBe('never');
    expect(formatAgo(10_000, 10_500)).toBe('just now');
    expect(formatAgo(10_000, 22_000)).toBe('12 s ago');
    expect(formatClock(new Date(2024, 0, 1, 9, 5, 7).getTime())).toBe('09:05:07');
  });

  it('formats chart axes by unit', () => {
    expect(formatUnit('count', 2)).toBe('2');
    expect(formatUnit('count', 1.5)).toBe('1.50');
    expect(formatUnit('bytes', 1024 ** 3)).toBe('1.00 GiB');
    expect(formatUnit('fraction', 0.5)).toBe('50%');
    expect(formatUnit('ms', 20)).toBe('20.0 ms');
    expect(formatUnit('tokens', 5)).toBe('5.00 tok/s');
  });
});

describe('reconnect backoff', () => {
  it('doubles from 500 ms up to a 5 s ceiling', () => {
    const middle = () => 0.5; // no jitter
    expect([0, 1, 2, 3, 4, 5, 10].map((attempt) => backoffDelay(attempt, {}, middle))).toEqual([500, 1000, 2000, 4000, 5000, 5000, 5000]);
  });

  it('spreads by the jitter and never exceeds the ceiling', () => {
    expect(backoffDelay(0, {}, () => 0)).toBe(400);
    expect(backoffDelay(0, {}, () => 1)).toBe(600);
    expect(backoffDelay(10, {}, () => 1)).toBe(5000);
    expect(backoffDelay(2, { baseMs: 100, factor: 3, maxMs: 10_000, jitter: 0 })).toBe(900);
  });
});
