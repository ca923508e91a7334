import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EndFrame, ErrFrame, HelloFrame, QueuedFrame, ServerFrame, StartFrame, TokFrame, WebSocketConstructor } from '../../protocol/index.js';
import type { Service } from '../../server/app.js';
import { generateKey } from '../../server/auth/api-keys.js';
import type { Config } from '../../server/config/config.js';
import { RawSocket } from '../helpers/raw-socket.js';
import { connectClient, metricTotal, startTestService, tempDir, waitForIdle } from '../helpers/service.js';
import { waitFor, within } from '../helpers/wait.js';

const PROMPT = 'Alice was beginning to get very tired';
/** Sampled, so only the seed makes two runs alike. */
const GEN = { prompt: PROMPT, maxTokens: 300, temperature: 0.8, seed: 7 };
/** A few hundred tokens a second: a stream runs long enough to be cut in the middle. */
const SLOW: Partial<Config> = { tokenLimitTps: 400, tokenLimitBurst: 1 };
/** The shipped window (the test service turns resuming off). */
const RESUMING: Partial<Config> = { resumeWindowMs: 30_000 };

type RequestFrame = QueuedFrame | StartFrame | TokFrame | EndFrame | ErrFrame;

const ofRequest = (frames: ServerFrame[], id: string): RequestFrame[] => frames.filter((frame): frame is RequestFrame => 'id' in frame && frame.id === id);
const textOf = (frames: ServerFrame[]): string => frames.map((frame) => (frame.t === 'tok' ? frame.text : '')).join('');
const seqsOf = (frames: ServerFrame[]): number[] => frames.map((frame) => ('seq' in frame ? frame.seq : undefined) ?? -1);
const terminals = (frames: ServerFrame[]): ServerFrame[] => frames.filter((frame) => frame.t === 'end' || (frame.t === 'err' && frame.id !== undefined));
const toks = (socket: RawSocket, id: string): number => socket.frames.filter((frame) => frame.t === 'tok' && frame.id === id).length;
const range = (count: number): number[] => Array.from({ length: count }, (_, index) => index + 1);

