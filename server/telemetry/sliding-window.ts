import type { Percentiles } from '../../protocol/index.js';

/*
 * Per-second ring buffers for the live feed. The token path only bumps numbers in the current
 * second; once a second `roll()` moves the second into the ring. Memory is fixed at creation.
 */

/** A count per second over the last `seconds`, with the real length of each second. */
export class RateWindow {
  /** Count in the current, unfinished second (the token path increments it). */
  current = 0;
  private readonly counts: Float64Array;
  private readonly durations: Float64Array;
  private next = 0;
  private filled = 0;

  constructor(readonly seconds: number) {
    this.counts = new Float64Array(seconds);
    this.durations = new Float64Array(seconds);
  }

  /** Closes the current second, which lasted `elapsedMs` (timers drift, so it is measured). */
  roll(elapsedMs: number): void {
    this.counts[this.next] = this.current;
    this.durations[this.next] = elapsedMs;
    this.current = 0;
    this.next = (this.next + 1) % this.seconds;
    this.filled = Math.min(this.filled + 1, this.seconds);
  }

  /** Events per second over the last `seconds` closed seconds (fewer while the ring fills). */
  perSecond(seconds: number): number {
    const span = Math.min(seconds, this.filled);
    let count = 0;
    let ms = 0;
    for (let i = 1; i <= span; i++) {
      const slot = (this.next - i + this.seconds) % this.seconds;
      count += this.counts[slot]!;
      ms += this.durations[slot]!;
    }
    return ms > 0 ? (count * 1000) / ms : 0;
  }
}

/** Log-scale buckets from 10 µs to about 16 minutes, 8 % apart: ±4 % on any percentile. */
const MIN_MS = 0.01;
const RATIO = 1.08;
const LN_RATIO = Math.log(RATIO);
export const LOG_BUCKETS = 240;

/** Index of the log bucket holding `ms`: bucket i holds (MIN·RATIO^(i-1), MIN·RATIO^i]. */
export function logBucketOf(ms: number): number {
  if (!(ms > MIN_MS)) return 0;
  const index = Math.ceil(Math.log(ms / MIN_MS) / LN_RATIO);
  return index < LOG_BUCKETS ? index : LOG_BUCKETS - 1;
}

/** Representative value of a bucket: the geometric middle of its bounds. */
function bucketValue(index: number): number {
  return index === 0 ? MIN_MS : MIN_MS * RATIO ** (index - 0.5);
}

/**
 * Latency percentiles over a sliding window of seconds without keeping samples: each second
 * holds counts per log bucket; the window's sum is kept up to date as seconds enter and leave.
 */
export class PercentileWindow {
  /** Counts of the current second (the token path increments them). */
  private readonly current = new Float64Array(LOG_BUCKETS);
  private readonly ring: Float64Array;
  private readonly sum = new Float64Array(LOG_BUCKETS);
  private total = 0;
  private next = 0;

  constructor(readonly seconds: number) {
    this.ring = new Float64Array(seconds * LOG_BUCKETS);
  }

  /** Records one latency in milliseconds; allocates nothing. */
  record(ms: number): void {
    this.current[logBucketOf(ms)]!++;
  }

  /** Closes the current second: it enters the window and the oldest one leaves. */
  roll(): void {
    const offset = this.next * LOG_BUCKETS;
    for (let i = 0; i < LOG_BUCKETS; i++) {
      const entering = this.current[i]!;
      const leaving = this.ring[offset + i]!;
      if (entering === 0 && leaving === 0) continue;
      this.sum[i] = this.sum[i]! + entering - leaving;
      this.total += entering - leaving;
      this.ring[offset + i] = entering;
      this.current[i] = 0;
    }
    this.next = (this.next + 1) % this.seconds;
  }

  /** p50/p95/p99 in milliseconds over the window; null when it holds no sample. */
  percentiles(): Percentiles {
    if (this.total <= 0) return { p50: null, p95: null, p99: null };
    return { p50: this.quantile(0.5), p95: this.quantile(0.95), p99: this.quantile(0.99) };
  }

  /** Samples in the window. */
  get count(): number {
    return this.total;
  }

  private quantile(q: number): number {
    const rank = Math.max(1, Math.ceil(q * this.total));
    let seen = 0;
    for (let i = 0; i < LOG_BUCKETS; i++) {
      seen += this.sum[i]!;
      if (seen >= rank) return round3(bucketValue(i));
    }
    return round3(bucketValue(LOG_BUCKETS - 1));
  }
}

/** A fixed-capacity ring of the last items, oldest first. */
export class RecentRing<T> {
  private readonly items: (T | undefined)[];
  private next = 0;
  private size = 0;

  constructor(readonly capacity: number) {
    this.items = new Array<T | undefined>(capacity);
  }

  push(item: T): void {
    this.items[this.next] = item;
    this.next = (this.next + 1) % this.capacity;
    this.size = Math.min(this.size + 1, this.capacity);
  }

  /** The items, oldest first. */
  toArray(): T[] {
    const out: T[] = [];
    for (let i = this.size; i > 0; i--) out.push(this.items[(this.next - i + this.capacity) % this.capacity]!);
    return out;
  }

  get length(): number {
    return this.size;
  }
}

function round3(value: number): number {
  return Math.round(value * 1000) / 1000;
}
