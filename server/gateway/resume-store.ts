import { randomBytes } from 'node:crypto';
import { ErrorCode, type ErrFrame, type ResumeFrame } from '../../protocol/index.js';
import type { Config } from '../config/config.js';
import type { Telemetry } from '../telemetry/events.js';
import type { Logger } from '../telemetry/logger.js';
import type { StopCause } from './request-lifecycle.js';
import { ResumableHost, type ResumeLedger, type ResumeTarget } from './resume-host.js';
import { newResumeToken, tokenDigest, tokenMatches } from './resume-token.js';
import type { StreamRequest } from './stream-request.js';

/** Why a waiting request was cancelled without a resume. */
export type ResumeDrop = 'expired' | 'evicted' | 'shutdown';

/** What resuming reports to metrics. */
export interface ResumeEvents {
  resumed(): void;
  refused(): void;
  /** A detached request was cancelled: no resume within the window, the memory bound, or shutdown. */
  dropped(why: ResumeDrop): void;
}

/** What the store needs of the connection a `resume` arrives on (a Session). */
export interface ResumingSession extends ResumeTarget {
  readonly principal: { readonly keyName: string };
  /** Requests in flight on this connection. */
  readonly inFlight: number;
  hasRequest(id: string): boolean;
  /** Takes in a request resumed from another connection: from now on it counts here. */
  adopt(request: StreamRequest): void;
}

/** A refused `resume`, sent as an `err` without `id`. */
export type ResumeRefusal = Pick<ErrFrame, 'code' | 'message' | 'retryAfterMs' | 'details'>;

export interface ResumeStoreServices {
  telemetry: Telemetry;
  logger: Logger;
  /** Metrics of resumes and drops; absent with metrics off. */
  events?: ResumeEvents | undefined;
  /** Where a throw in one of the store's timers is reported (the fault boundary's sink). */
  report(error: unknown): void;
}

/** The connection a resume token was handed to, and the requests sent on it that are still kept. */
interface Owner {
  readonly digest: Buffer;
  readonly keyName: string;
  readonly requests: Map<string, ResumableHost>;
  bytes: number;
  /** Its connection is still open. */
  open: boolean;
}

/** Trimming frees this fraction of the bound beyond what is needed (see `shed`). */
const TRIM_SLACK = 16;
/** One answer for a wrong session, token or key, so a guess learns nothing about which it was. */
const NO_MATCH = 'no resumable request matches: unknown or expired session, wrong token, or another API key';

/**
 * The resume window: the frames of every running or just-ended request, kept for
 * RESUME_WINDOW_MS after it ends or its connection drops, within RESUME_CONNECTION_BYTES per
 * connection and RESUME_TOTAL_BYTES in all. A request whose connection dropped is detached and
 * paused; a `resume` with its connection's session id and token, from a connection with the same
 * API key, replays what the client lacks and attaches it there. A request left alone for the window,
 * or dropped for memory, is cancelled and its slot freed.
 */
export class ResumeStore implements ResumeLedger {
  private readonly owners = new Map<string, Owner>();
  /** By when they ended, oldest first: the first to go when memory runs short. */
  private readonly endedHosts = new Set<ResumableHost>();
  /** By when they were detached, oldest first: next to go, and their requests are cancelled. */
  private readonly detachedHosts = new Set<ResumableHost>();
  /** Running on a connection, oldest first: only frames already sent are trimmed from these. */
  private readonly attachedHosts = new Set<ResumableHost>();
  private readonly hosts = new WeakMap<StreamRequest, ResumableHost>();
  /** Compared against when the session is unknown, so that case takes as long as a wrong token. */
  private readonly decoy = randomBytes(32);
  private total = 0;
  private closed = false;
  private shedding = false;

  constructor(
    private readonly config: Pick<Config, 'resumeWindowMs' | 'resumeConnectionBytes' | 'resumeTotalBytes' | 'maxStreamsPerConnection'>,
    private readonly services: ResumeStoreServices,
  ) {}

