import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ServiceError } from '../../server/errors.js';
import { SlotScheduler, type Lease, type SchedulerOptions } from '../../server/scheduling/slot-scheduler.js';

interface Slot {
  id: number;
}

const makeSlots = (count: number): Slot[] => Array.from({ length: count }, (_, id) => ({ id }));

function scheduler(count: number, options: Partial<SchedulerOptions> = {}): SlotScheduler<Slot> {
  return new SlotScheduler(makeSlots(count), { maxQueue: 100, queueTimeoutMs: 60_000, positionIntervalMs: 100, ...options });
}

/** One queued or leased request, with everything that happened to it. */
interface Request {
  label: string;
  controller: AbortController;
  positions: number[];
  positionTimes: number[];
  promise: Promise<Lease<Slot>>;
  lease?: Lease<Slot>;
  error?: unknown;
  settled: boolean;
}

/** Starts an acquire and records its outcome; `order` receives the label when it is served. */
function request(s: SlotScheduler<Slot>, owner: string, label: string, order?: string[]): Request {
  const controller = new AbortController();
  const req: Request = {
    label,
    controller,
    positions: [],
    positionTimes: [],
    settled: false,
    promise: undefined as unknown as Promise<Lease<Slot>>,
  };
  req.promise = s.acquire({
    owner,
    signal: controller.signal,
    onPosition: (position) => {
      req.positions.push(position);
      req.positionTimes.push(Date.now());
    },
  });
  req.promise.then(
    (lease) => {
      req.lease = lease;
      req.settled = true;
      order?.push(label);
    },
    (error: unknown) => {
      req.error = error;
      req.settled = true;
    },
  );
  return req;
}

/** Lets promise callbacks run. */
const flush = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

beforeEach(() => {
  vi.useFakeTimers({ now: 0 });
});

afterEach(() => {
  vi.useRealTimers();
});

