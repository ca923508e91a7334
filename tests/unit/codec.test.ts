import { unpack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { decodeMessage, encodeFrame, wireFormatOf, type WireFormat } from '../../protocol/codec.js';
import { Subprotocol } from '../../protocol/constants.js';
import type { ClientFrame, ServerFrame } from '../../protocol/frames.js';
import { checkPlainMsgpack } from '../../protocol/msgpack-guard.js';

const MULTI_BYTE = 'é—日本語🙂';

const clientFrames: Record<string, ClientFrame> = {
  gen: {
    t: 'gen',
    id: 'req-1',
    model: 'tiny-llama',
    prompt: `Say hi ${MULTI_BYTE}`,
    maxTokens: 128,
    temperature: 0.7,
    topK: 40,
    topP: 0.95,
    minP: 0.05,
    seed: 4_294_967_295,
    stop: ['\n\n', 'END', '日本'],
  },
  cancel: { t: 'cancel', id: 'req-1' },
  ping: { t: 'ping', ts: 1_712_345_678_901.5 },
  models: { t: 'models' },
};

const modelA = {
  name: 'tiny-llama',
  state: 'loaded',
  default: true,
  sizeBytes: 123_456_789,
  architecture: 'llama',
  contextSize: 2048,
  slotsBusy: 1,
  slotsTotal: 2,
  queueLength: 3,
} as const;
const modelB = { name: 'broken', state: 'failed', default: false, reason: 'bad magic é' } as const;

const serverFrames: Record<string, ServerFrame> = {
  hello: {
    t: 'hello',
    protocol: Subprotocol.msgpack,
    session: 'sess-9f2c',
    models: [modelA, modelB],
    limits: {
      maxFrameBytes: 262_144,
      maxConcurrentStreams: 8,
      maxTokensDefault: 256,
      maxTokensCeiling: 4096,
      requestsRemaining: 59,
      tokensRemaining: 99_744,
      resetMs: 1500,
    },
  },
  limits: {
    t: 'limits',
    maxFrameBytes: 262_144,
    maxConcurrentStreams: 8,
    maxTokensDefault: 256,
    maxTokensCeiling: 4096,
    requestsRemaining: 0,
    tokensRemaining: 12,
    resetMs: 999,
  },
  queued: { t: 'queued', id: 'req-1', position: 3 },
  start: { t: 'start', id: 'req-1', model: 'tiny-llama' },
  tok: { t: 'tok', id: 'req-1', text: MULTI_BYTE },
  end: {
    t: 'end',
    id: 'req-1',
    reason: 'length',
    usage: { promptTokens: 12, completionTokens: 128 },
    timings: { queueMs: 0.25, ttftMs: -1, totalMs: 1234.5 },
  },
  err: {
    t: 'err',
    id: 'req-1',
    code: 'prompt_too_long',
    message: 'prompt has 3000 tokens; the context holds 2048',
    retryAfterMs: 250,
    details: { promptTokens: 3000, contextSize: 2048, model: 'tiny-llama' },
  },
  pong: { t: 'pong', ts: 1_712_345_678_901 },
  models: { t: 'models', models: [modelA, modelB] },
};

const formats: WireFormat[] = ['msgpack', 'json'];

function roundTrip(frame: object, format: WireFormat): unknown {
  const encoded = encodeFrame(frame, format);
  if (format === 'msgpack') {
    expect(encoded).toBeInstanceOf(Uint8Array);
  } else {
    expect(typeof encoded).toBe('string');
  }
  const decoded = decodeMessage(encoded, format === 'msgpack', format);
  if (!decoded.ok) throw new Error(`decode failed: ${decoded.reason}`);
  return decoded.value;
}

function asBytes(encoded: Uint8Array | string): Uint8Array {
  if (typeof encoded === 'string') throw new Error('expected msgpack bytes');
  return encoded;
}

describe('wireFormatOf', () => {
  it('maps the JSON subprotocol to json and everything else to msgpack', () => {
    expect(wireFormatOf(Subprotocol.json)).toBe('json');
    expect(wireFormatOf(Subprotocol.msgpack)).toBe('msgpack');
    expect(wireFormatOf(undefined)).toBe('msgpack');
    expect(wireFormatOf('')).toBe('msgpack');
  });
});

describe.each(formats)('round trip over %s', (format) => {
  it.each(Object.entries(clientFrames))('client frame %s', (_name, frame) => {
    expect(roundTrip(frame, format)).toStrictEqual(frame);
  });

  it.each(Object.entries(serverFrames))('server frame %s', (_name, frame) => {
    expect(roundTrip(frame, format)).toStrictEqual(frame);
  });

  it('keeps multi-byte text intact', () => {
    const frame = { t: 'tok', id: MULTI_BYTE, text: MULTI_BYTE.repeat(50) };
    const value = roundTrip(frame, format) as { text: string; id: string };
    expect(value.text).toBe(MULTI_BYTE.repeat(50));
    expect(value.id).toBe(MULTI_BYTE);
    expect(value.text.length).toBe(MULTI_BYTE.length * 50);
  });

  it('omits fields set to undefined', () => {
    const frame = { t: 'err', id: undefined, code: 'internal', message: 'boom', retryAfterMs: undefined, details: undefined };
    const value = roundTrip(frame, format) as Record<string, unknown>;
    expect(value).toStrictEqual({ t: 'err', code: 'internal', message: 'boom' });
    expect(Object.keys(value)).toEqual(['t', 'code', 'message']);
  });
});

describe('msgpack encoding', () => {
  it.each(Object.entries({ ...clientFrames, ...serverFrames }))('%s is plain msgpack readable by msgpackr unpack', (_name, frame) => {
    const bytes = asBytes(encodeFrame(frame, 'msgpack'));
    expect(checkPlainMsgpack(bytes)).toBeNull();
    // A map header (fixmap/map16/map32), not a record extension.
    const first = bytes[0]!;
    expect(first === 0xde || first === 0xdf || (first >= 0x80 && first <= 0x8f)).toBe(true);
    expect(unpack(bytes)).toStrictEqual(frame);
  });

  it('leaves undefined fields out instead of writing an extension', () => {
    const withUndefined = asBytes(encodeFrame({ t: 'tok', id: 'a', text: 'x', extra: undefined }, 'msgpack'));
    const without = asBytes(encodeFrame({ t: 'tok', id: 'a', text: 'x' }, 'msgpack'));
    expect(Array.from(withUndefined)).toEqual(Array.from(without));
    expect(checkPlainMsgpack(withUndefined)).toBeNull();
    const decoded = unpack(withUndefined) as Record<string, unknown>;
    expect('extra' in decoded).toBe(false);
  });

  it('leaves nested undefined fields out too', () => {
    const frame = {
      t: 'limits',
      maxFrameBytes: 1,
      maxConcurrentStreams: 2,
      maxTokensDefault: 3,
      maxTokensCeiling: 4,
      requestsRemaining: undefined,
    };
    const hello = { t: 'hello', protocol: 'p', session: 's', models: [], limits: frame };
    const bytes = asBytes(encodeFrame(hello, 'msgpack'));
    expect(checkPlainMsgpack(bytes)).toBeNull();
    const decoded = unpack(bytes) as { limits: Record<string, unknown> };
    expect('requestsRemaining' in decoded.limits).toBe(false);
    expect(decoded.limits.maxTokensCeiling).toBe(4);
  });

  it('returns buffers that stay valid after later encodes', () => {
    const frames = Array.from({ length: 500 }, (_, i) => ({ t: 'tok', id: `r${i}`, text: `${i}:${MULTI_BYTE}`.repeat((i % 7) + 1) }));
    const encoded = frames.map((frame) => asBytes(encodeFrame(frame, 'msgpack')));
    encoded.forEach((bytes, i) => {
      const decoded = decodeMessage(bytes, true, 'msgpack');
      expect(decoded).toStrictEqual({ ok: true, value: frames[i] });
    });
  });

  it('decodes an ArrayBuffer and a Uint8Array view with an offset', () => {
    const frame = clientFrames.gen!;
    const bytes = asBytes(encodeFrame(frame, 'msgpack'));
    const arrayBuffer = new ArrayBuffer(bytes.length);
    new Uint8Array(arrayBuffer).set(bytes);
    expect(decodeMessage(arrayBuffer, true, 'msgpack')).toStrictEqual({ ok: true, value: frame });

    const padded = new Uint8Array(bytes.length + 10);
    padded.fill(0xc1);
    padded.set(bytes, 5);
    const view = padded.subarray(5, 5 + bytes.length);
    expect(decodeMessage(view, true, 'msgpack')).toStrictEqual({ ok: true, value: frame });
  });
});

describe('json encoding', () => {
  it('is the JSON text of the frame', () => {
    const frame = serverFrames.tok!;
    const text = encodeFrame(frame, 'json');
    expect(text).toBe(JSON.stringify(frame));
    expect(JSON.parse(text as string)).toStrictEqual(frame);
  });

  it('accepts UTF-8 bytes of a text frame', () => {
    const frame = { t: 'tok', id: 'x', text: MULTI_BYTE };
    const bytes = new TextEncoder().encode(JSON.stringify(frame));
    expect(decodeMessage(bytes, false, 'json')).toStrictEqual({ ok: true, value: frame });
    expect(decodeMessage(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length), false, 'json')).toStrictEqual({
      ok: true,
      value: frame,
    });
  });
});

