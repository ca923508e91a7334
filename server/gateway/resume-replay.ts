import type { ServerFrame } from '../../protocol/index.js';
import type { FrameWindow } from './resume-window.js';

/** The connection a replay writes to. */
export interface ReplayTarget {
  send(frame: ServerFrame): void;
  /** A promise while the socket cannot take more; undefined when it can. */
  waitWritable(): Promise<void> | undefined;
  guarded<A extends unknown[]>(body: (...args: A) => void): (...args: A) => void;
}

/**
 * Sends the kept frames of one request, from a seq on, to a connection, under its flow control:
 * it pauses while the socket's buffer is above the high-water mark, so a replay never floods a
 * socket. Frames kept while it runs are sent too, in order; `done` runs once it caught up.
 */
export class Replay {
  private stopped = false;

  constructor(
    private readonly window: FrameWindow,
    private readonly target: ReplayTarget,
    private next: number,
    private readonly done: () => void,
  ) {}

  /** Seq of the first frame not sent yet: the target may still need every frame from it on. */
  get position(): number {
    return this.next;
  }

  /** Sends what the socket takes now, and goes on by itself once it drained. */
  run(): void {
    while (!this.stopped && this.next <= this.window.lastSeq) {
      const wait = this.target.waitWritable();
      if (wait) {
        void wait.then(this.target.guarded(() => this.run()));
        return;
      }
      const frame = this.window.at(this.next);
      // Only a store shutting down drops the frames of a replay under way; nothing more can go out.
      if (frame === undefined) return this.stop();
      this.next++;
      this.target.send(frame);
    }
    if (this.stopped) return;
    this.stopped = true;
    this.done();
  }

  /** Sends nothing more (the request moved on, or its connection closed); `done` is not called. */
  stop(): void {
    this.stopped = true;
  }
}
