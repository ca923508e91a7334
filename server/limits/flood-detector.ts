import { LimitOptionsError, nonNegative } from './limit-options-error.js';
import { monotonicClock, type Clock } from './token-bucket.js';

/** Largest `limit`: the ring costs 8 bytes per remembered event, per connection. */
export const MAX_FLOOD_LIMIT = 100_000;

/**
 * Counts events in a sliding window of `windowMs` and says when more than `limit` of them fell
 * inside it. An event at time t is inside the window at time now while now - t < windowMs.
 * Exact, with memory fixed at limit + 1 timestamps (8 bytes each): only the newest limit + 1
 * events can decide whether the limit is exceeded, so older ones are overwritten.
 */
export class FloodDetector {
  readonly limit: number;
  readonly windowMs: number;
  private readonly clock: Clock;
  // Ring of the newest event times; `next` is the slot the next event overwrites (the oldest).
  private readonly times: Float64Array;
  private next = 0;
  private stored = 0;

  constructor(options: { limit: number; windowMs: number; clock?: Clock }) {
    this.limit = nonNegative('limit', options.limit, true);
    this.windowMs = nonNegative('windowMs', options.windowMs);
    if (this.limit > MAX_FLOOD_LIMIT) throw new LimitOptionsError('limit', `must be at most ${MAX_FLOOD_LIMIT}, got ${this.limit}`);
    if (this.windowMs === 0) throw new LimitOptionsError('windowMs', 'must be greater than 0');
    this.clock = options.clock ?? monotonicClock;
    this.times = new Float64Array(this.limit + 1);
  }

  /**
   * Records one event now. True when more than `limit` events (this one included) happened within
   * the last `windowMs`: the caller should close the connection.
   */
  record(): boolean {
    const now = this.clock();
    const size = this.times.length;
    this.times[this.next] = now;
    this.next = this.next + 1 === size ? 0 : this.next + 1;
    if (this.stored < size) this.stored++;
    // After the write, `next` holds the event limit + 1 back, counting this one.
    return this.stored === size && now - this.times[this.next]! < this.windowMs;
  }

  /** Events within the window now; saturates at limit + 1, the most the detector remembers. */
  count(): number {
    const now = this.clock();
    const size = this.times.length;
    let inside = 0;
    for (let back = 1; back <= this.stored; back++) {
      const slot = (this.next - back + size) % size;
      if (now - this.times[slot]! >= this.windowMs) break;
      inside++;
    }
    return inside;
  }
}