describe('SlotScheduler', () => {
  it('leases up to the slot count at once', async () => {
    const s = scheduler(3);
    expect(s.total).toBe(3);
    expect(s.busy).toBe(0);
    const reqs = [request(s, 'a', 'a0'), request(s, 'a', 'a1'), request(s, 'b', 'b0')];
    await flush();
    expect(reqs.every((r) => r.lease !== undefined)).toBe(true);
    expect(new Set(reqs.map((r) => r.lease!.slot.id)).size).toBe(3);
    expect(reqs.every((r) => r.positions.length === 0)).toBe(true);
    expect(s.busy).toBe(3);
    expect(s.queued).toBe(0);
  });

  it('queues further requests and tells them their 1-based positions', async () => {
    const s = scheduler(1);
    const held = request(s, 'a', 'held');
    const a1 = request(s, 'a', 'a1');
    const a2 = request(s, 'a', 'a2');
    const b1 = request(s, 'b', 'b1');
    const b2 = request(s, 'b', 'b2');
    const c1 = request(s, 'c', 'c1');
    await flush();
    expect(held.lease).toBeDefined();
    expect(s.queued).toBe(5);
    expect(a1.positions).toEqual([1]);
    expect(a2.positions).toEqual([2]);
    // b1 is served after a1 (round 1), b2 after a2 (round 2).
    expect(b1.positions).toEqual([2]);
    expect(b2.positions).toEqual([4]);
    // Round 1 is a1, b1, c1.
    expect(c1.positions).toEqual([3]);
    expect([a1, a2, b1, b2, c1].every((r) => !r.settled)).toBe(true);
  });

  it('hands a released slot to the next waiter', async () => {
    const s = scheduler(2);
    const first = request(s, 'a', 'first');
    const second = request(s, 'a', 'second');
    const waiter = request(s, 'b', 'waiter');
    await flush();
    expect(waiter.settled).toBe(false);
    const slot = first.lease!.slot;
    first.lease!.release();
    await flush();
    expect(waiter.lease?.slot).toBe(slot);
    expect(s.busy).toBe(2);
    expect(s.queued).toBe(0);
    second.lease!.release();
    waiter.lease!.release();
    expect(s.busy).toBe(0);
  });

  /** Releases the holder's slot `count` times in a row, each time to whoever was served last. */
  async function serveAll(holder: Request, requests: Request[], order: string[], count: number): Promise<void> {
    const byLabel = new Map(requests.map((req) => [req.label, req]));
    let current = holder;
    for (let i = 0; i < count; i++) {
      current.lease!.release();
      await flush();
      const next = byLabel.get(order[order.length - 1]!);
      expect(next?.lease).toBeDefined();
      current = next!;
    }
    current.lease!.release();
  }

  it('is fair: one owner with 10 waiting cannot starve another with 1', async () => {
    const s = scheduler(1);
    const order: string[] = [];
    const held = request(s, 'x', 'held');
    await flush();
    const pending = Array.from({ length: 10 }, (_, i) => request(s, 'A', `A${i}`, order));
    pending.push(request(s, 'B', 'B0', order));
    await serveAll(held, pending, order, 11);
    expect(order).toHaveLength(11);
    expect(order.indexOf('B0')).toBeLessThan(order.indexOf('A2'));
    expect(order).toEqual(['A0', 'B0', 'A1', 'A2', 'A3', 'A4', 'A5', 'A6', 'A7', 'A8', 'A9']);
    expect(s.busy).toBe(0);
  });

  it('serves three owners round-robin', async () => {
    const s = scheduler(1);
    const order: string[] = [];
    const held = request(s, 'x', 'held');
    await flush();
    const pending: Request[] = [];
    for (const owner of ['A', 'B', 'C']) {
      for (let i = 0; i < 3; i++) pending.push(request(s, owner, `${owner}${i}`, order));
    }
    await serveAll(held, pending, order, 9);
    expect(order).toEqual(['A0', 'B0', 'C0', 'A1', 'B1', 'C1', 'A2', 'B2', 'C2']);
  });

  it('keeps round-robin order when an owner joins while others are served', async () => {
    const s = scheduler(1);
    const order: string[] = [];
    const held = request(s, 'x', 'held');
    await flush();
    const pending = [request(s, 'A', 'A0', order), request(s, 'A', 'A1', order), request(s, 'B', 'B0', order), request(s, 'B', 'B1', order)];
    held.lease!.release();
    await flush();
    expect(order).toEqual(['A0']);
    // C joins after A was served: the ring is now B, A, C.
    pending.push(request(s, 'C', 'C0', order));
    await serveAll(pending[0]!, pending, order, 4);
    expect(order).toEqual(['A0', 'B0', 'A1', 'C0', 'B1']);
  });

  it('refuses with overloaded and a positive retryAfterMs when the queue is full', async () => {
    const s = scheduler(1, { maxQueue: 2 });
    request(s, 'a', 'held');
    request(s, 'a', 'q1');
    request(s, 'b', 'q2');
    await flush();
    expect(s.queued).toBe(2);
    const refused = request(s, 'c', 'refused');
    await flush();
    expect(refused.error).toBeInstanceOf(ServiceError);
    const error = refused.error as ServiceError;
    expect(error.code).toBe('overloaded');
    expect(error.retryAfterMs).toBeGreaterThan(0);
    expect(refused.positions).toEqual([]);
    expect(s.queued).toBe(2);
  });

  it('refuses an owner past its own queue cap with overloaded while others still get in', async () => {
    const s = scheduler(1, { maxQueue: 10, maxQueuedPerOwner: 2 });
    request(s, 'a', 'held');
    request(s, 'a', 'a1');
    request(s, 'a', 'a2');
    const refused = request(s, 'a', 'a3');
    const other = request(s, 'b', 'b1');
    await flush();
    expect((refused.error as ServiceError).code).toBe('overloaded');
    expect((refused.error as ServiceError).details).toEqual({ queued: 2, limit: 2 });
    expect(other.error).toBeUndefined();
    expect(s.queued).toBe(3);
  });

  it('refuses with overloaded at once when no queue is allowed', async () => {
    const s = scheduler(1, { maxQueue: 0 });
    request(s, 'a', 'held');
    const refused = request(s, 'a', 'refused');
    await flush();
    expect((refused.error as ServiceError).code).toBe('overloaded');
    expect((refused.error as ServiceError).retryAfterMs).toBeGreaterThan(0);
    expect(s.queued).toBe(0);
  });

  it('rejects with the abort reason and frees the place when aborted while queued', async () => {
    const s = scheduler(1, { maxQueue: 2 });
    const held = request(s, 'a', 'held');
    const q1 = request(s, 'a', 'q1');
    const q2 = request(s, 'b', 'q2');
    await flush();
    expect(s.queued).toBe(2);
    const reason = new Error('client went away');
    q1.controller.abort(reason);
    await flush();
    expect(q1.error).toBe(reason);
    expect(q1.lease).toBeUndefined();
    expect(s.queued).toBe(1);
    // The place is free again.
    const q3 = request(s, 'c', 'q3');
    await flush();
    expect(q3.error).toBeUndefined();
    expect(s.queued).toBe(2);
    // The aborted request is skipped when the slot is released.
    held.lease!.release();
    await flush();
    expect(q2.lease).toBeDefined();
    expect(q1.lease).toBeUndefined();
    expect(s.queued).toBe(1);
  });

  it('rejects at once with the reason of an already aborted signal', async () => {
    const s = scheduler(1);
    const controller = new AbortController();
    const reason = new Error('already gone');
    controller.abort(reason);
    await expect(s.acquire({ owner: 'a', signal: controller.signal })).rejects.toBe(reason);
    expect(s.busy).toBe(0);
    expect(s.queued).toBe(0);
  });

  it('rejects with queue_timeout when no slot frees in time', async () => {
    const s = scheduler(1, { queueTimeoutMs: 1000 });
    const held = request(s, 'a', 'held');
    const waiter = request(s, 'b', 'waiter');
    await vi.advanceTimersByTimeAsync(999);
    expect(waiter.settled).toBe(false);
    expect(s.queued).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(waiter.error).toBeInstanceOf(ServiceError);
    expect((waiter.error as ServiceError).code).toBe('queue_timeout');
    expect(s.queued).toBe(0);
    // The slot, once released, becomes free rather than going to the timed-out waiter.
    held.lease!.release();
    await flush();
    expect(waiter.lease).toBeUndefined();
    expect(s.busy).toBe(0);
  });

  it('does not time out a waiter that was served', async () => {
    const s = scheduler(1, { queueTimeoutMs: 1000 });
    const held = request(s, 'a', 'held');
    const waiter = request(s, 'b', 'waiter');
    await vi.advanceTimersByTimeAsync(500);
    held.lease!.release();
    await vi.advanceTimersByTimeAsync(5000);
    expect(waiter.lease).toBeDefined();
    expect(waiter.error).toBeUndefined();
  });

  it('ignores a second release of the same lease', async () => {
    const s = scheduler(2);
    const a = request(s, 'a', 'a');
    await flush();
    a.lease!.release();
    a.lease!.release();
    expect(s.busy).toBe(0);
    expect(s.total).toBe(2);
    // Still only two slots: a third request waits.
    const reqs = [request(s, 'a', 'r0'), request(s, 'a', 'r1'), request(s, 'a', 'r2')];
    await flush();
    expect(reqs.filter((r) => r.lease !== undefined)).toHaveLength(2);
    expect(reqs[2]!.settled).toBe(false);
    expect(s.busy).toBe(2);
    expect(s.queued).toBe(1);
  });

  it('does not hand a slot to a second waiter on a double release', async () => {
    const s = scheduler(1);
    const held = request(s, 'a', 'held');
    const w1 = request(s, 'b', 'w1');
    const w2 = request(s, 'c', 'w2');
    await flush();
    held.lease!.release();
    held.lease!.release();
    await flush();
    expect(w1.lease).toBeDefined();
    expect(w2.settled).toBe(false);
    expect(s.busy).toBe(1);
    expect(s.queued).toBe(1);
  });

  it('close(error) rejects every waiter and every later acquire', async () => {
    const s = scheduler(1);
    const held = request(s, 'a', 'held');
    const waiters = [request(s, 'a', 'w1'), request(s, 'b', 'w2'), request(s, 'b', 'w3')];
    await flush();
    const error = new ServiceError('model_unavailable', 'the model was unloaded');
    s.close(error);
    await flush();
    for (const waiter of waiters) expect(waiter.error).toBe(error);
    expect(s.queued).toBe(0);
    const later = request(s, 'c', 'later');
    await flush();
    expect(later.error).toBe(error);
    // A release after close frees the slot without serving anyone.
    held.lease!.release();
    expect(s.busy).toBe(0);
    // No timers fire into closed waiters.
    await vi.advanceTimersByTimeAsync(120_000);
    for (const waiter of waiters) expect(waiter.lease).toBeUndefined();
  });

  it('rate-limits position updates to one per interval per waiter', async () => {
    const s = scheduler(1, { positionIntervalMs: 100 });
    request(s, 'x', 'held');
    const ahead = Array.from({ length: 5 }, (_, i) => request(s, 'A', `A${i}`));
    const last = request(s, 'A', 'last');
    await flush();
    expect(last.positions).toEqual([6]);

    // A burst of four changes within one interval...
    for (let i = 0; i < 4; i++) {
      ahead[i]!.controller.abort(new Error('gone'));
      await vi.advanceTimersByTimeAsync(10);
    }
    // ...is not reported before the interval is over...
    await vi.advanceTimersByTimeAsync(59);
    expect(last.positions).toEqual([6]);
    // ...and is reported once, with the final position.
    await vi.advanceTimersByTimeAsync(1);
    expect(last.positions).toEqual([6, 2]);
    expect(last.positionTimes).toEqual([0, 100]);

    // The next change is reported a full interval after it.
    await vi.advanceTimersByTimeAsync(10);
    ahead[4]!.controller.abort(new Error('gone'));
    await vi.advanceTimersByTimeAsync(99);
    expect(last.positions).toEqual([6, 2]);
    await vi.advanceTimersByTimeAsync(1);
    expect(last.positions).toEqual([6, 2, 1]);
    expect(last.positionTimes).toEqual([0, 100, 210]);

    // No update when nothing changes.
    await vi.advanceTimersByTimeAsync(1000);
    expect(last.positions).toEqual([6, 2, 1]);
    for (let i = 1; i < last.positionTimes.length; i++) {
      expect(last.positionTimes[i]! - last.positionTimes[i - 1]!).toBeGreaterThanOrEqual(100);
    }
  });

  it('updates positions as the queue moves after releases', async () => {
    const s = scheduler(1, { positionIntervalMs: 50 });
    let current = request(s, 'x', 'held');
    const order: string[] = [];
    const a = [request(s, 'A', 'A0', order), request(s, 'A', 'A1', order), request(s, 'A', 'A2', order)];
    await flush();
    current.lease!.release();
    await flush();
    current = a[0]!;
    await vi.advanceTimersByTimeAsync(50);
    expect(a[1]!.positions).toEqual([2, 1]);
    expect(a[2]!.positions).toEqual([3, 2]);
    current.lease!.release();
    await vi.advanceTimersByTimeAsync(50);
    expect(a[2]!.positions).toEqual([3, 2, 1]);
    expect(order).toEqual(['A0', 'A1']);
  });

  // Round-robin puts a newcomer ahead of other owners' later requests: A1 moves from 2 to 3.
  it('tells waiters their new position when a new owner joins ahead of them', async () => {
    const s = scheduler(1, { positionIntervalMs: 100 });
    request(s, 'x', 'held');
    const a0 = request(s, 'A', 'A0');
    const a1 = request(s, 'A', 'A1');
    await flush();
    expect(a0.positions).toEqual([1]);
    expect(a1.positions).toEqual([2]);
    const b0 = request(s, 'B', 'B0');
    await flush();
    expect(b0.positions).toEqual([2]);
    await vi.advanceTimersByTimeAsync(100);
    expect(a0.positions).toEqual([1]);
    expect(a1.positions.at(-1)).toBe(3);
  });

  it('leases the free slot with the best affinity, and the one free longest on a tie', async () => {
    const s = scheduler(3);
    const signal = new AbortController().signal;
    const leases = await Promise.all([0, 1, 2].map(() => s.acquire({ owner: 'a', signal })));
    // Released in the order 2, 0, 1: slot 2 has been free the longest.
    for (const index of [2, 0, 1]) leases.find((lease) => lease.slot.id === index)!.release();

    const byTie = await s.acquire({ owner: 'a', signal, affinity: () => 0 });
    expect(byTie.slot.id).toBe(2);
    const noAffinity = await s.acquire({ owner: 'a', signal });
    expect(noAffinity.slot.id).toBe(0);
    byTie.release();
    noAffinity.release();
    // Free now, oldest first: 1, 2, 0. Slot 0 scores best.
    const best = await s.acquire({ owner: 'a', signal, affinity: (slot) => (slot.id === 0 ? 5 : 1) });
    expect(best.slot.id).toBe(0);
  });
});
