import { ErrorCode } from '../../protocol/index.js';
import { ServiceError } from '../errors.js';

export interface SchedulerOptions {
  /** Requests that may wait; one more is refused with `overloaded`. */
  maxQueue: number;
  /** Longest wait before `queue_timeout`. */
  queueTimeoutMs: number;
  /** Requests one owner may have waiting; one more is refused with `overloaded`. Default: no cap but maxQueue. */
  maxQueuedPerOwner?: number;
  /** Smallest interval between two position updates to one waiter. Default: 250 ms. */
  positionIntervalMs?: number;
}

export interface AcquireOptions<T = unknown> {
  /** Whose request this is (a connection); waiting requests are served round-robin by owner. */
  owner: string;
  /** Aborting it removes the request from the queue; acquire then rejects with the signal's reason. */
  signal: AbortSignal;
  /** Told the 1-based queue position when queued and, rate-limited, when it changes. */
  onPosition?: (position: number) => void;
  /**
   * How well a free slot suits this request (for a context sequence: how many leading prompt
   * tokens it already holds). The best-scoring free slot is leased; ties go to the slot free the
   * longest. Without it, the slot free the longest is leased.
   */
  affinity?: (slot: T) => number;
}

/** A slot held by one request; release it exactly once, when the request is done with it. */
export interface Lease<T> {
  readonly slot: T;
  release(): void;
}

interface Waiter<T> {
  owner: string;
  options: AcquireOptions<T>;
  resolve: (lease: Lease<T>) => void;
  reject: (error: unknown) => void;
  timer: ReturnType<typeof setTimeout>;
  onAbort: () => void;
  position: number;
}

const SERVICE_EWMA_WEIGHT = 0.2;

/**
 * Hands out a fixed set of slots (context sequences). When all are busy, requests wait in a
 * bounded queue that is fair across owners: each owner with waiting requests gets one slot in
 * turn, so one connection with fifty requests cannot starve another's single one.
 */
export class SlotScheduler<T> {
  private readonly free: T[];
  private readonly queues = new Map<string, Waiter<T>[]>();
  /** Owners with waiting requests, in the order they are served next. */
  private ring: string[] = [];
  private waiting = 0;
  private serviceMsEstimate = 0;
  private positionTimer: ReturnType<typeof setTimeout> | undefined;
  private closedWith: ServiceError | undefined;
  private readonly positionIntervalMs: number;
  /** Called whenever the last busy slot is released with nobody waiting. */
  onIdle: (() => void) | undefined;

  constructor(private readonly slots: readonly T[], private readonly options: SchedulerOptions) {
    this.free = [...slots];
    this.positionIntervalMs = options.positionIntervalMs ?? 250;
  }

  get total(): number {
    return this.slots.length;
  }

  get busy(): number {
    return this.slots.length - this.free.length;
  }

  get queued(): number {
    return this.waiting;
  }

