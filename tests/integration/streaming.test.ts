import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pack } from 'msgpackr';
import type { EndFrame, ServerFrame } from '../../protocol/index.js';
import type { Service } from '../../server/app.js';
import { DEMO_MULTIBYTE_EXPECTED, DEMO_MULTIBYTE_PROMPT } from '../../server/model-maker/demo/demo-model.js';
import { RawSocket } from '../helpers/raw-socket.js';
import { connectClient, metricTotal, startTestService, waitForIdle } from '../helpers/service.js';
import { waitFor } from '../helpers/wait.js';

let service: Service;

beforeAll(async () => {
  service = await startTestService({ parallelSequences: 2 });
});

afterAll(async () => {
  await service?.shutdown(0);
});

const PROMPT = 'Alice was beginning to get very tired';

function textOf(frames: ServerFrame[]): string {
  return frames.map((frame) => (frame.t === 'tok' ? frame.text : '')).join('');
}

function terminalFrames(frames: ServerFrame[]): ServerFrame[] {
  return frames.filter((frame) => frame.t === 'end' || frame.t === 'err');
}

describe.each([
  { format: 'msgpack' as const, protocols: ['llm.v1.msgpack'] },
  { format: 'json' as const, protocols: ['llm.v1.json'] },
])('every frame type over $format', ({ protocols }) => {
  it('hello, ping/pong, models, gen/start/tok/end, cancel, err', async () => {
    const socket = await RawSocket.open(service.streamUrl, { protocols });
    const hello = socket.frames[0]!;
    expect(hello).toMatchObject({ t: 'hello', protocol: protocols[0], limits: { maxFrameBytes: 262144 } });
    expect(hello.t === 'hello' && hello.models.some((model) => model.default && model.state === 'loaded')).toBe(true);

    socket.send({ t: 'ping', ts: 1234 });
    expect(await socket.next((frame) => frame.t === 'pong')).toEqual({ t: 'pong', ts: 1234 });

    socket.send({ t: 'models' });
    const models = await socket.next((frame) => frame.t === 'models');
    expect(models.t === 'models' && models.models.length).toBeGreaterThan(0);

    socket.send({ t: 'gen', id: 'a', prompt: PROMPT, maxTokens: 12, temperature: 0 });
    const frames = await socket.request('a');
    expect(frames[0]).toEqual({ t: 'start', id: 'a', model: 'demo', seq: 1 });
    const end = frames.at(-1) as EndFrame;
    expect(end).toMatchObject({ t: 'end', id: 'a', reason: 'length', usage: { completionTokens: 12 } });
    expect(end.usage.promptTokens).toBeGreaterThan(5);
    expect(end.timings.ttftMs).toBeGreaterThanOrEqual(0);
    expect(end.timings.totalMs).toBeGreaterThanOrEqual(end.timings.ttftMs);
    expect(textOf(frames).length).toBeGreaterThan(0);

    socket.send({ t: 'gen', id: 'b', prompt: PROMPT, maxTokens: 2000, temperature: 0.8, seed: 1 });
    await socket.next((frame) => frame.t === 'tok' && frame.id === 'b');
    socket.send({ t: 'cancel', id: 'b' });
    const cancelled = await socket.request('b');
    expect(cancelled.at(-1)).toMatchObject({ t: 'end', reason: 'cancelled' });

    socket.send({ t: 'cancel', id: 'b' });
    expect(await socket.next((frame) => frame.t === 'err')).toMatchObject({ t: 'err', code: 'unknown_id', details: { id: 'b' } });
    socket.close();
  });
});