  /** True while requests are kept for a resume (a window is set and the service is not stopping). */
  get enabled(): boolean {
    return this.config.resumeWindowMs > 0 && !this.closed;
  }

  /** Estimated memory of every kept frame. */
  get bytes(): number {
    return this.total;
  }

  /** Requests whose connection dropped, waiting for a resume. */
  get detachedCount(): number {
    return this.detachedHosts.size;
  }

  /** Registers a connection; returns the resume token for its `hello`, or undefined when resuming is off. */
  open(sessionId: string, keyName: string): string | undefined {
    if (!this.enabled) return undefined;
    const token = newResumeToken();
    this.owners.set(sessionId, { digest: tokenDigest(token), keyName, requests: new Map(), bytes: 0, open: true });
    return token;
  }

  /** The connection closed: its record goes once none of its requests is kept. */
  sessionClosed(sessionId: string): void {
    const owner = this.owners.get(sessionId);
    if (!owner) return;
    owner.open = false;
    if (owner.requests.size === 0) this.owners.delete(sessionId);
  }

  /** Makes a request through `create` with a host that numbers and keeps its frames. */
  admit(session: ResumeTarget, requestId: string, create: (host: ResumableHost) => StreamRequest): StreamRequest {
    const owner = this.enabled ? this.owners.get(session.id) : undefined;
    const host = new ResumableHost(session, session.id, owner ? this : undefined, this.services.telemetry);
    const request = create(host);
    host.request = request;
    this.hosts.set(request, host);
    if (owner) {
      // The id was free on the connection, so one kept under it has ended (or moved on): the id names the new one now.
      const earlier = owner.requests.get(requestId);
      if (earlier) this.remove(earlier);
      owner.requests.set(requestId, host);
      this.attachedHosts.add(host);
    }
    return request;
  }

  /**
   * The request's connection dropped: keeps it, paused, for a resume within the window. False when
   * it cannot be kept (resuming off, shutting down, dropped for memory): the caller cancels it.
   */
  detach(request: StreamRequest): boolean {
    const host = this.hosts.get(request);
    if (!host || !host.isKept || host.finished || this.closed) return false;
    // Only a request that holds a slot is worth keeping: one still waiting has produced nothing a
    // client could miss, and keeping it would let closed connections fill the queue for the window.
    if (request.state !== 'generating') return false;
    host.detach();
    this.attachedHosts.delete(host);
    this.detachedHosts.add(host);
    host.timer = this.after(this.config.resumeWindowMs, () => this.expire(host));
    return true;
  }

  /**
   * Handles a `resume` from `session`: undefined when it took (the frames from `fromSeq` on are on
   * their way, and a running request now belongs to `session`), else why not.
   */
  resume(session: ResumingSession, frame: ResumeFrame): ResumeRefusal | undefined {
    const refusal = this.take(session, frame);
    if (refusal) this.services.events?.refused();
    return refusal;
  }