  /** Leases a free slot now, or queues the request; rejects with a ServiceError or the abort reason. */
  acquire(options: AcquireOptions<T>): Promise<Lease<T>> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    if (options.signal.aborted) return Promise.reject(options.signal.reason);
    const slot = this.takeFree(options.affinity);
    if (slot !== undefined) return Promise.resolve(this.lease(slot));
    if (this.waiting >= this.options.maxQueue) {
      const retryAfterMs = this.estimateRetryAfterMs();
      return Promise.reject(
        new ServiceError(ErrorCode.overloaded, `all ${this.total} slots are busy and ${this.waiting} requests are waiting`, {
          retryAfterMs,
          details: { queued: this.waiting, slots: this.total },
        }),
      );
    }
    const ownerQueued = this.queues.get(options.owner)?.length ?? 0;
    if (this.options.maxQueuedPerOwner !== undefined && ownerQueued >= this.options.maxQueuedPerOwner) {
      return Promise.reject(
        new ServiceError(ErrorCode.overloaded, `this connection already has ${ownerQueued} requests waiting here`, {
          retryAfterMs: this.estimateRetryAfterMs(),
          details: { queued: ownerQueued, limit: this.options.maxQueuedPerOwner },
        }),
      );
    }
    return new Promise<Lease<T>>((resolve, reject) => {
      const waiter: Waiter<T> = {
        owner: options.owner,
        options,
        resolve,
        reject,
        position: 0,
        timer: setTimeout(() => {
          this.remove(waiter);
          reject(new ServiceError(ErrorCode.queueTimeout, `no slot became free within ${this.options.queueTimeoutMs} ms`, {
            retryAfterMs: this.estimateRetryAfterMs(),
          }));
        }, this.options.queueTimeoutMs),
        onAbort: () => {
          this.remove(waiter);
          reject(options.signal.reason);
        },
      };
      options.signal.addEventListener('abort', waiter.onAbort, { once: true });
      let queue = this.queues.get(options.owner);
      if (!queue) {
        queue = [];
        this.queues.set(options.owner, queue);
        this.ring.push(options.owner);
      }
      queue.push(waiter);
      this.waiting++;
      waiter.position = this.positionOf(waiter);
      options.onPosition?.(waiter.position);
      // A new owner is served ahead of others' later requests: their positions change too.
      this.schedulePositionUpdate();
    });
  }

  /** Refuses all waiting and future requests with `error` (used when the model goes away). */
  close(error: ServiceError): void {
    this.closedWith = error;
    for (const queue of [...this.queues.values()]) {
      for (const waiter of [...queue]) {
        this.remove(waiter);
        waiter.reject(error);
      }
    }
  }

  /** Milliseconds a new request would likely wait, from recent service times. */
  estimateRetryAfterMs(): number {
    const perSlot = this.serviceMsEstimate > 0 ? this.serviceMsEstimate : 1000;
    return Math.max(100, Math.ceil((perSlot * (this.waiting + 1)) / this.total));
  }

  /** Removes and returns the free slot with the best affinity; `free` is ordered oldest first. */
  private takeFree(affinity: ((slot: T) => number) | undefined): T | undefined {
    if (this.free.length === 0) return undefined;
    let best = 0;
    if (affinity) {
      let bestScore = affinity(this.free[0]!);
      for (let index = 1; index < this.free.length; index++) {
        const score = affinity(this.free[index]!);
        if (score > bestScore) {
          best = index;
          bestScore = score;
        }
      }
    }
    return this.free.splice(best, 1)[0];
  }

  private lease(slot: T): Lease<T> {
    const leasedAt = performance.now();
    let released = false;
    return {
      slot,
      release: () => {
        if (released) return;
        released = true;
        const heldMs = performance.now() - leasedAt;
        this.serviceMsEstimate = this.serviceMsEstimate === 0 ? heldMs : this.serviceMsEstimate + SERVICE_EWMA_WEIGHT * (heldMs - this.serviceMsEstimate);
        this.handOver(slot);
      },
    };
  }

  private handOver(slot: T): void {
    const owner = this.ring[0];
    if (owner === undefined || this.closedWith) {
      this.free.push(slot);
      if (this.free.length === this.slots.length) this.onIdle?.();
      return;
    }
    const waiter = this.queues.get(owner)![0]!;
    this.remove(waiter);
    // The owner just served goes to the back of the ring if it still has requests waiting.
    if (this.queues.has(owner)) this.ring.push(this.ring.shift()!);
    waiter.resolve(this.lease(slot));
  }

  private remove(waiter: Waiter<T>): void {
    const queue = this.queues.get(waiter.owner);
    const index = queue ? queue.indexOf(waiter) : -1;
    if (!queue || index < 0) return;
    queue.splice(index, 1);
    this.waiting--;
    clearTimeout(waiter.timer);
    waiter.options.signal.removeEventListener('abort', waiter.onAbort);
    if (queue.length === 0) {
      this.queues.delete(waiter.owner);
      this.ring = this.ring.filter((owner) => owner !== waiter.owner);
    }
    this.schedulePositionUpdate();
  }

  /**
   * 1-based position in serving order: the waiter at index k of its owner's queue is served in
   * round k, after every owner's first k waiters and after the owners ahead of it in the ring.
   */
  private positionOf(waiter: Waiter<T>): number {
    const k = this.queues.get(waiter.owner)!.indexOf(waiter);
    let position = 1;
    let ahead = true;
    for (const owner of this.ring) {
      const length = this.queues.get(owner)!.length;
      position += Math.min(length, k);
      if (owner === waiter.owner) ahead = false;
      else if (ahead && length > k) position++;
    }
    return position;
  }

  private schedulePositionUpdate(): void {
    if (this.positionTimer || this.waiting === 0) return;
    this.positionTimer = setTimeout(() => {
      this.positionTimer = undefined;
      for (const queue of this.queues.values()) {
        for (const waiter of queue) {
          const position = this.positionOf(waiter);
          if (position !== waiter.position) {
            waiter.position = position;
            waiter.options.onPosition?.(position);
          }
        }
      }
    }, this.positionIntervalMs);
    this.positionTimer.unref?.();
  }
}