describe('generation', () => {
  it('streams exactly maxTokens tokens and reports them in usage', async () => {
    const socket = await RawSocket.open(service.streamUrl);
    socket.send({ t: 'gen', id: 'len', prompt: PROMPT, maxTokens: 64, temperature: 0.7, seed: 3 });
    const frames = await socket.request('len');
    const end = frames.at(-1) as EndFrame;
    expect(end.reason).toBe('length');
    expect(end.usage.completionTokens).toBe(64);
    expect(frames.filter((frame) => frame.t === 'tok').length).toBeLessThanOrEqual(64);
    socket.close();
  });

  it('cancels mid-stream with fewer tokens and frees the sequence at once', async () => {
    const client = await connectClient(service);
    const stream = client.generate({ prompt: PROMPT, maxTokens: 2000, temperature: 0.8, seed: 9 });
    let pieces = 0;
    for await (const piece of stream) {
      expect(typeof piece).toBe('string');
      if (++pieces === 5) stream.cancel();
    }
    const end = await stream.end;
    expect(end.reason).toBe('cancelled');
    expect(end.usage.completionTokens).toBeGreaterThanOrEqual(5);
    expect(end.usage.completionTokens).toBeLessThan(2000);
    await waitForIdle(service, 5000);
    const next = await client.generate({ prompt: PROMPT, maxTokens: 4, temperature: 0 }).text();
    expect(next.end.reason).toBe('length');
    client.close();
  });

  it('frees the sequence when the client disconnects mid-stream', async () => {
    const socket = await RawSocket.open(service.streamUrl);
    socket.send({ t: 'gen', id: 'x', prompt: PROMPT, maxTokens: 2000 });
    socket.send({ t: 'gen', id: 'y', prompt: PROMPT, maxTokens: 2000 });
    await socket.next((frame) => frame.t === 'tok' && frame.id === 'y');
    const model = service.pool.current()!;
    expect(model.scheduler.busy).toBe(2);
    socket.socket.terminate();
    // Both requests end and both sequences return to the pool without any frame to answer.
    await waitForIdle(service, 5000);
  });

  it('interleaves two concurrent ids on one connection, each in order with one terminal frame', async () => {
    const socket = await RawSocket.open(service.streamUrl);
    socket.send({ t: 'gen', id: 'one', prompt: PROMPT, maxTokens: 40, temperature: 0 });
    socket.send({ t: 'gen', id: 'two', prompt: 'The Rabbit', maxTokens: 40, temperature: 0 });
    const one = await socket.request('one');
    const two = await socket.request('two');
    for (const frames of [one, two]) {
      expect(frames[0]!.t).toBe('start');
      expect(terminalFrames(frames)).toHaveLength(1);
      expect(frames.at(-1)!.t).toBe('end');
    }
    const ids = socket.frames.filter((frame) => frame.t === 'tok').map((frame) => (frame as { id: string }).id);
    const firstTwo = ids.indexOf('two');
    const lastOne = ids.lastIndexOf('one');
    expect(firstTwo).toBeLessThan(lastOne);
    // Each id's text matches what it produces alone.
    const client = await connectClient(service);
    expect((await client.generate({ prompt: PROMPT, maxTokens: 40, temperature: 0 }).text()).text).toBe(textOf(one));
    client.close();
    socket.close();
  });

  it('repeats its output for the same seed, at temperature 0 and when sampling', async () => {
    const client = await connectClient(service);
    const run = async (params: { temperature: number; seed?: number }) => (await client.generate({ prompt: PROMPT, maxTokens: 48, ...params }).text()).text;
    expect(await run({ temperature: 0 })).toBe(await run({ temperature: 0 }));
    const sampled = await run({ temperature: 0.9, seed: 42 });
    expect(await run({ temperature: 0.9, seed: 42 })).toBe(sampled);
    expect(await run({ temperature: 0.9, seed: 43 })).not.toBe(sampled);
    client.close();
  });

  it('streams multi-byte characters intact, never split across frames', async () => {
    const socket = await RawSocket.open(service.streamUrl);
    socket.send({ t: 'gen', id: 'mb', prompt: DEMO_MULTIBYTE_PROMPT, maxTokens: 24, temperature: 0 });
    const frames = await socket.request('mb');
    expect(textOf(frames)).toContain(DEMO_MULTIBYTE_EXPECTED);
    for (const frame of frames) if (frame.t === 'tok') expect(frame.text).not.toContain('\uFFFD');
    socket.close();
  });

  it('stops at a stop sequence without sending any of it', async () => {
    const client = await connectClient(service);
    const free = (await client.generate({ prompt: PROMPT, maxTokens: 60, temperature: 0 }).text()).text;
    const stopAt = free.slice(10, 13);
    const { text, end } = await client.generate({ prompt: PROMPT, maxTokens: 60, temperature: 0, stop: [stopAt] }).text();
    expect(end.reason).toBe('stop');
    expect(text).toBe(free.slice(0, free.indexOf(stopAt)));
    client.close();
  });

  it('refuses a prompt that does not fit the context with the numbers', async () => {
    const client = await connectClient(service);
    const model = service.pool.current()!;
    const stream = client.generate({ prompt: 'a '.repeat(model.contextSize), maxTokens: 10 });
    await expect(stream.end).rejects.toMatchObject({ code: 'prompt_too_long', details: { contextSize: model.contextSize } });
    client.close();
  });
});

