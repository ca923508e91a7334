import { nonNegative } from './limit-options-error.js';

/** Milliseconds from a monotonic source. */
export type Clock = () => number;

/** The default clock: monotonic, unaffected by wall-clock changes. */
export const monotonicClock: Clock = () => performance.now();

// Refill is elapsed × rate / 1000 in floating point (multiplied first, so whole-ms steps at a whole
// rate are exact). Fractional steps can leave the level a few ulps short of n after waiting exactly
// msUntil(n); taking within this margin keeps a client that obeys retryAfterMs from being refused a
// second time. A billionth of the capacity (of a credit, for small buckets) is far below anything a
// client could exploit.
const RELATIVE_SLACK = 1e-9;

/**
 * A token bucket of `capacity` credits refilled continuously at `refillPerSecond`, starting full.
 * Refill is computed lazily from the injected clock on every call: no timers, no allocation.
 */
export class TokenBucket {
  readonly capacity: number;
  readonly refillPerSecond: number;
  private readonly clock: Clock;
  private readonly slack: number;
  private credits: number;
  private refilledAt: number;

  constructor(options: { capacity: number; refillPerSecond: number; clock?: Clock }) {
    this.capacity = nonNegative('capacity', options.capacity);
    this.refillPerSecond = nonNegative('refillPerSecond', options.refillPerSecond);
    this.slack = RELATIVE_SLACK * Math.max(1, this.capacity);
    this.clock = options.clock ?? monotonicClock;
    this.credits = this.capacity;
    this.refilledAt = this.clock();
  }

  /** Credits now (refilled lazily from the clock; may be negative after `charge`). */
  level(): number {
    this.refill();
    return this.credits;
  }

  /** Takes `n` credits if available and returns true; else takes nothing and returns false. */
  tryTake(n = 1): boolean {
    checkAmount(n);
    this.refill();
    if (this.credits + this.slack < n) return false;
    // Clamp the slack away so a take never leaves debt.
    this.credits = Math.max(this.credits - n, 0);
    return true;
  }

  /** Takes `n` credits unconditionally (used after the fact, e.g. generated tokens); the level may go negative (debt). */
  charge(n: number): void {
    checkAmount(n);
    this.refill();
    this.credits -= n;
  }

  /** Milliseconds until `n` credits are available (0 when they are); Infinity if n > capacity or refill is 0 and short. */
  msUntil(n = 1): number {
    checkAmount(n);
    if (n > this.capacity) return Infinity;
    return this.msUntilLevel(n);
  }

  /** Milliseconds until the bucket is full again. */
  msUntilFull(): number {
    return this.msUntilLevel(this.capacity);
  }

  private msUntilLevel(target: number): number {
    this.refill();
    const missing = target - this.credits;
    if (missing <= this.slack) return 0;
    return this.refillPerSecond === 0 ? Infinity : (missing * 1000) / this.refillPerSecond;
  }

  private refill(): void {
    const now = this.clock();
    const elapsed = now - this.refilledAt;
    // A clock that steps back (it should not) credits nothing rather than taking credits away.
    if (elapsed <= 0) return;
    this.refilledAt = now;
    if (this.credits < this.capacity) this.credits = Math.min(this.capacity, this.credits + (elapsed * this.refillPerSecond) / 1000);
  }
}

function checkAmount(n: number): void {
  // NaN or Infinity would poison the level for good, so they never get in.
  if (!(n >= 0) || n === Infinity) throw new RangeError(`credit amount must be a finite number ≥ 0, got ${n}`);
}