  /** Shutdown: cancels the detached requests, forgets every kept frame, refuses resumes from now on. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const host of [...this.detachedHosts]) this.drop(host, 'shutdown', 'shutdown');
    for (const host of [...this.endedHosts, ...this.attachedHosts]) this.remove(host);
    this.owners.clear();
  }

  kept(host: ResumableHost, bytes: number): void {
    const owner = this.owners.get(host.ownerId);
    if (owner) owner.bytes += bytes;
    this.total += bytes;
    this.enforce(owner);
  }

  ended(host: ResumableHost): void {
    if (!host.isKept) return;
    this.attachedHosts.delete(host);
    this.detachedHosts.delete(host);
    this.endedHosts.add(host);
    // A detached request keeps the deadline its drop set; one that ended on its connection gets a window from now.
    host.timer ??= this.after(this.config.resumeWindowMs, () => this.remove(host));
  }

  private take(session: ResumingSession, frame: ResumeFrame): ResumeRefusal | undefined {
    if (this.closed) return { code: ErrorCode.shuttingDown, message: 'the server is shutting down', retryAfterMs: 5000 };
    if (!this.enabled) return { code: ErrorCode.resumeFailed, message: 'resuming is off on this server (RESUME_WINDOW_MS=0)' };
    const owner = this.owners.get(frame.session);
    // Always one digest comparison, whether the session exists or not.
    const tokenOk = tokenMatches(frame.token, owner?.digest ?? this.decoy);
    if (!owner || !tokenOk || owner.keyName !== session.principal.keyName) return { code: ErrorCode.resumeFailed, message: NO_MATCH };
    const host = owner.requests.get(frame.id);
    if (!host) return { code: ErrorCode.resumeFailed, message: `request "${frame.id}" is not kept: it never arrived, or its window passed` };
    if (frame.fromSeq > host.lastSeq + 1) {
      return { code: ErrorCode.resumeFailed, message: `fromSeq ${frame.fromSeq} is past the last frame of the request (${host.lastSeq})`, details: { lastSeq: host.lastSeq } };
    }
    const firstSeq = host.window.firstSeq;
    if (frame.fromSeq < firstSeq) {
      // The client can never get those frames back: the request is of no use to anyone now.
      if (host.detached && !host.finished) this.drop(host, 'evicted', 'disconnected');
      return { code: ErrorCode.resumeFailed, message: `frames before seq ${firstSeq} are no longer kept`, details: { firstSeq } };
    }
    if (host.finished) {
      // Each connection gets an ended request's frames once: repeated resumes cannot multiply them.
      if (host.replayedTo.has(session)) return { code: ErrorCode.resumeFailed, message: `request "${host.id}" has ended and was already replayed on this connection` };
      host.replayedTo.add(session);
      host.replayTo(session, frame.fromSeq);
    } else {
      const refusal = this.attach(session, host, frame.fromSeq);
      if (refusal) return refusal;
    }
    this.services.events?.resumed();
    this.services.logger.info({ event: 'resume', session: host.ownerId, request: host.id, on: session.id, fromSeq: frame.fromSeq, lastSeq: host.lastSeq, ended: host.finished }, 'request resumed');
    return undefined;
  }

  /**
   * Moves a running request to `session`, whether it waits detached or still runs on another
   * connection (that one may be half-open: the client, which holds the token, knows better).
   */
  private attach(session: ResumingSession, host: ResumableHost, fromSeq: number): ResumeRefusal | undefined {
    const previous = host.target;
    if (previous === session && !host.detached) return { code: ErrorCode.resumeFailed, message: `request "${host.id}" is already attached to this connection` };
    if (session.hasRequest(host.id)) return { code: ErrorCode.duplicateId, message: `request "${host.id}" is already in flight on this connection` };
    // The new connection's own limits apply to what it takes over.
    if (session.inFlight >= this.config.maxStreamsPerConnection) {
      return {
        code: ErrorCode.tooManyStreams,
        message: `at most ${this.config.maxStreamsPerConnection} requests may be in flight on one connection`,
        details: { limit: this.config.maxStreamsPerConnection },
      };
    }
    // Counted here before it stops counting there, so the total never passes through zero.
    session.adopt(host.request);
    previous.release(host.id);
    if (host.detached) {
      clearTimeout(host.timer);
      host.timer = undefined;
      this.detachedHosts.delete(host);
      this.attachedHosts.add(host);
    }
    host.attach(session, fromSeq);
    return undefined;
  }

  /** No resume came within the window: a request still running is cancelled, its frames forgotten. */
  private expire(host: ResumableHost): void {
    if (host.finished) return this.remove(host);
    this.drop(host, 'expired', 'disconnected');
  }

  /** Forgets a detached request and cancels it. */
  private drop(host: ResumableHost, why: ResumeDrop, cause: StopCause): void {
    // Forgotten first, so the frames its cancel produces are not kept (nor counted) again.
    this.remove(host);
    this.services.events?.dropped(why);
    this.services.logger.info({ event: 'resume_dropped', why, session: host.ownerId, request: host.id, lastSeq: host.lastSeq }, 'detached request cancelled');
    host.request.cancel(cause);
  }