function credentials(socket: RawSocket): { session: string; token: string } {
  const hello = socket.frames[0] as HelloFrame;
  expect(hello.resumeToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
  return { session: hello.session, token: hello.resumeToken! };
}

/** Cuts the TCP connection with no close handshake, as a network loss would, and waits until the server has the request detached. */
async function kill(service: Service, socket: RawSocket, detached: number): Promise<void> {
  socket.socket.terminate();
  await socket.closed;
  await waitFor(() => service.resume.detachedCount === detached, 10_000, () => `${detached} detached requests (have ${service.resume.detachedCount})`);
}

/** The text of an uninterrupted run of `GEN` on a connection of its own. */
async function referenceRun(service: Service, options: Parameters<typeof RawSocket.open>[1] = {}): Promise<{ text: string; end: EndFrame }> {
  const socket = await RawSocket.open(service.streamUrl, options);
  socket.send({ t: 'gen', id: 'ref', ...GEN });
  const frames = await socket.request('ref');
  socket.close();
  return { text: textOf(frames), end: frames.at(-1) as EndFrame };
}

describe('resuming a stream cut mid-way', () => {
  let service: Service;
  let reference: { text: string; end: EndFrame };

  beforeAll(async () => {
    service = await startTestService({ ...SLOW, ...RESUMING, parallelSequences: 2 });
    reference = await referenceRun(service);
    expect(reference.end).toMatchObject({ reason: 'length', usage: { completionTokens: GEN.maxTokens } });
  });

  afterAll(async () => {
    await service?.shutdown(0);
  });

  it('replays what was lost and goes on: the same text as an uninterrupted run, every seq once', async () => {
    const resumesBefore = await metricTotal(service, 'llm_stream_resumes_total');
    const first = await RawSocket.open(service.streamUrl);
    const { session, token } = credentials(first);
    first.send({ t: 'gen', id: 'g', ...GEN });
    await first.until(() => toks(first, 'g') >= 5, 10_000, 'five tok frames');
    await kill(service, first, 1);
    const before = ofRequest(first.frames, 'g');
    expect(terminals(before)).toEqual([]);
    // The request waits, paused, still counted in flight.
    expect(service.sessions.inFlight).toBe(1);

    const second = await RawSocket.open(service.streamUrl);
    second.send({ t: 'resume', id: 'g', session, token, fromSeq: before.at(-1)!.seq! + 1 });
    const after = await second.request('g');
    const all = [...before, ...after];
    expect(seqsOf(all)).toEqual(range(all.length));
    expect(terminals(all)).toHaveLength(1);
    expect(textOf(all)).toBe(reference.text);
    expect(after.at(-1)).toMatchObject({ t: 'end', reason: 'length', usage: reference.end.usage });
    expect(await metricTotal(service, 'llm_stream_resumes_total')).toBe(resumesBefore + 1);
    second.close();
    await waitForIdle(service);
  });

  it('replays an ended request from any seq still kept', async () => {
    const socket = await RawSocket.open(service.streamUrl);
    const { session, token } = credentials(socket);
    socket.send({ t: 'gen', id: 'done', ...GEN, maxTokens: 20 });
    const frames = await socket.request('done');
    const other = await RawSocket.open(service.streamUrl);
    other.send({ t: 'resume', id: 'done', session, token, fromSeq: 2 });
    const replayed = await other.request('done');
    expect(replayed).toEqual(frames.slice(1));
    socket.close();
    other.close();
  });

  it('moves a request that is still attached to a live connection, which then gets nothing more', async () => {
    const first = await RawSocket.open(service.streamUrl);
    const { session, token } = credentials(first);
    first.send({ t: 'gen', id: 'm', ...GEN });
    await first.until(() => toks(first, 'm') >= 3, 10_000, 'three tok frames');
    const second = await RawSocket.open(service.streamUrl);
    second.send({ t: 'resume', id: 'm', session, token, fromSeq: 1 });
    const moved = await second.request('m');
    expect(seqsOf(moved)).toEqual(range(moved.length));
    expect(textOf(moved)).toBe(reference.text);
    // The first connection heard no terminal frame, and no longer has the request.
    expect(terminals(ofRequest(first.frames, 'm'))).toEqual([]);
    first.send({ t: 'cancel', id: 'm' });
    expect(await first.next((frame) => frame.t === 'err')).toMatchObject({ code: 'unknown_id', details: { id: 'm' } });
    first.close();
    second.close();
    await waitForIdle(service);
  });

  it("lets the typed client's for-await run through a dropped connection", async () => {
    const sockets: WebSocket[] = [];
    class TrackedWebSocket extends WebSocket {
      constructor(...args: ConstructorParameters<typeof WebSocket>) {
        super(...args);
        sockets.push(this);
      }
    }
    const client = await connectClient(service, { WebSocket: TrackedWebSocket as unknown as WebSocketConstructor, reconnect: { initialDelayMs: 20, maxDelayMs: 200 } });
    const firstSession = client.hello.session;
    const stream = client.generate(GEN);
    let text = '';
    let pieces = 0;
    for await (const piece of stream) {
      text += piece;
      // Cut from under the client, mid-stream: no close handshake.
      if (++pieces === 5) sockets[0]!.terminate();
    }
    expect(text).toBe(reference.text);
    expect(await stream.end).toMatchObject({ reason: 'length', usage: reference.end.usage });
    expect(client.reconnects).toBe(1);
    expect(sockets).toHaveLength(2);
    expect(client.hello.session).not.toBe(firstSession);
    client.close();
    await waitForIdle(service);
  });
});

describe('who may resume', () => {
  let service: Service;
  const alice = generateKey('alice');
  const bob = generateKey('bob');

  beforeAll(async () => {
    const file = path.join(tempDir('resume-keys'), 'keys.json');
    await writeFile(file, JSON.stringify({ keys: [alice.entry, bob.entry] }));
    service = await startTestService({ ...SLOW, ...RESUMING, keysFile: file });
  });

  afterAll(async () => {
    await service?.shutdown(0);
  });

  const as = (key: string): Parameters<typeof RawSocket.open>[1] => ({ protocols: ['llm.v1.msgpack', `bearer.${key}`] });

  it('refuses another key and a wrong token alike, without an id field; the owner then resumes', async () => {
    const first = await RawSocket.open(service.streamUrl, as(alice.key));
    const { session, token } = credentials(first);
    first.send({ t: 'gen', id: 'g', ...GEN });
    await first.until(() => toks(first, 'g') >= 2, 10_000, 'two tok frames');
    await kill(service, first, 1);
    const fromSeq = ofRequest(first.frames, 'g').at(-1)!.seq! + 1;

    const thief = await RawSocket.open(service.streamUrl, as(bob.key));
    thief.send({ t: 'resume', id: 'g', session, token, fromSeq });
    const refused = (await thief.next((frame) => frame.t === 'err')) as ErrFrame;
    expect(refused).toMatchObject({ code: 'resume_failed', details: { t: 'resume', id: 'g' } });
    expect(refused.id).toBeUndefined();

    const owner = await RawSocket.open(service.streamUrl, as(alice.key));
    owner.send({ t: 'resume', id: 'g', session, token: `${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`, fromSeq });
    const wrongToken = (await owner.next((frame) => frame.t === 'err')) as ErrFrame;
    // One answer for every failed proof: nothing tells a guesser which part was wrong.
    expect(wrongToken).toEqual(refused);
    expect(service.resume.detachedCount).toBe(1);

    owner.send({ t: 'resume', id: 'g', session, token, fromSeq });
    const rest = await owner.request('g');
    expect(rest.at(-1)).toMatchObject({ t: 'end', reason: 'length' });
    expect(await metricTotal(service, 'llm_stream_resumes_total')).toBe(3);
    for (const socket of [thief, owner]) socket.close();
    await waitForIdle(service);
  });
});

describe('the resume window', () => {
  let service: Service;

  beforeAll(async () => {
    service = await startTestService({ ...SLOW, resumeWindowMs: 2000 });
  });

  afterAll(async () => {
    await service?.shutdown(0);
  });

  it('cancels a request nobody resumed once the window passed, and frees its slot', async () => {
    const socket = await RawSocket.open(service.streamUrl);
    const { session, token } = credentials(socket);
    socket.send({ t: 'gen', id: 'g', ...GEN, maxTokens: 2000 });
    await socket.until(() => toks(socket, 'g') >= 2, 10_000, 'two tok frames');
    await kill(service, socket, 1);
    // Held for the window: still in flight, its slot still leased.
    expect(service.sessions.inFlight).toBe(1);
    expect(service.pool.loadedModels()[0]!.scheduler.busy).toBe(1);
    await waitFor(() => service.resume.detachedCount === 0, 15_000, 'the window to pass');
    await waitForIdle(service);
    expect(await metricTotal(service, 'llm_detached_requests_cancelled_total')).toBe(1);
    const late = await RawSocket.open(service.streamUrl);
    late.send({ t: 'resume', id: 'g', session, token, fromSeq: 1 });
    expect(await late.next((frame) => frame.t === 'err')).toMatchObject({ code: 'resume_failed' });
    late.close();
  });

  it('cancels detached requests at shutdown instead of waiting out the grace period', async () => {
    const socket = await RawSocket.open(service.streamUrl);
    socket.send({ t: 'gen', id: 'g', ...GEN, maxTokens: 2000 });
    await socket.until(() => toks(socket, 'g') >= 2, 10_000, 'two tok frames');
    await kill(service, socket, 1);
    const dropped = await metricTotal(service, 'llm_detached_requests_cancelled_total');
    await within(service.shutdown(120_000), 30_000, 'a shutdown that does not wait for the detached request');
    expect(service.sessions.inFlight).toBe(0);
    expect(await metricTotal(service, 'llm_detached_requests_cancelled_total')).toBe(dropped + 1);
  });
});

describe('memory under a storm of dropped connections', () => {
  const TOTAL = 24 * 1024;
  const PER_CONNECTION = 8 * 1024;
  const CLIENTS = 10;
  let service: Service;

  beforeAll(async () => {
    service = await startTestService({ parallelSequences: 8, resumeTotalBytes: TOTAL, resumeConnectionBytes: PER_CONNECTION, resumeWindowMs: 120_000 });
  });

  afterAll(async () => {
    await service?.shutdown(0);
  });

  it('stays under the bound by evicting the oldest detached requests, which are cancelled', async () => {
    let most = 0;
    const sampler = setInterval(() => (most = Math.max(most, service.resume.bytes)), 2);
    const dropped: { session: string; token: string; fromSeq: number }[] = [];
    const outcomes: string[] = [];
    try {
      for (let client = 0; client < CLIENTS; client++) {
        const socket = await RawSocket.open(service.streamUrl);
        const { session, token } = credentials(socket);
        socket.send({ t: 'gen', id: 'g', prompt: PROMPT, maxTokens: 1500, temperature: 0.8 });
        await socket.until(() => toks(socket, 'g') >= 80, 20_000, '80 tok frames');
        socket.socket.terminate();
        await socket.closed;
        const before = ofRequest(socket.frames, 'g');
        dropped.push({ session, token, fromSeq: before.at(-1)!.seq! + 1 });
        // Each drop is seen before the next client starts, so "oldest" is well defined.
        await waitFor(async () => service.resume.detachedCount + (await metricTotal(service, 'llm_detached_requests_cancelled_total')) === client + 1, 10_000, 'the drop to be seen');
        most = Math.max(most, service.resume.bytes);
      }
      expect(most).toBeLessThanOrEqual(TOTAL);
      const evicted = await metricTotal(service, 'llm_detached_requests_cancelled_total');
      expect(evicted).toBeGreaterThan(0);
      expect(service.resume.detachedCount).toBe(CLIENTS - evicted);
      // An evicted request is cancelled: only the kept ones still hold a slot.
      expect(service.sessions.inFlight).toBe(CLIENTS - evicted);

      // Each client comes back, newest first: the newest get the rest of their stream (whose
      // frames push out older ones in turn), the oldest find nothing.
      for (const { session, token, fromSeq } of [...dropped].reverse()) {
        const socket = await RawSocket.open(service.streamUrl);
        socket.send({ t: 'resume', id: 'g', session, token, fromSeq });
        const answer = await socket.next((frame) => (frame.t === 'err' && frame.details?.t === 'resume') || ('id' in frame && frame.id === 'g'));
        if (answer.t === 'err') {
          expect(answer).toMatchObject({ code: 'resume_failed' });
          outcomes.push('refused');
        } else {
          const rest = await socket.request('g');
          expect(seqsOf(rest)).toEqual(range(rest.length).map((index) => fromSeq + index - 1));
          expect(terminals(rest)).toHaveLength(1);
          outcomes.push('resumed');
        }
        socket.close();
      }
    } finally {
      clearInterval(sampler);
    }
    expect(most).toBeLessThanOrEqual(TOTAL);
    expect(outcomes.filter((outcome) => outcome === 'refused')).toHaveLength(await metricTotal(service, 'llm_detached_requests_cancelled_total'));
    // Evicted oldest first: from the newest back, every resume comes before every refusal.
    expect(outcomes[0]).toBe('resumed');
    expect(outcomes).toEqual([...outcomes].sort((a, b) => (a === b ? 0 : a === 'resumed' ? -1 : 1)));
    await waitForIdle(service, 60_000);
  });
});
