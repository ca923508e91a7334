import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ResumeFrame, ServerFrame } from '../../protocol/index.js';
import type { StopCause } from '../../server/gateway/request-lifecycle.js';
import type { ResumableHost } from '../../server/gateway/resume-host.js';
import { ResumeStore, type ResumeDrop, type ResumingSession } from '../../server/gateway/resume-store.js';
import { frameBytes } from '../../server/gateway/resume-window.js';
import type { StreamRequest } from '../../server/gateway/stream-request.js';
import { noTelemetry } from '../../server/telemetry/events.js';
import { createLogger } from '../../server/telemetry/logger.js';

/*
 * The store's bookkeeping with connections and requests played by plain objects: what each
 * connection was sent, what each request was told. The real server is under test in
 * tests/integration/resume.test.ts.
 */

const WINDOW_MS = 1000;

/** A connection as the store sees it: records what it is sent; `blocked` holds its socket full. */
class FakeSession implements ResumingSession {
  static count = 0;
  readonly id = `s${++FakeSession.count}`;
  readonly sent: ServerFrame[] = [];
  readonly requests = new Map<string, StreamRequest>();
  readonly limits = { chargeToken: () => undefined, tokenWaitMs: () => 0, admitShared: () => undefined };
  blocked: { promise: Promise<void>; release: () => void } | undefined;
  token: string | undefined;

  constructor(readonly store: ResumeStore, readonly principal = { keyName: 'alice' }) {
    this.token = store.open(this.id, principal.keyName);
  }

  get origin(): { session: string; remoteAddress: string; keyName: string } {
    return { session: this.id, remoteAddress: '127.0.0.1', keyName: this.principal.keyName };
  }

  get inFlight(): number {
    return this.requests.size;
  }

  send(frame: ServerFrame): void {
    this.sent.push(frame);
  }
  sendError(): void {
    throw new Error('requests send errors through their host');
  }
  waitWritable(): Promise<void> | undefined {
    return this.blocked?.promise;
  }
  guarded<A extends unknown[]>(body: (...args: A) => void): (...args: A) => void {
    return body;
  }
  ended(id: string): void {
    this.requests.delete(id);
  }
  release(id: string): void {
    this.requests.delete(id);
  }
  hasRequest(id: string): boolean {
    return this.requests.has(id);
  }
  adopt(request: StreamRequest): void {
    this.requests.set(request.id, request);
  }

  block(): void {
    let release!: () => void;
    const promise = new Promise<void>((resolve) => (release = resolve));
    this.blocked = { promise, release: () => ((this.blocked = undefined), release()) };
  }

  /** Starts a request whose frames the test makes through `frames.*`. */
  start(id: string): FakeRequest {
    let request!: FakeRequest;
    this.store.admit(this, id, (host) => (request = new FakeRequest(id, host)) as unknown as StreamRequest);
    this.requests.set(id, request as unknown as StreamRequest);
    return request;
  }

  /** The socket dropped: its requests are detached (or cancelled when the store will not keep them). */
  drop(): void {
    for (const request of this.requests.values()) if (!this.store.detach(request)) (request as unknown as FakeRequest).cancel('disconnected');
    this.store.sessionClosed(this.id);
  }

  resumeFrame(request: FakeRequest, fromSeq: number, overrides: Partial<ResumeFrame> = {}): ResumeFrame {
    return { t: 'resume', id: request.id, session: this.id, token: this.token!, fromSeq, ...overrides };
  }

  text(id: string): string {
    return this.sent.map((frame) => (frame.t === 'tok' && frame.id === id ? frame.text : '')).join('');
  }
}

/** A request as the store sees it: sends through its host, and ends once (cancel or end). */
class FakeRequest {
  cancelled: StopCause | undefined;
  /** Kept on a drop only while generating; set to `queued` to model one still waiting for a slot. */
  state: 'queued' | 'generating' = 'generating';
  private done = false;
  constructor(readonly id: string, readonly host: ResumableHost) {}
  tok(text: string): void {
    this.host.send({ t: 'tok', id: this.id, text });
  }
  end(): void {
    if (this.done) return;
    this.done = true;
    this.host.ended(this.id);
    this.host.send({ t: 'end', id: this.id, reason: 'stop', usage: { promptTokens: 1, completionTokens: 1 }, timings: { queueMs: 0, ttftMs: 0, totalMs: 0 } });
  }
  cancel(cause: StopCause): void {
    if (this.done) return;
    this.cancelled = cause;
    this.done = true;
    this.host.ended(this.id);
  }
}

const drops: ResumeDrop[] = [];
let resumed = 0;
let refused = 0;