  private remove(host: ResumableHost): void {
    if (!host.isKept) return;
    clearTimeout(host.timer);
    host.timer = undefined;
    const freed = host.stopKeeping();
    this.total -= freed;
    this.endedHosts.delete(host);
    this.detachedHosts.delete(host);
    this.attachedHosts.delete(host);
    const owner = this.owners.get(host.ownerId);
    if (!owner) return;
    owner.bytes -= freed;
    if (owner.requests.get(host.id) === host) owner.requests.delete(host.id);
    if (!owner.open && owner.requests.size === 0) this.owners.delete(host.ownerId);
  }

  /** Brings the connection's and the total memory back under their bounds. */
  private enforce(owner: Owner | undefined): void {
    // Dropping a request makes its cancel send frames, which land here again.
    if (this.shedding) return;
    this.shedding = true;
    try {
      const perConnection = this.config.resumeConnectionBytes;
      while (owner && owner.bytes > perConnection && this.shed(owner.bytes - perConnection, perConnection, owner)) {
        // Each round freed something.
      }
      const total = this.config.resumeTotalBytes;
      while (this.total > total && this.shed(this.total - total, total)) {
        // Each round freed something.
      }
    } finally {
      this.shedding = false;
    }
  }

  /**
   * Frees at least `excess` bytes if it can: false when nothing could be freed. Across connections,
   * least harmful first: an ended request's frames (oldest first); else a detached request (oldest
   * first), which is cancelled; else the oldest frames a running request already sent. Within one
   * connection (`owner`), frames already sent go before a detached request is cancelled, so a
   * request at its connection's bound loses its oldest frames, not its life. Never frames a replay
   * still has to send. Trimming takes a sixteenth of the bound more than needed, so a stream at its
   * bound trims once every so many frames rather than at each one.
   */
  private shed(excess: number, bound: number, owner?: Owner): boolean {
    const slack = excess + bound / TRIM_SLACK;
    if (owner) {
      const hosts = owner.requests;
      return (
        this.removeOldest(hosts.values()) ||
        this.trimOldest(hosts.values(), slack) ||
        this.evictOldest(hosts.values())
      );
    }
    return this.removeOldest(this.endedHosts) || this.evictOldest(this.detachedHosts) || this.trimOldest(this.attachedHosts.values(), slack);
  }

  /** Forgets the first ended request among `hosts` that no replay reads. */
  private removeOldest(hosts: Iterable<ResumableHost>): boolean {
    for (const host of hosts) {
      if (!host.finished || host.replaying) continue;
      this.remove(host);
      return true;
    }
    return false;
  }

  /** Forgets and cancels the first detached request among `hosts`. */
  private evictOldest(hosts: Iterable<ResumableHost>): boolean {
    for (const host of hosts) {
      if (!host.detached || host.finished) continue;
      this.drop(host, 'evicted', 'disconnected');
      return true;
    }
    return false;
  }

  /** Trims the already sent frames of the first running request among `hosts` that has some. */
  private trimOldest(hosts: Iterable<ResumableHost>, wanted: number): boolean {
    for (const host of hosts) {
      if (host.finished) continue;
      const freed = host.window.trim(wanted, host.trimmableBefore);
      if (freed === 0) continue;
      this.total -= freed;
      const owner = this.owners.get(host.ownerId);
      if (owner) owner.bytes -= freed;
      return true;
    }
    return false;
  }

  /** A timer that never keeps the process alive and whose throw is reported, not fatal. */
  private after(ms: number, body: () => void): ReturnType<typeof setTimeout> {
    const timer = setTimeout(() => {
      try {
        body();
      } catch (error) {
        this.services.report(error);
      }
    }, ms);
    timer.unref();
    return timer;
  }
}
