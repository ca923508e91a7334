import type { ApiKeyEntry, ApiKeyLimits } from '../auth/api-keys.js';
import { TokenBucket } from '../limits/token-bucket.js';
import type { BucketShape, SharedKey, SharedKeyLimits, SharedLimits } from '../shared-limits/shared-limits.js';

/** A key's bucket: a TokenBucket of this process, or this replica's view of one shared through Redis. */
export type KeyBucket = Pick<TokenBucket, 'capacity' | 'level' | 'tryTake' | 'charge' | 'msUntil' | 'msUntilFull'>;

/** What all connections of one API key share: aggregate buckets and counts. */
export class KeyBudget {
  readonly requests: KeyBucket | undefined;
  readonly tokens: KeyBucket | undefined;
  private connectionCount = 0;
  private streamCount = 0;
  /** HTTP clients of the key whose limits are still in use (see `hold`). */
  holders = 0;

  /** `shared`: the key's state in Redis (REDIS_URL), which these counts are published to. */
  constructor(readonly entry: ApiKeyEntry, readonly shared: SharedKey | undefined) {
    const shapes = bucketShapes(entry.limits ?? {});
    this.requests = shared ? shared.requests : shapes.requests && new TokenBucket(shapes.requests);
    this.tokens = shared ? shared.tokens : shapes.tokens && new TokenBucket(shapes.tokens);
  }

  /** Connections of the key open on this replica. */
  get connections(): number {
    return this.connectionCount;
  }

  set connections(count: number) {
    this.connectionCount = count;
    this.shared?.counted(this.connectionCount, this.streamCount);
  }

  /** Streams of the key in flight on this replica. */
  get streams(): number {
    return this.streamCount;
  }

  set streams(count: number) {
    this.streamCount = count;
    this.shared?.counted(this.connectionCount, this.streamCount);
  }
}

/** Per-key budgets, created on a key's first connection and dropped with its last. */
export class KeyBudgets {
  private readonly budgets = new Map<string, KeyBudget>();

  /** `shared`: per-key limits held in Redis for every replica (REDIS_URL); absent: this process alone. */
  constructor(private readonly shared?: SharedLimits) {}

  /** The key's budget; count the connection with `attach` once it opened. */
  budgetOf(entry: ApiKeyEntry): KeyBudget {
    let budget = this.budgets.get(entry.name);
    if (!budget) {
      budget = new KeyBudget(entry, this.shared?.key(entry.name, sharedLimitsOf(entry.limits ?? {})));
      this.budgets.set(entry.name, budget);
    }
    return budget;
  }

  /**
   * With shared limits, reserves a connection of the key against its cap across replicas (one
   * round trip); resolves with the refusal's message, or undefined when it may open. Undefined
   * (no promise) when the local check is all there is: no shared limits, or Redis unreachable.
   */
  reserveConnection(budget: KeyBudget): Promise<string | undefined> | undefined {
    const reply = budget.shared?.reserveConnection();
    return reply?.then((verdict) => (verdict.ok ? undefined : `this API key may hold at most ${budget.entry.limits?.maxConnections} connections`));
  }

  attach(budget: KeyBudget): void {
    budget.connections++;
  }

  detach(budget: KeyBudget): void {
    budget.connections--;
    this.dropIfUnused(budget);
  }

  /**
   * Keeps the key's budget while an HTTP client of the key may still be limited by it: each HTTP
   * request comes without a connection, and a fresh budget would start with full buckets.
   */
  hold(budget: KeyBudget): void {
    budget.holders++;
  }

  unhold(budget: KeyBudget): void {
    budget.holders--;
    this.dropIfUnused(budget);
  }

  private dropIfUnused(budget: KeyBudget): void {
    // Buckets are kept while any connection or HTTP client uses them, so reconnecting cannot reset
    // them (shared buckets live in Redis and this replica's view of them is kept by SharedLimits).
    if (budget.connections === 0 && budget.streams === 0 && budget.holders === 0) this.budgets.delete(budget.entry.name);
  }
}

function bucketShapes(limits: ApiKeyLimits): { requests?: BucketShape; tokens?: BucketShape } {
  return {
    ...(limits.requestsPerSecond !== undefined && { requests: { capacity: limits.requestBurst ?? Math.max(1, limits.requestsPerSecond), refillPerSecond: limits.requestsPerSecond } }),
    ...(limits.tokensPerSecond !== undefined && { tokens: { capacity: limits.tokenBurst ?? Math.max(1, limits.tokensPerSecond), refillPerSecond: limits.tokensPerSecond } }),
  };
}

function sharedLimitsOf(limits: ApiKeyLimits): SharedKeyLimits {
  return {
    ...bucketShapes(limits),
    ...(limits.maxStreams !== undefined && { maxStreams: limits.maxStreams }),
    ...(limits.maxConnections !== undefined && { maxConnections: limits.maxConnections }),
  };
}