function store(overrides: Partial<ConstructorParameters<typeof ResumeStore>[0]> = {}): ResumeStore {
  return new ResumeStore(
    { resumeWindowMs: WINDOW_MS, resumeConnectionBytes: 64 * 1024, resumeTotalBytes: 1024 * 1024, maxStreamsPerConnection: 8, ...overrides },
    {
      telemetry: noTelemetry,
      logger: createLogger('silent'),
      events: { resumed: () => resumed++, refused: () => refused++, dropped: (why) => drops.push(why) },
      report: (error) => {
        throw error;
      },
    },
  );
}

beforeEach(() => {
  vi.useFakeTimers();
  drops.length = 0;
  resumed = 0;
  refused = 0;
});

afterEach(() => {
  vi.useRealTimers();
});

describe('numbering and replay', () => {
  it('numbers frames from 1, replays what the new connection lacks, then streams live there', () => {
    const resumes = store();
    const first = new FakeSession(resumes);
    const request = first.start('r1');
    request.tok('a');
    request.tok('b');
    request.tok('c');
    expect(first.sent.map((frame) => 'seq' in frame && frame.seq)).toEqual([1, 2, 3]);
    first.drop();
    expect(resumes.detachedCount).toBe(1);
    // Made while detached: kept, not sent anywhere.
    request.tok('d');
    expect(first.sent).toHaveLength(3);
    const second = new FakeSession(resumes);
    // The client had seq 1 and 2; 3 was lost in flight.
    expect(resumes.resume(second, first.resumeFrame(request, 3))).toBeUndefined();
    expect(second.sent).toEqual([
      { t: 'tok', id: 'r1', text: 'c', seq: 3 },
      { t: 'tok', id: 'r1', text: 'd', seq: 4 },
    ]);
    request.tok('e');
    request.end();
    expect(second.sent.map((frame) => 'seq' in frame && frame.seq)).toEqual([3, 4, 5, 6]);
    expect(second.inFlight).toBe(0);
    expect([resumes.detachedCount, resumed, refused]).toEqual([0, 1, 0]);
  });

  it('pauses the generation while detached and lets it go on once the replay caught up', async () => {
    const resumes = store();
    const first = new FakeSession(resumes);
    const request = first.start('r1');
    request.tok('a');
    expect(request.host.waitWritable()).toBeUndefined();
    first.drop();
    const paused = request.host.waitWritable();
    expect(paused).toBeInstanceOf(Promise);
    let goneOn = false;
    void paused!.then(() => (goneOn = true));
    const second = new FakeSession(resumes);
    second.block();
    resumes.resume(second, first.resumeFrame(request, 1));
    await vi.advanceTimersByTimeAsync(0);
    // The new socket is full: the replay waits, and so does the generation.
    expect(goneOn).toBe(false);
    second.blocked!.release();
    await vi.advanceTimersByTimeAsync(0);
    expect(goneOn).toBe(true);
    expect(request.host.waitWritable()).toBeUndefined();
  });

  it('replays an ended request from any kept seq, once per connection', () => {
    const resumes = store();
    const first = new FakeSession(resumes);
    const request = first.start('r1');
    request.tok('a');
    request.end();
    const second = new FakeSession(resumes);
    expect(resumes.resume(second, first.resumeFrame(request, 2))).toBeUndefined();
    expect(second.sent).toMatchObject([{ t: 'end', seq: 2 }]);
    // A second resume on the same connection would only multiply the frames.
    expect(resumes.resume(second, first.resumeFrame(request, 1))).toMatchObject({ code: 'resume_failed', message: expect.stringContaining('already replayed') });
    expect(second.sent.map((frame) => frame.t)).toEqual(['end']);
    // Nothing to adopt: the connection carries no request for it.
    expect(second.inFlight).toBe(0);
    const third = new FakeSession(resumes);
    expect(resumes.resume(third, first.resumeFrame(request, 1))).toBeUndefined();
    expect(third.sent.map((frame) => frame.t)).toEqual(['tok', 'end']);
    // Gone once its window passed.
    vi.advanceTimersByTime(WINDOW_MS);
    expect(resumes.resume(new FakeSession(resumes), first.resumeFrame(request, 1))).toMatchObject({ code: 'resume_failed' });
    expect(resumes.bytes).toBe(0);
  });

  it('moves a request still attached to another connection (that one may be half-open)', () => {
    const resumes = store();
    const first = new FakeSession(resumes);
    const request = first.start('r1');
    request.tok('a');
    const second = new FakeSession(resumes);
    expect(resumes.resume(second, first.resumeFrame(request, 2))).toBeUndefined();
    expect(first.inFlight).toBe(0);
    expect(second.inFlight).toBe(1);
    request.tok('b');
    expect(first.sent).toHaveLength(1);
    expect(second.sent).toEqual([{ t: 'tok', id: 'r1', text: 'b', seq: 2 }]);
    // Resumed where it already is: refused, nothing changes.
    expect(resumes.resume(second, first.resumeFrame(request, 3))).toMatchObject({ code: 'resume_failed', message: expect.stringContaining('already attached') });
  });
});

