/** One connection's frames waiting to be handled, in arrival order. */
export interface IngressQueue {
  /** Handles the oldest waiting frame; returns true while more wait. Must not throw. */
  handleNext(): boolean;
}

export interface IngressOptions {
  /** Main-loop time one turn may spend on queued frames before yielding to I/O. */
  sliceMs: number;
}

/**
 * Spreads the handling of received frames over turns of the event loop. Decoding a large frame
 * costs milliseconds; a burst of them from many connections, handled as the socket library hands
 * them over, would hold the loop for seconds (health checks and every other stream wait). Queued
 * frames are handled one per connection in turn, for at most `sliceMs` per turn, then the loop
 * polls I/O again. Small frames of a connection with nothing queued are handled at once.
 */
export class Ingress {
  private ring: IngressQueue[] = [];
  private scheduled = false;

  constructor(private readonly options: IngressOptions) {}

  /** True while frames of any connection wait: a new frame must queue behind them for fairness. */
  get busy(): boolean {
    return this.ring.length > 0;
  }

  /** The queue has frames waiting: it takes its turn from the next loop turn on. */
  enqueue(queue: IngressQueue): void {
    if (!this.ring.includes(queue)) this.ring.push(queue);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.run());
    }
  }

  private run(): void {
    this.scheduled = false;
    const deadline = performance.now() + this.options.sliceMs;
    while (this.ring.length > 0 && performance.now() < deadline) {
      const queue = this.ring.shift()!;
      // A queue with more frames goes to the back of the ring: one frame per connection per round.
      if (queue.handleNext()) this.ring.push(queue);
    }
    if (this.ring.length > 0) {
      this.scheduled = true;
      setImmediate(() => this.run());
    }
  }
}