describe('refusals', () => {
  function expectRefused(result: ReturnType<typeof decodeMessage>, pattern: RegExp): void {
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(typeof result.reason).toBe('string');
    expect(result.reason).toMatch(pattern);
  }

  it('refuses text frames on msgpack', () => {
    expectRefused(decodeMessage('{"t":"ping"}', false, 'msgpack'), /text/i);
    // Even bytes, when the socket says the message was text.
    const bytes = asBytes(encodeFrame({ t: 'ping' }, 'msgpack'));
    expectRefused(decodeMessage(bytes, false, 'msgpack'), /text/i);
  });

  it('refuses binary frames on json', () => {
    const bytes = new TextEncoder().encode('{"t":"ping"}');
    expectRefused(decodeMessage(bytes, true, 'json'), /binary/i);
    expectRefused(decodeMessage(bytes.buffer as ArrayBuffer, true, 'json'), /binary/i);
  });

  it.each(['', '{', '{"t":', "{'t':'ping'}", '{"t":"ping"} x', 'undefined', '[1,]'])('refuses invalid JSON %j', (text) => {
    expectRefused(decodeMessage(text, false, 'json'), /JSON/);
  });

  it.each([
    ['lone continuation byte', [0x7b, 0x80, 0x7d]],
    ['invalid byte 0xff', [0x22, 0xff, 0x22]],
    ['truncated 3-byte sequence', [0x22, 0xe6, 0x97, 0x22]],
    ['overlong encoding of "/"', [0x22, 0xc0, 0xaf, 0x22]],
    ['encoded surrogate', [0x22, 0xed, 0xa0, 0x80, 0x22]],
  ])('refuses invalid UTF-8 (%s)', (_name, raw) => {
    expectRefused(decodeMessage(new Uint8Array(raw), false, 'json'), /UTF-8/);
  });

  it('refuses msgpack that the guard refuses, with its reason', () => {
    expectRefused(decodeMessage(new Uint8Array([]), true, 'msgpack'), /empty/);
    expectRefused(decodeMessage(new Uint8Array([0xd4, 0x00, 0x00]), true, 'msgpack'), /extension/);
    expectRefused(decodeMessage(new Uint8Array([0x81, 0xa1, 0x74]), true, 'msgpack'), /truncated/);
  });
});