describe('tok frame coalescing', () => {
  let perPiece: Service;
  let slow: Service;

  beforeAll(async () => {
    [perPiece, slow] = await Promise.all([
      startTestService({ streamCoalesceMs: 0 }),
      // A window far longer than any stream here takes, so what is held and when it goes out does
      // not depend on the machine's speed; and a token rate (past a burst above the 64 tokens of
      // `gen`) that keeps a 2000-token stream running for minutes, so a cancel always finds it going.
      startTestService({ streamCoalesceMs: 60_000, tokenLimitBurst: 100, tokenLimitTps: 10 }),
    ]);
  });

  afterAll(async () => {
    await Promise.all([perPiece?.shutdown(0), slow?.shutdown(0)]);
  });

  const gen = { t: 'gen', prompt: PROMPT, maxTokens: 64, temperature: 0.7, seed: 3 } as const;

  it('sends one piece per token with a window of 0, except the byte tokens of one character', async () => {
    const socket = await RawSocket.open(perPiece.streamUrl);
    socket.send({ ...gen, id: 'each' });
    const frames = await socket.request('each');
    expect((frames.at(-1) as EndFrame).usage.completionTokens).toBe(64);
    // A client that keeps up gets one piece per token, except that the up to 4 byte tokens of a
    // multi-byte character travel as one piece.
    const pieces = frames.filter((frame) => frame.t === 'tok').length;
    const multiByteChars = [...textOf(frames)].filter((char) => char.codePointAt(0)! > 0x7f).length;
    expect(pieces).toBeLessThanOrEqual(64);
    expect(pieces).toBeGreaterThanOrEqual(64 - 3 * multiByteChars);
    socket.close();
  });

  it('joins text that comes within the window into fewer frames, the same text, all before end', async () => {
    const reference = await RawSocket.open(perPiece.streamUrl);
    reference.send({ ...gen, id: 'ref' });
    const expected = textOf(await reference.request('ref'));
    reference.close();

    const socket = await RawSocket.open(slow.streamUrl);
    socket.send({ ...gen, id: 'joined' });
    const frames = await socket.request('joined');
    // The first piece at once; the rest comes within the window, is held and goes out before `end`.
    expect(frames.filter((frame) => frame.t === 'tok').length).toBe(2);
    expect(textOf(frames)).toBe(expected);
    expect(frames.at(-1)).toMatchObject({ t: 'end', reason: 'length', usage: { completionTokens: 64 } });
    socket.close();
  });

  it('sends held text before the end of a cancelled request and nothing after it', async () => {
    const socket = await RawSocket.open(slow.streamUrl);
    const generatedBefore = await metricTotal(slow, 'llm_generation_tokens_total');
    socket.send({ t: 'gen', id: 'held', prompt: PROMPT, maxTokens: 2000, temperature: 0.8, seed: 5 });
    const first = await socket.next((frame) => frame.t === 'tok' && frame.id === 'held');
    // Text of the tokens after the first piece is held behind the window: wait until the engine
    // made a few of them (only this request runs on `slow` now), then stop.
    await waitFor(async () => (await metricTotal(slow, 'llm_generation_tokens_total')) >= generatedBefore + 8, 10_000, 'tokens after the first piece');
    socket.send({ t: 'cancel', id: 'held' });
    const frames = await socket.request('held');
    const end = frames.at(-1) as EndFrame;
    expect(end.reason).toBe('cancelled');
    const pieces = frames.filter((frame) => frame.t === 'tok');
    expect(pieces).toHaveLength(2);
    expect(textOf(frames).length).toBeGreaterThan(first.t === 'tok' ? first.text.length : 0);
    expect(end.usage.completionTokens).toBeGreaterThanOrEqual(8);
    // Nothing for the request after its terminal frame: the pong comes after anything sent before
    // it. (That `end` also stops the guard timer of held text, which would fire only two windows
    // later, is checked on fake timers in tests/unit/text-coalescer.test.ts.)
    socket.send({ t: 'ping', ts: 99 });
    await socket.next((frame) => frame.t === 'pong' && frame.ts === 99);
    expect(socket.frames.filter((frame) => 'id' in frame && frame.id === 'held')).toHaveLength(frames.length);
    socket.close();
  });
});

