import type { ErrFrame, ServerFrame } from '../../protocol/index.js';
import type { Telemetry } from '../telemetry/events.js';
import type { RequestHost } from './request-host.js';
import { Replay } from './resume-replay.js';
import { FrameWindow } from './resume-window.js';
import type { StreamRequest } from './stream-request.js';

/** What a resumable request needs of the connection it is attached to (a Session). */
export interface ResumeTarget extends RequestHost {
  readonly id: string;
  /** The request left this connection for another (a resume there): it no longer counts here. */
  release(id: string): void;
}

/** Where a host reports what its store accounts for. */
export interface ResumeLedger {
  /** One more frame of `host` is kept, counted for `bytes`. */
  kept(host: ResumableHost, bytes: number): void;
  /** The request of `host` claimed its terminal frame. */
  ended(host: ResumableHost): void;
}

/**
 * The host a request talks to instead of its connection. It numbers every frame of the request
 * (`seq`), keeps it for a resume, and passes it on to the connection the request is attached to.
 * When that connection drops, the request is detached: nothing is sent and the generation waits
 * (as under backpressure) instead of piling up text. A resume attaches it to a new connection,
 * which first gets the frames it lacks, then the rest as it comes.
 */
export class ResumableHost implements RequestHost {
  readonly window = new FrameWindow();
  /** Set right after the request is made. */
  request!: StreamRequest;
  /** Where frames go: the connection attached, or the one it was last on while detached. */
  private current: ResumeTarget;
  /** The catch-up of a resume under way; frames go out as they come only once it is done. */
  private replay: Replay | undefined;
  /** Replays of this request's frames under way (also of an ended one, which never goes live). */
  private replays = 0;
  private seq = 0;
  private paused: { promise: Promise<void>; wake: () => void } | undefined;
  /** False once the store stopped keeping this request's frames (resuming off, dropped, shut down). */
  private keeping: boolean;
  /** The connection dropped and no resume has taken the request yet. */
  detached = false;
  /** While detached: frames before this seq went out to the dropped connection (the rest never did). */
  private sentBeforeDrop = 1;
  /** The request claimed its terminal frame. */
  finished = false;
  /** Connections an ended request's frames were replayed to (each gets them once). */
  readonly replayedTo = new WeakSet<object>();
  /** Expiry (while detached) or removal (once ended) timer, set by the store. */
  timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    target: ResumeTarget,
    /** Session id the request was sent on: with the id, what a resume names. */
    readonly ownerId: string,
    private readonly ledger: ResumeLedger | undefined,
    private readonly telemetry: Telemetry,
  ) {
    this.current = target;
    this.keeping = ledger !== undefined;
  }

  get id(): string {
    return this.request.id;
  }

  get origin(): RequestHost['origin'] {
    return this.current.origin;
  }

  /** The token buckets of the connection attached: a resumed request spends the new connection's. */
  get limits(): RequestHost['limits'] {
    return this.current.limits;
  }

  /** The connection the request is on (or was last on, while detached). */
  get target(): ResumeTarget {
    return this.current;
  }

  /** Seq of the newest frame (0 before the first). */
  get lastSeq(): number {
    return this.seq;
  }

  get isKept(): boolean {
    return this.keeping;
  }

  /** A replay reads the kept frames: dropping them now would leave a gap. */
  get replaying(): boolean {
    return this.replay !== undefined || this.replays > 0;
  }

  /** Frames before this seq were sent to a connection (the client most likely has them): they may be trimmed. */
  get trimmableBefore(): number {
    if (this.detached) return this.sentBeforeDrop;
    return this.replay ? this.replay.position : this.seq + 1;
  }

  send(frame: ServerFrame): void {
    // Frames of a request are fresh objects made for this one send: numbered in place.
    (frame as { seq?: number }).seq = ++this.seq;
    const live = !this.detached && this.replay === undefined;
    if (live) this.current.send(frame);
    if (this.keeping) this.ledger!.kept(this, this.window.push(frame));
  }

  sendError(error: Omit<ErrFrame, 't'>): void {
    this.telemetry.error(error.code, error.message);
    this.send({ t: 'err', ...error });
  }

  waitWritable(): Promise<void> | undefined {
    if (!this.detached && this.replay === undefined) return this.current.waitWritable();
    if (!this.paused) {
      let wake!: () => void;
      const promise = new Promise<void>((resolve) => (wake = resolve));
      this.paused = { promise, wake };
    }
    return this.paused.promise;
  }

  /** Looked up at each call: the connection may change between two. */
  guarded<A extends unknown[]>(body: (...args: A) => void): (...args: A) => void {
    return (...args) => this.current.guarded(body)(...args);
  }

  ended(id: string): void {
    this.finished = true;
    this.current.ended(id);
    this.ledger?.ended(this);
  }

  /** The connection dropped: send nothing, pause the generation, keep what it still makes. */
  detach(): void {
    this.sentBeforeDrop = this.trimmableBefore;
    this.detached = true;
    this.replay?.stop();
    this.replay = undefined;
  }

  /**
   * Moves the request to `target` and sends it the kept frames from `fromSeq` on; once caught up,
   * frames go there as they come and the generation goes on.
   */
  attach(target: ResumeTarget, fromSeq: number): void {
    this.replay?.stop();
    this.current = target;
    this.detached = false;
    const replay = new Replay(this.window, target, fromSeq, () => {
      this.replay = undefined;
      this.resume();
    });
    this.replay = replay;
    replay.run();
  }

  /** Sends an ended request's kept frames from `fromSeq` on to `target`. */
  replayTo(target: ResumeTarget, fromSeq: number): void {
    this.replays++;
    new Replay(this.window, target, fromSeq, () => this.replays--).run();
  }

  /** Stops keeping frames (the store dropped the request); returns the bytes freed. */
  stopKeeping(): number {
    this.keeping = false;
    return this.window.clear();
  }

  private resume(): void {
    const paused = this.paused;
    this.paused = undefined;
    paused?.wake();
  }
}
