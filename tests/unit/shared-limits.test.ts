import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { keySpace } from '../../server/shared-limits/redis-keys.js';
import { SharedLimits, type SharedKey, type SharedKeyLimits, type SharedLimitsOptions } from '../../server/shared-limits/shared-limits.js';
import { RedisServer } from '../helpers/redis-server.js';
import { missingBinaries } from '../helpers/system-binary.js';
import { waitFor } from '../helpers/wait.js';

/*
 * The per-key state that replicas share, against a real redis-server: two SharedLimits in one
 * process play two replicas (each has its own connection and replica id, as two processes would).
 */

const skipReason = missingBinaries(['redis-server']);
if (skipReason) console.warn(`shared-limits tests skipped: ${skipReason}`);
const suite = skipReason ? describe.skip : describe;

/** A logger whose lines the test can read. */
function capturedLogger(): { logger: pino.Logger; messages: () => string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { logger: pino({ level: 'info' }, stream), messages: () => lines.map((line) => (JSON.parse(line) as { msg: string }).msg) };
}

suite('shared limits in Redis', () => {
  let redis: RedisServer;
  let inspect: Redis;
  const opened: SharedLimits[] = [];
  let keyCounter = 0;

  beforeAll(async () => {
    redis = await RedisServer.start();
    inspect = new Redis(redis.url);
    // It reconnects by itself after the restart below; its connection errors are expected.
    inspect.on('error', () => undefined);
  });

  afterEach(async () => {
    redis.resume();
    await Promise.all(opened.splice(0).map((limits) => limits.close()));
  });

  afterAll(async () => {
    inspect.disconnect();
    await redis.close();
  });

  async function replica(name: string, options: Partial<SharedLimitsOptions> = {}): Promise<SharedLimits> {
    const limits = new SharedLimits({ url: redis.url, logger: pino({ level: 'silent' }), replica: name, ...options });
    opened.push(limits);
    await waitFor(() => limits.shared, 10_000, `replica ${name} connected to Redis`);
    return limits;
  }

  /** A key name of its own for each test, so their state in Redis never meets. */
  const freshKey = (): string => `key-${process.pid}-${++keyCounter}`;

  /** What the gateway does for one request: the local view first, then Redis. */
  async function request(key: SharedKey, streams = 0): Promise<'ok' | 'local' | string> {
    if (key.requests && !key.requests.tryTake(1)) return 'local';
    const verdict = await key.admit(streams);
    if (!verdict) throw new Error('Redis was not reachable');
    return verdict.ok ? 'ok' : verdict.limit;
  }

  it("holds a key's request bucket across replicas: burst 5 admits exactly 5 of 10 requests sent to two", async () => {
    const [a, b] = [await replica('a'), await replica('b')];
    const name = freshKey();
    const limits: SharedKeyLimits = { requests: { capacity: 5, refillPerSecond: 0.01 } };
    const keys = [a.key(name, limits), b.key(name, limits)];
    const outcomes: string[] = [];
    for (let i = 0; i < 10; i++) outcomes.push(await request(keys[i % 2]!));
    expect(outcomes.filter((outcome) => outcome === 'ok')).toHaveLength(5);
    // Refused by Redis while a replica's view still had credits, then by the views themselves.
    expect(outcomes.filter((outcome) => outcome === 'requests').length).toBeGreaterThan(0);
    expect(outcomes.every((outcome) => ['ok', 'requests', 'local'].includes(outcome))).toBe(true);
    expect(a.refusals.requests + b.refusals.requests).toBe(outcomes.filter((outcome) => outcome === 'requests').length);
    // Each view now knows the shared level: below one credit.
    expect(keys[0]!.requests!.level()).toBeLessThan(1);
    expect(keys[1]!.requests!.level()).toBeLessThan(1);
  });

  it('refuses with the wait until the next credit, and admits once it has refilled', async () => {
    const a = await replica('a');
    const key = a.key(freshKey(), { requests: { capacity: 1, refillPerSecond: 1 } });
    expect(await request(key)).toBe('ok');
    // Past the view, straight to Redis: refused with a wait of at most a second.
    const refused = await key.admit(0);
    expect(refused).toMatchObject({ ok: false, limit: 'requests' });
    const retryAfterMs = refused!.ok ? 0 : refused!.retryAfterMs!;
    expect(retryAfterMs).toBeGreaterThan(0);
    expect(retryAfterMs).toBeLessThanOrEqual(1000);
    await new Promise((resolve) => setTimeout(resolve, retryAfterMs + 5));
    expect(await key.admit(0)).toEqual({ ok: true });
  });

  it("caps a key's streams across replicas, and frees the place when a stream ends", async () => {
    const [a, b] = [await replica('a'), await replica('b')];
    const name = freshKey();
    const limits: SharedKeyLimits = { maxStreams: 3 };
    const [onA, onB] = [a.key(name, limits), b.key(name, limits)];
    expect(await request(onA, 1)).toBe('ok');
    expect(await request(onA, 2)).toBe('ok');
    expect(await request(onB, 1)).toBe('ok');
    expect(await request(onB, 2)).toBe('streams');
    expect(b.refusals.streams).toBe(1);
    // B's refused stream ends; one of A's ends: A publishes its lower count at once.
    onB.counted(0, 1);
    onA.counted(0, 1);
    await waitFor(async () => (await inspect.hget(keySpace(name).streams, 'a'))?.startsWith('1:'), 5000, "A's count of 1 in Redis");
    expect(await request(onB, 2)).toBe('ok');
  });

  it("caps a key's connections across replicas; a reservation becomes the open connection", async () => {
    const [a, b] = [await replica('a'), await replica('b')];
    const name = freshKey();
    const limits: SharedKeyLimits = { maxConnections: 2 };
    const [onA, onB] = [a.key(name, limits), b.key(name, limits)];
    expect(await onA.reserveConnection()).toEqual({ ok: true });
    expect(await onB.reserveConnection()).toEqual({ ok: true });
    expect(await onB.reserveConnection()).toMatchObject({ ok: false, limit: 'connections' });
    onA.counted(1, 0);
    expect((await inspect.hget(keySpace(name).connections, 'a'))?.startsWith('1:')).toBe(true);
    onA.counted(0, 0);
    await waitFor(async () => (await inspect.hget(keySpace(name).connections, 'a')) === null, 5000, "A's connection gone from Redis");
    expect(await onB.reserveConnection()).toEqual({ ok: true });
  });

  it('charges generated tokens in batches: a key in debt on one replica is refused on the other', async () => {
    const [a, b] = [await replica('a', { flushMs: 20 }), await replica('b', { flushMs: 20 })];
    const name = freshKey();
    const limits: SharedKeyLimits = { tokens: { capacity: 100, refillPerSecond: 1 } };
    const [onA, onB] = [a.key(name, limits), b.key(name, limits)];
    for (let i = 0; i < 80; i++) onA.tokens!.charge(1);
    const sharedLevel = async (): Promise<number> => Number((await inspect.hget(keySpace(name).tokens, 'l')) ?? Number.NaN);
    await waitFor(async () => (await sharedLevel()) <= 21, 5000, 'the 80 tokens charged in Redis');
    expect(await request(onB)).toBe('ok');
    expect(onB.tokens!.level()).toBeGreaterThan(19);
    // 100 - 80, plus what refilled since (1 a second).
    expect(onB.tokens!.level()).toBeLessThan(30);
    for (let i = 0; i < 30; i++) onB.tokens!.charge(1);
    await waitFor(async () => (await sharedLevel()) < 0, 5000, 'the key in debt in Redis');
    const refused = await onA.admit(0);
    expect(refused).toMatchObject({ ok: false, limit: 'tokens' });
    expect(refused!.ok ? 0 : refused!.retryAfterMs).toBeGreaterThan(1000);
  });

  it("stops counting a replica that died once its lease lapses", async () => {
    const b = await replica('b');
    const dying = await replica('dying', { leaseMs: 1500, heartbeatMs: 100 });
    const name = freshKey();
    const limits: SharedKeyLimits = { maxStreams: 2 };
    expect(await request(dying.key(name, limits), 2)).toBe('ok');
    // Gone without a word: its counts stay in Redis until their lease runs out.
    await dying.close();
    const onB = b.key(name, limits);
    expect(await request(onB, 1)).toBe('streams');
    await new Promise((resolve) => setTimeout(resolve, 1600));
    expect(await request(onB, 1)).toBe('ok');
  });

  it('falls back to local limits while Redis does not answer, says so, and shares again when it does', async () => {
    const { logger, messages } = capturedLogger();
    const a = await replica('a', { logger, commandTimeoutMs: 200, probeMs: 50 });
    const key = a.key(freshKey(), { requests: { capacity: 100, refillPerSecond: 1 } });
    expect(a.details()).toMatchObject({ limits: 'shared', redis: 'up' });
    redis.pause();
    // The command times out: the local decision stands, and the replica stops asking Redis.
    expect(await key.admit(0)).toEqual({ ok: true });
    expect(a.shared).toBe(false);
    expect(a.details()).toMatchObject({ limits: 'local', redis: 'down', error: expect.stringContaining('timed out') });
    expect(a.fallbacks).toBe(1);
    expect(a.failures).toBeGreaterThanOrEqual(1);
    expect(key.admit(0)).toBeUndefined();
    expect(messages()).toContain('Redis unreachable: per-key limits are local to this replica until it answers again');
    redis.resume();
    await waitFor(() => a.shared, 5000, 'shared limits again');
    expect(messages()).toContain('Redis answers: per-key limits are shared across replicas');
    expect(await key.admit(0)).toEqual({ ok: true });
  });

  it('publishes its counts again to a Redis that restarted empty', async () => {
    const a = await replica('a', { commandTimeoutMs: 200 });
    const name = freshKey();
    const key = a.key(name, { maxStreams: 5 });
    expect(await request(key, 2)).toBe('ok');
    // The new redis-server starts empty (nothing is saved): a count in it was published again.
    await redis.restart();
    await waitFor(async () => (await inspect.hget(keySpace(name).streams, 'a').catch(() => null))?.startsWith('2:'), 10_000, 'the count published again');
    expect(a.shared).toBe(true);
    expect(a.fallbacks).toBe(1);
  });
});