describe('refusals', () => {
  it('answers a wrong token, an unknown session and another key alike', () => {
    const resumes = store();
    const first = new FakeSession(resumes);
    const request = first.start('r1');
    first.drop();
    const mallory = new FakeSession(resumes, { keyName: 'mallory' });
    const alice = new FakeSession(resumes);
    const answers = [
      resumes.resume(mallory, first.resumeFrame(request, 1)),
      resumes.resume(alice, first.resumeFrame(request, 1, { token: alice.token! })),
      resumes.resume(alice, first.resumeFrame(request, 1, { session: 'no-such-session' })),
    ];
    for (const answer of answers) expect(answer).toEqual(answers[0]);
    expect(answers[0]).toMatchObject({ code: 'resume_failed', message: expect.stringContaining('another API key') });
    expect([refused, resumed, resumes.detachedCount]).toEqual([3, 0, 1]);
    expect(resumes.resume(alice, first.resumeFrame(request, 1))).toBeUndefined();
  });

  it('refuses a fromSeq past the last frame, and an unknown id of a known session', () => {
    const resumes = store();
    const first = new FakeSession(resumes);
    const request = first.start('r1');
    request.tok('a');
    first.drop();
    const second = new FakeSession(resumes);
    expect(resumes.resume(second, first.resumeFrame(request, 3))).toMatchObject({ code: 'resume_failed', details: { lastSeq: 1 } });
    expect(resumes.resume(second, first.resumeFrame(request, 1, { id: 'r2' }))).toMatchObject({ code: 'resume_failed', message: expect.stringContaining('"r2" is not kept') });
    expect(resumes.resume(second, first.resumeFrame(request, 2))).toBeUndefined();
  });

  it("applies the new connection's stream cap and ids, and leaves the request waiting", () => {
    const resumes = store({ maxStreamsPerConnection: 1 });
    const first = new FakeSession(resumes);
    const request = first.start('r1');
    first.drop();
    const second = new FakeSession(resumes);
    const own = second.start('r1');
    expect(resumes.resume(second, first.resumeFrame(request, 1))).toMatchObject({ code: 'duplicate_id' });
    own.end();
    const other = second.start('x');
    expect(resumes.resume(second, first.resumeFrame(request, 1))).toMatchObject({ code: 'too_many_streams', details: { limit: 1 } });
    expect(resumes.detachedCount).toBe(1);
    other.end();
    expect(resumes.resume(second, first.resumeFrame(request, 1))).toBeUndefined();
  });

  it('keeps nothing and hands out no token when the window is 0', () => {
    const resumes = store({ resumeWindowMs: 0 });
    const session = new FakeSession(resumes);
    expect(session.token).toBeUndefined();
    const request = session.start('r1');
    request.tok('a');
    expect(session.sent).toEqual([{ t: 'tok', id: 'r1', text: 'a', seq: 1 }]);
    session.drop();
    expect(request.cancelled).toBe('disconnected');
    expect(resumes.bytes).toBe(0);
    expect(resumes.resume(session, session.resumeFrame(request, 1, { token: 'x' }))).toMatchObject({ code: 'resume_failed', message: expect.stringContaining('off') });
  });
});

