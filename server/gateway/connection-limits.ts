import { ErrorCode, type LimitsInfo } from '../../protocol/index.js';
import type { Config } from '../config/config.js';
import { ServiceError } from '../errors.js';
import { FloodDetector, MAX_FLOOD_LIMIT } from '../limits/flood-detector.js';
import { TokenBucket } from '../limits/token-bucket.js';
import type { KeyBucket, KeyBudget } from './key-budgets.js';

/** A frame admission: go on, refuse this frame (err), or close the connection (flood). */
export type FrameVerdict = 'ok' | 'refuse' | 'flood';

/**
 * The limits of one connection: a frame bucket, a request bucket and a generated-token bucket of
 * its own, the aggregate buckets of its API key when it has one, and a flood detector that counts
 * refused frames.
 */
export class ConnectionLimits {
  private readonly frames: TokenBucket;
  private readonly requests: TokenBucket | undefined;
  private readonly tokens: TokenBucket | undefined;
  /** Refused frames of any kind, against the frame bucket's capacity. */
  private readonly frameFlood: FloodDetector;
  /** Refused requests, against the request bucket's capacity. */
  private readonly requestFlood: FloodDetector;

  constructor(config: Config, readonly key: KeyBudget | undefined) {
    this.frames = new TokenBucket({ capacity: config.maxFramesPerSecond * 2, refillPerSecond: config.maxFramesPerSecond });
    this.requests = config.rateLimitRps > 0 ? new TokenBucket({ capacity: config.rateLimitBurst, refillPerSecond: config.rateLimitRps }) : undefined;
    this.tokens = config.tokenLimitTps > 0 ? new TokenBucket({ capacity: config.tokenLimitBurst, refillPerSecond: config.tokenLimitTps }) : undefined;
    // loadConfig keeps these within the detector's bound; the clamp guards configs built in code.
    const floodLimit = (capacity: number): number => Math.min(MAX_FLOOD_LIMIT, config.floodMultiple * capacity);
    this.frameFlood = new FloodDetector({ limit: floodLimit(this.frames.capacity), windowMs: config.floodWindowMs });
    this.requestFlood = new FloodDetector({ limit: floodLimit(config.rateLimitBurst), windowMs: config.floodWindowMs });
  }

  /** Every incoming frame passes here first. */
  admitFrame(): FrameVerdict {
    if (this.frames.tryTake(1)) return 'ok';
    return this.frameFlood.record() ? 'flood' : 'refuse';
  }

  /** Counts a refused request toward the flood limit; true when the connection should be closed. */
  recordRefusal(): boolean {
    return this.requestFlood.record();
  }

  /** Milliseconds until the frame bucket has room again. */
  frameRetryMs(): number {
    return Math.ceil(this.frames.msUntil(1));
  }

  /**
   * Admits a `gen` against the request and token buckets (connection and key), the key's stream
   * cap and its allowed models; throws a ServiceError with a retry hint otherwise. Credits are
   * taken only when every check passes.
   */
  admitGeneration(model: string | undefined, defaultModel: string): void {
    const key = this.key;
    const allowed = key?.entry.models;
    const name = model ?? defaultModel;
    if (allowed && !allowed.includes(name)) {
      throw new ServiceError(ErrorCode.forbiddenModel, `this API key may not use model "${name}"`, { details: { model: name } });
    }
    const maxStreams = key?.entry.limits?.maxStreams;
    if (key && maxStreams !== undefined && key.streams >= maxStreams) {
      throw new ServiceError(ErrorCode.tooManyStreams, `this API key may have at most ${maxStreams} streams in flight`, { details: { limit: maxStreams } });
    }
    const waits = [this.tokens, key?.tokens].map((bucket) => (bucket ? bucket.msUntil(1) : 0));
    const requestBuckets = [this.requests, key?.requests].filter((bucket): bucket is KeyBucket => bucket !== undefined);
    for (const bucket of requestBuckets) waits.push(bucket.msUntil(1));
    const waitMs = Math.max(...waits);
    if (waitMs > 0) {
      throw new ServiceError(ErrorCode.rateLimited, 'rate limit reached for this connection or API key', { retryAfterMs: Math.max(1, Math.ceil(waitMs)) });
    }
    for (const bucket of requestBuckets) bucket.tryTake(1);
  }

  /**
   * With per-key limits shared across replicas (REDIS_URL), confirms a `gen` that passed
   * `admitGeneration` against the key's shared buckets and stream cap: one round trip to Redis.
   * Rejects with the ServiceError of the refusal; undefined when there is nothing to confirm (no
   * key, no shared limits, or Redis unreachable: the local decision stands).
   */
  admitShared(): Promise<void> | undefined {
    const key = this.key;
    const reply = key?.shared?.admit(key.streams);
    return reply?.then((verdict) => {
      if (verdict.ok) return;
      if (verdict.limit === 'streams') {
        const limit = key!.entry.limits?.maxStreams ?? 0;
        throw new ServiceError(ErrorCode.tooManyStreams, `this API key may have at most ${limit} streams in flight`, { details: { limit } });
      }
      throw new ServiceError(ErrorCode.rateLimited, 'rate limit reached for this API key', { retryAfterMs: verdict.retryAfterMs ?? 1000 });
    });
  }

  /** Charges one generated token to the token buckets. */
  chargeToken(): void {
    this.tokens?.charge(1);
    this.key?.tokens?.charge(1);
  }

  /** Milliseconds a stream must wait before its next token (token buckets in debt), else 0. */
  tokenWaitMs(): number {
    const own = this.tokens ? this.tokens.msUntil(0.001) : 0;
    const shared = this.key?.tokens ? this.key.tokens.msUntil(0.001) : 0;
    return Math.max(own, shared);
  }

  /** The request and token buckets that apply (the key's when it has them): what rate-limit headers report. */
  applied(): { requests: KeyBucket | undefined; tokens: KeyBucket | undefined } {
    return { requests: this.key?.requests ?? this.requests, tokens: this.key?.tokens ?? this.tokens };
  }

  /** Milliseconds until the connection's own buckets (frames too) and its key's are all full again (0 when they are). */
  msUntilFull(): number {
    const buckets = [this.frames, this.requests, this.tokens, this.key?.requests, this.key?.tokens];
    return Math.max(0, ...buckets.map((bucket) => bucket?.msUntilFull() ?? 0));
  }

  /** Levels of the buckets that apply (the key's when it has them), as clients see them in `hello` and `limits`. */
  levels(): Pick<LimitsInfo, 'requestsRemaining' | 'tokensRemaining' | 'resetMs'> {
    const requests = this.key?.requests ?? this.requests;
    const tokens = this.key?.tokens ?? this.tokens;
    const levels: Pick<LimitsInfo, 'requestsRemaining' | 'tokensRemaining' | 'resetMs'> = {};
    if (requests) levels.requestsRemaining = Math.max(0, Math.floor(requests.level()));
    if (tokens) levels.tokensRemaining = Math.max(0, Math.floor(tokens.level()));
    if (requests || tokens) levels.resetMs = Math.ceil(Math.max(requests?.msUntilFull() ?? 0, tokens?.msUntilFull() ?? 0));
    return levels;
  }
}
