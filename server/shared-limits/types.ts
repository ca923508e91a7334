/** A bucket's size: credits it holds and credits refilled per second. */
export interface BucketShape {
  capacity: number;
  refillPerSecond: number;
}

/** What an API key may use, across every replica. */
export interface SharedKeyLimits {
  requests?: BucketShape;
  tokens?: BucketShape;
  maxStreams?: number;
  maxConnections?: number;
}

/** Which shared limit refused. */
export type SharedLimit = 'requests' | 'tokens' | 'streams' | 'connections';

export type SharedVerdict = { ok: true } | { ok: false; limit: SharedLimit; retryAfterMs?: number };
