import { MirrorBucket } from './mirror-bucket.js';
import { keySpace, type KeySpace } from './redis-keys.js';
import type { ScriptRunner } from './script-runner.js';
import type { SharedKeyLimits, SharedLimit, SharedVerdict } from './types.js';

/** How long a reserved connection that never opened (the client left during the upgrade) keeps counting. */
const RESERVATION_MS = 10_000;

/**
 * One API key's shared state as this replica holds it: views of its two buckets, and this
 * replica's own connection and stream counts, which it publishes. Decisions that must hold across
 * replicas (a request, a connection) take one round trip; generated tokens are charged locally and
 * sent in batches by SharedLimits.
 */
export class SharedKey {
  readonly requests: MirrorBucket | undefined;
  readonly tokens: MirrorBucket | undefined;
  readonly keys: KeySpace;
  private connections = 0;
  private streams = 0;
  /** Connections reserved at upgrade and not opened yet, by when they were reserved. */
  private reservations: number[] = [];
  /** The counts Redis holds for this replica, as far as this replica knows. */
  private published = { connections: 0, streams: 0 };

  constructor(readonly name: string, readonly limits: SharedKeyLimits, private readonly redis: ScriptRunner) {
    this.keys = keySpace(name);
    this.requests = limits.requests && new MirrorBucket(limits.requests);
    this.tokens = limits.tokens && new MirrorBucket(limits.tokens);
  }

  /** True while this replica holds a connection, stream or reservation of the key. */
  get active(): boolean {
    return this.connections + this.streams + this.reservations.length > 0;
  }

  /**
   * Confirms a request that passed the local views, against the key's shared buckets and stream
   * cap; `streams` counts this replica's streams of the key with the new one. Undefined when Redis
   * is unreachable (the local decision stands).
   */
  admit(streams: number): Promise<SharedVerdict> | undefined {
    if (!this.redis.shared) return undefined;
    this.streams = streams;
    const sentRequest = this.requests?.send(1, true) ?? 0;
    const { replica, leaseMs } = this.redis;
    const reply = this.redis.run('admit', [this.keys.requests, this.keys.tokens, this.keys.streams], [replica, streams, this.limits.maxStreams ?? -1, ...this.bucketArgs(), leaseMs]);
    if (!reply) {
      this.requests?.forget();
      return undefined;
    }
    return reply.then(
      (answer) => {
        const verdict = this.verdict(answer, sentRequest);
        if (verdict.ok) this.published.streams = Math.max(this.published.streams, streams);
        return verdict;
      },
      // Redis failed to answer: the local decision stands, and the view owes Redis nothing.
      () => {
        this.requests?.forget();
        return { ok: true };
      },
    );
  }

  /**
   * Reserves a connection against the key's shared cap (this replica's open connections and
   * reservations with the new one) and refreshes the bucket views. Undefined when Redis is unreachable.
   */
  reserveConnection(): Promise<SharedVerdict> | undefined {
    if (!this.redis.shared) return undefined;
    this.dropStaleReservations();
    this.reservations.push(Date.now());
    const count = this.connections + this.reservations.length;
    const { replica, leaseMs } = this.redis;
    const reply = this.redis.run('reserve', [this.keys.connections, this.keys.requests, this.keys.tokens], [replica, count, this.limits.maxConnections ?? -1, ...this.bucketArgs(), leaseMs]);
    if (!reply) {
      this.reservations.pop();
      return undefined;
    }
    return reply.then(
      (answer) => {
        const verdict = this.verdict(answer, 0);
        if (verdict.ok) this.published.connections = Math.max(this.published.connections, count);
        else this.reservations.pop();
        return verdict;
      },
      () => {
        this.reservations.pop();
        return { ok: true };
      },
    );
  }

  /**
   * This replica's counts of the key changed (a connection opened or closed, a stream ended). An
   * opened connection takes its reservation's place; a lower count is published at once, so other
   * replicas may admit again (a higher one went to Redis with its admission).
   */
  counted(connections: number, streams: number): void {
    const opened = connections - this.connections;
    if (opened > 0) this.reservations.splice(0, opened);
    this.connections = connections;
    this.streams = streams;
    const connectionCount = connections + this.reservations.length;
    if (connectionCount < this.published.connections || streams < this.published.streams) this.publish();
  }

  /** Writes this replica's counts to Redis (refreshing their lease). */
  publish(): void {
    this.dropStaleReservations();
    const counts = { connections: this.connections + this.reservations.length, streams: this.streams };
    const reply = this.redis.run('publish', [this.keys.connections, this.keys.streams], [this.redis.replica, counts.connections, counts.streams, this.redis.leaseMs]);
    if (reply) {
      this.published = counts;
      reply.catch(() => undefined);
    }
  }

  /** Sends the tokens generated here since the last flush; undefined when there are none or Redis is unreachable. */
  flushTokens(): Promise<void> | undefined {
    const tokens = this.tokens;
    if (!tokens || tokens.pending === 0) return undefined;
    if (!this.redis.shared) {
      tokens.forget();
      return undefined;
    }
    const sent = tokens.send();
    const reply = this.redis.run('charge', [this.keys.tokens], [tokens.capacity, tokens.refillPerSecond, sent]);
    if (!reply) {
      tokens.forget();
      return undefined;
    }
    return reply.then(
      (level) => tokens.answered(Number(level), sent),
      () => tokens.forget(),
    );
  }

  /** Redis was unreachable: nothing taken here while it was is owed to it. */
  forget(): void {
    this.requests?.forget();
    this.tokens?.forget();
  }

  private bucketArgs(): number[] {
    const { requests, tokens } = this.limits;
    return [requests?.capacity ?? -1, requests?.refillPerSecond ?? 0, tokens?.capacity ?? -1, tokens?.refillPerSecond ?? 0];
  }

  private verdict(answer: unknown, sentRequest: number): SharedVerdict {
    const [verdict, requestLevel, tokenLevel, , waitMs] = answer as [string, string, string, number, number];
    if (this.requests) this.requests.answered(Number(requestLevel), sentRequest);
    if (this.tokens) this.tokens.answered(Number(tokenLevel));
    if (verdict === 'ok') return { ok: true };
    const limit = verdict as SharedLimit;
    this.redis.refusals[limit]++;
    return { ok: false, limit, ...(waitMs > 0 && { retryAfterMs: waitMs }) };
  }

  private dropStaleReservations(): void {
    const oldest = Date.now() - RESERVATION_MS;
    while (this.reservations.length > 0 && this.reservations[0]! < oldest) this.reservations.shift();
  }
}