describe('malformed input', () => {
  const cases: { name: string; send: (socket: RawSocket) => void; code: string }[] = [
    { name: 'random bytes', send: (s) => s.sendBytes(Uint8Array.from([0xc1, 0xff, 0x00, 0x13])), code: 'bad_frame' },
    { name: 'truncated msgpack', send: (s) => s.sendBytes(pack({ t: 'gen', id: 'q', prompt: 'hello' }).subarray(0, 9)), code: 'bad_frame' },
    { name: 'a msgpack string, not a map', send: (s) => s.sendBytes(pack('gen')), code: 'bad_frame' },
    { name: 'text frame on msgpack', send: (s) => s.sendText('{"t":"ping"}'), code: 'bad_frame' },
    { name: 'missing type tag', send: (s) => s.send({ id: 'q' }), code: 'bad_frame' },
    { name: 'unknown type', send: (s) => s.send({ t: 'launch' }), code: 'unknown_type' },
    { name: 'wrong prompt type', send: (s) => s.send({ t: 'gen', id: 'q', prompt: 42 }), code: 'invalid_params' },
    { name: 'missing id', send: (s) => s.send({ t: 'gen', prompt: 'hi' }), code: 'invalid_params' },
    { name: 'float maxTokens', send: (s) => s.send({ t: 'gen', id: 'q', prompt: 'hi', maxTokens: 1.5 }), code: 'invalid_params' },
    { name: 'huge prompt string', send: (s) => s.send({ t: 'gen', id: 'q', prompt: 'x'.repeat(200_000) }), code: 'invalid_params' },
    { name: 'maxTokens above the ceiling', send: (s) => s.send({ t: 'gen', id: 'q', prompt: 'hi', maxTokens: 999_999 }), code: 'invalid_params' },
    { name: 'unknown model', send: (s) => s.send({ t: 'gen', id: 'q', prompt: 'hi', model: 'nope' }), code: 'model_not_found' },
    { name: 'extension type', send: (s) => s.sendBytes(Uint8Array.from([0xd4, 0x01, 0x00])), code: 'bad_frame' },
  ];

  it.each(cases)('$name gets $code and the connection stays usable', async ({ send, code }) => {
    const socket = await RawSocket.open(service.streamUrl);
    send(socket);
    expect(await socket.next((frame) => frame.t === 'err')).toMatchObject({ t: 'err', code });
    socket.send({ t: 'ping', ts: 7 });
    expect(await socket.next((frame) => frame.t === 'pong')).toEqual({ t: 'pong', ts: 7 });
    socket.close();
  });

  it('refuses a duplicate in-flight id without ending the running request', async () => {
    const socket = await RawSocket.open(service.streamUrl);
    socket.send({ t: 'gen', id: 'dup', prompt: PROMPT, maxTokens: 200 });
    socket.send({ t: 'gen', id: 'dup', prompt: PROMPT, maxTokens: 5 });
    expect(await socket.next((frame) => frame.t === 'err')).toMatchObject({ code: 'duplicate_id', details: { id: 'dup' } });
    const frames = await socket.request('dup');
    expect(frames.at(-1)).toMatchObject({ t: 'end', reason: 'length', usage: { completionTokens: 200 } });
    socket.close();
  });

  it('closes a frame larger than the maximum with 1009', async () => {
    const socket = await RawSocket.open(service.streamUrl);
    socket.sendBytes(new Uint8Array(300 * 1024));
    expect((await socket.closed).code).toBe(1009);
  });

  it('refuses an unknown subprotocol at upgrade', async () => {
    await expect(RawSocket.open(service.streamUrl, { protocols: ['chat.v9'] })).rejects.toThrow(/400/);
  });
});

describe('health', () => {
  it('answers /healthz and /readyz with small JSON bodies', async () => {
    const health = await fetch(`${service.httpUrl}/healthz`);
    expect(health.status).toBe(200);
    const ready = await fetch(`${service.httpUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready' });
    const models = (await (await fetch(`${service.httpUrl}/api/models`)).json()) as { models: { name: string }[] };
    expect(models.models.map((model) => model.name)).toContain('demo');
  });
});
