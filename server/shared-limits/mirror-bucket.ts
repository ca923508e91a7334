import { TokenBucket, type Clock } from '../limits/token-bucket.js';

/**
 * This replica's view of a bucket that lives in Redis: a local token bucket that takes and charges
 * at once (so the hot path never waits), and is set to the shared level whenever Redis answers,
 * less what was taken or charged here and not yet counted there. Between answers it refills at
 * the shared rate. Other replicas only lower the shared level, so a refusal by the view is always
 * right; an admission is confirmed by Redis.
 *
 * While Redis is unreachable it is simply this replica's own bucket (local limits).
 */
export class MirrorBucket {
  readonly capacity: number;
  readonly refillPerSecond: number;
  private local: TokenBucket;
  /** Credits taken or charged here that Redis has not been sent yet. */
  private unsent = 0;
  /** Credits sent to Redis whose answer has not come back. */
  private inFlight = 0;

  constructor(private readonly options: { capacity: number; refillPerSecond: number; clock?: Clock }) {
    this.local = new TokenBucket(options);
    this.capacity = this.local.capacity;
    this.refillPerSecond = this.local.refillPerSecond;
  }

  level(): number {
    return this.local.level();
  }

  tryTake(n = 1): boolean {
    if (!this.local.tryTake(n)) return false;
    this.unsent += n;
    return true;
  }

  charge(n: number): void {
    this.local.charge(n);
    this.unsent += n;
  }

  msUntil(n = 1): number {
    return this.local.msUntil(n);
  }

  msUntilFull(): number {
    return this.local.msUntilFull();
  }

  /** Credits taken or charged here since the last `send`. */
  get pending(): number {
    return this.unsent;
  }

  /** `n` credits (at most what is pending, unless `force`) go to Redis now; returns how many. */
  send(n = this.unsent, force = false): number {
    const sent = force ? n : Math.min(n, this.unsent);
    this.unsent = Math.max(0, this.unsent - sent);
    this.inFlight += sent;
    return sent;
  }

  /**
   * Redis answered a command that carried `acknowledged` credits (0 for a read), with the shared
   * level after it. Replies come in the order commands were sent, so every credit still in flight
   * was sent later and is not in `level` yet.
   */
  answered(level: number, acknowledged = 0): void {
    this.inFlight = Math.max(0, this.inFlight - acknowledged);
    const view = level - this.unsent - this.inFlight;
    this.local = new TokenBucket(this.options);
    if (view < this.capacity) this.local.charge(this.capacity - view);
  }

  /** Redis was unreachable: what was taken here stays here (local limits), nothing is owed to it. */
  forget(): void {
    this.unsent = 0;
    this.inFlight = 0;
  }
}