describe('window and memory', () => {
  it('cancels a detached request once the window passed without a resume', () => {
    const resumes = store();
    const first = new FakeSession(resumes);
    const request = first.start('r1');
    request.tok('a');
    first.drop();
    vi.advanceTimersByTime(WINDOW_MS - 1);
    expect(request.cancelled).toBeUndefined();
    vi.advanceTimersByTime(1);
    expect(request.cancelled).toBe('disconnected');
    expect(drops).toEqual(['expired']);
    expect([resumes.bytes, resumes.detachedCount]).toEqual([0, 0]);
    expect(resumes.resume(new FakeSession(resumes), first.resumeFrame(request, 1))).toMatchObject({ code: 'resume_failed' });
  });

  it('cancels at once, rather than keeps, a dropped connection\'s request still waiting for a slot', () => {
    const resumes = store();
    const first = new FakeSession(resumes);
    const running = first.start('r1');
    running.tok('a');
    const waiting = first.start('r2');
    waiting.state = 'queued';
    first.drop();
    expect(waiting.cancelled).toBe('disconnected');
    expect(running.cancelled).toBeUndefined();
    expect(resumes.detachedCount).toBe(1);
  });

  it('frees memory from ended requests first, then cancels the oldest detached, then trims what was sent', () => {
    const frame = frameBytes({ t: 'tok', id: 'x', text: 'abcd' });
    const endFrame = frameBytes({ t: 'end', id: 'x', reason: 'stop', usage: { promptTokens: 1, completionTokens: 1 }, timings: { queueMs: 0, ttftMs: 0, totalMs: 0 } });
    const bound = 12 * frame;
    const resumes = store({ resumeConnectionBytes: bound, resumeTotalBytes: bound });
    const sessions = [new FakeSession(resumes), new FakeSession(resumes), new FakeSession(resumes), new FakeSession(resumes)];
    const [ended, oldDetached, newDetached, live] = sessions.map((session, index) => session.start(`r${index}`)) as [FakeRequest, FakeRequest, FakeRequest, FakeRequest];
    for (const request of [ended, oldDetached, newDetached]) for (let i = 0; i < 3; i++) request.tok('abcd');
    ended.end();
    sessions[1]!.drop();
    sessions[2]!.drop();
    expect(resumes.bytes).toBe(9 * frame + endFrame);
    const tokens = (count: number): void => {
      for (let i = 0; i < count; i++) live.tok('abcd');
    };
    // Over the bound: the ended request goes first, whole.
    tokens(1);
    expect(resumes.bytes).toBe(7 * frame);
    expect(resumes.resume(sessions[0]!, sessions[0]!.resumeFrame(ended, 1))).toMatchObject({ code: 'resume_failed' });
    tokens(5);
    expect([resumes.bytes, drops.length]).toEqual([bound, 0]);
    // Then the oldest detached request, which is cancelled.
    tokens(1);
    expect(oldDetached.cancelled).toBe('disconnected');
    expect(newDetached.cancelled).toBeUndefined();
    expect(drops).toEqual(['evicted']);
    tokens(3);
    expect(newDetached.cancelled).toBe('disconnected');
    expect(drops).toEqual(['evicted', 'evicted']);
    expect(resumes.detachedCount).toBe(0);
    // Then the frames the live request already sent, oldest first: a sixteenth of the bound more
    // than needed, so not at every frame (here two frames at once).
    tokens(2);
    expect(resumes.bytes).toBe(bound);
    tokens(1);
    expect(resumes.bytes).toBe(bound - frame);
    expect([live.host.window.firstSeq, live.host.window.lastSeq]).toEqual([3, 13]);
    expect(live.cancelled).toBeUndefined();
  });

  it("bounds one connection's frames, trimming its own sent frames and never the unsent ones of a replay", () => {
    const frame = frameBytes({ t: 'tok', id: 'x', text: 'abcd' });
    const resumes = store({ resumeConnectionBytes: 4 * frame });
    const first = new FakeSession(resumes);
    const request = first.start('r1');
    for (let i = 0; i < 6; i++) request.tok('abcd');
    expect(resumes.bytes).toBe(4 * frame);
    expect(request.host.window.firstSeq).toBe(3);
    first.drop();
    // A frame made after the drop (the token in flight): the oldest frames sent go, not the request.
    request.tok('abcd');
    expect(request.cancelled).toBeUndefined();
    expect([request.host.window.firstSeq, resumes.bytes, drops.length]).toEqual([5, 3 * frame, 0]);
    const second = new FakeSession(resumes);
    second.block();
    // Frames 1 to 4 are gone: a resume needing them is refused, and the request, of no use now, is cancelled.
    expect(resumes.resume(second, first.resumeFrame(request, 2))).toMatchObject({ code: 'resume_failed', details: { firstSeq: 5 } });
    expect(request.cancelled).toBe('disconnected');

    const third = new FakeSession(resumes);
    const other = third.start('r2');
    for (let i = 0; i < 4; i++) other.tok('abcd');
    third.drop();
    const fourth = new FakeSession(resumes);
    fourth.block();
    expect(resumes.resume(fourth, third.resumeFrame(other, 1))).toBeUndefined();
    // The replay waits for the socket; what the request makes meanwhile is kept, past the bound if need be.
    other.tok('abcd');
    expect(other.host.window.firstSeq).toBe(1);
    expect(fourth.sent).toHaveLength(0);
  });

  it('cancels the detached requests at shutdown and keeps nothing after', () => {
    const resumes = store();
    const first = new FakeSession(resumes);
    const detached = first.start('r1');
    detached.tok('a');
    first.drop();
    const second = new FakeSession(resumes);
    const running = second.start('r2');
    running.tok('b');
    resumes.close();
    expect(detached.cancelled).toBe('shutdown');
    expect(running.cancelled).toBeUndefined();
    expect(drops).toEqual(['shutdown']);
    expect(resumes.bytes).toBe(0);
    running.tok('c');
    expect(resumes.bytes).toBe(0);
    expect(resumes.enabled).toBe(false);
    expect(resumes.resume(second, first.resumeFrame(detached, 1))).toMatchObject({ code: 'shutting_down' });
    expect(new FakeSession(resumes).token).toBeUndefined();
  });
});
