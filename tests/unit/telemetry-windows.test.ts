import { describe, expect, it } from 'vitest';
import { LOG_BUCKETS, PercentileWindow, RateWindow, RecentRing, logBucketOf } from '../../server/telemetry/sliding-window.js';

function exactQuantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!;
}

describe('RateWindow', () => {
  it('averages over the last 1, 10 and 60 seconds using their measured length', () => {
    const window = new RateWindow(60);
    expect(window.perSecond(1)).toBe(0);
    for (let second = 0; second < 70; second++) {
      window.current = second < 60 ? 100 : 200;
      window.roll(second === 69 ? 500 : 1000);
    }
    // The last second held 200 events in 500 ms.
    expect(window.perSecond(1)).toBe(400);
    expect(window.perSecond(10)).toBeCloseTo((10 * 200) / 9.5, 6);
    expect(window.perSecond(60)).toBeCloseTo((10 * 200 + 50 * 100) / 59.5, 6);
  });

  it('divides by the seconds seen so far while the ring fills', () => {
    const window = new RateWindow(60);
    window.current = 30;
    window.roll(1000);
    window.current = 10;
    window.roll(1000);
    expect(window.perSecond(60)).toBe(20);
  });
});

describe('PercentileWindow', () => {
  it('gives p50/p95/p99 within 4 % of the exact values', () => {
    const window = new PercentileWindow(60);
    const values: number[] = [];
    let seed = 7;
    const random = (): number => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    for (let second = 0; second < 5; second++) {
      for (let i = 0; i < 2000; i++) {
        // Log-normal-ish latencies from 0.05 ms to ~500 ms.
        const value = 0.05 * Math.exp(random() * 9);
        values.push(value);
        window.record(value);
      }
      window.roll();
    }
    const result = window.percentiles();
    for (const [q, got] of [[0.5, result.p50], [0.95, result.p95], [0.99, result.p99]] as const) {
      const exact = exactQuantile(values, q);
      expect(Math.abs(got! - exact) / exact).toBeLessThan(0.045);
    }
    expect(window.count).toBe(10_000);
  });

  it('forgets seconds that left the window and reports null when empty', () => {
    const window = new PercentileWindow(3);
    window.record(100);
    window.roll();
    expect(window.percentiles().p50).toBeCloseTo(100, -1);
    window.roll();
    window.roll();
    expect(window.count).toBe(1);
    window.roll();
    expect(window.count).toBe(0);
    expect(window.percentiles()).toEqual({ p50: null, p95: null, p99: null });
  });

  it('puts every value in a bucket, monotonically, extremes included', () => {
    let previous = 0;
    for (const ms of [0, 0.001, 0.01, 0.0101, 0.5, 1, 10, 100, 1e4, 1e6, 1e9, Infinity, NaN]) {
      const index = logBucketOf(ms);
      expect(index).toBeGreaterThanOrEqual(0);
      expect(index).toBeLessThan(LOG_BUCKETS);
      if (!Number.isNaN(ms)) {
        expect(index).toBeGreaterThanOrEqual(previous);
        previous = index;
      }
    }
  });
});

describe('RecentRing', () => {
  it('keeps the last items, oldest first', () => {
    const ring = new RecentRing<number>(3);
    expect(ring.toArray()).toEqual([]);
    for (let i = 1; i <= 5; i++) ring.push(i);
    expect(ring.toArray()).toEqual([3, 4, 5]);
    expect(ring.length).toBe(3);
  });
});
