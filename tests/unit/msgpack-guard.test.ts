import fc from 'fast-check';
import { Packr, Unpackr, unpack } from 'msgpackr';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeMessage, encodeFrame } from '../../protocol/codec.js';
import { MAX_DEPTH, checkPlainMsgpack } from '../../protocol/msgpack-guard.js';

type Part = number | readonly number[] | Uint8Array;

/** Concatenates bytes and byte arrays into one frame. */
function bytes(...parts: Part[]): Uint8Array {
  const out: number[] = [];
  for (const part of parts) {
    if (typeof part === 'number') out.push(part);
    else for (const byte of part) out.push(byte);
  }
  return new Uint8Array(out);
}

const be16 = (n: number): number[] => [(n >>> 8) & 0xff, n & 0xff];
const be32 = (n: number): number[] => [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
const ascii = (text: string): number[] => Array.from(text, (c) => c.charCodeAt(0));
/** A fixstr of ASCII text. */
const fixstr = (text: string): number[] => [0xa0 | text.length, ...ascii(text)];

/** Decoder configured as the codec's: no records, plain objects, int64 as number. */
const codecUnpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, structuredClone: false, moreTypes: false, int64AsType: 'number' });

/** True when `value` holds only plain data: plain objects, arrays, strings, numbers, booleans, null. */
function isPlain(value: unknown, depth = 0): boolean {
  if (depth > 100) return false;
  if (value === null) return true;
  switch (typeof value) {
    case 'string':
    case 'number':
    case 'boolean':
      return true;
    case 'object': {
      if (Array.isArray(value)) {
        if (Object.getPrototypeOf(value) !== Array.prototype) return false;
        for (let i = 0; i < value.length; i++) {
          if (!(i in value) || !isPlain(value[i], depth + 1)) return false;
        }
        return true;
      }
      if (Object.getPrototypeOf(value) !== Object.prototype) return false;
      if (Object.getOwnPropertySymbols(value).length > 0) return false;
      for (const key of Object.getOwnPropertyNames(value)) {
        const descriptor = Object.getOwnPropertyDescriptor(value, key)!;
        if (!('value' in descriptor) || !isPlain(descriptor.value, depth + 1)) return false;
      }
      return true;
    }
    default:
      // bigint, undefined, symbol, function
      return false;
  }
}

describe('isPlain (test helper)', () => {
  it('accepts plain data and rejects everything else', () => {
    expect(isPlain({ a: [1, 'x', null, true, { b: -1.5 }] })).toBe(true);
    for (const bad of [new Map(), new Set(), new Date(), /x/, new Error('e'), new Uint8Array(1), 1n, undefined, () => 1, Object.create(null), [1n], { a: new Date() }]) {
      expect(isPlain(bad)).toBe(false);
    }
  });
});

const accepted: Array<[string, Uint8Array, unknown]> = [
  ['positive fixint 0', bytes(0x00), 0],
  ['positive fixint 0x7f', bytes(0x7f), 127],
  ['fixint 0x40 (a record slot in msgpackr)', bytes(0x40), 64],
  ['negative fixint -1', bytes(0xff), -1],
  ['negative fixint -32', bytes(0xe0), -32],
  ['nil', bytes(0xc0), null],
  ['false', bytes(0xc2), false],
  ['true', bytes(0xc3), true],
  ['uint8', bytes(0xcc, 0xff), 255],
  ['uint16', bytes(0xcd, be16(0xbeef)), 0xbeef],
  ['uint32', bytes(0xce, be32(0xdeadbeef)), 0xdeadbeef],
  ['uint64', bytes(0xcf, be32(0x1), be32(0x2)), 2 ** 32 + 2],
  ['int8', bytes(0xd0, 0x80), -128],
  ['int16', bytes(0xd1, be16(0x8000)), -32768],
  ['int32', bytes(0xd2, be32(0x80000000)), -(2 ** 31)],
  ['int64', bytes(0xd3, be32(0xffffffff), be32(0xfffffffe)), -2],
  ['float32', bytes(0xca, 0x3f, 0xc0, 0x00, 0x00), 1.5],
  ['float64', bytes(0xcb, 0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18), Math.PI],
  ['empty fixstr', bytes(0xa0), ''],
  ['fixstr', bytes(fixstr('hello')), 'hello'],
  ['multi-byte fixstr', bytes(0xa5, 0xc3, 0xa9, 0xe2, 0x80, 0x94), 'é—'],
  ['str8', bytes(0xd9, 40, ascii('x'.repeat(40))), 'x'.repeat(40)],
  ['str16', bytes(0xda, be16(300), ascii('y'.repeat(300))), 'y'.repeat(300)],
  ['str32', bytes(0xdb, be32(70_000), new Uint8Array(70_000).fill(0x7a)), 'z'.repeat(70_000)],
  ['empty fixarray', bytes(0x90), []],
  ['fixarray', bytes(0x93, 0x01, 0xc0, fixstr('a')), [1, null, 'a']],
  ['array16', bytes(0xdc, be16(20), new Uint8Array(20).fill(0x07)), new Array(20).fill(7)],
  ['array32 with a small count', bytes(0xdd, be32(2), 0xc3, 0xc2), [true, false]],
  ['empty fixmap', bytes(0x80), {}],
  ['fixmap', bytes(0x82, fixstr('t'), fixstr('ping'), fixstr('ts'), 0x05), { t: 'ping', ts: 5 }],
  [
    'map16',
    bytes(0xde, be16(20), ...Array.from({ length: 20 }, (_, i) => bytes(fixstr(`k${i}`), i))),
    Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, i])),
  ],
  ['map32 with a small count', bytes(0xdf, be32(1), fixstr('a'), 0x90), { a: [] }],
  ['map with str8 key', bytes(0x81, 0xd9, 3, ascii('key'), 0xc0), { key: null }],
  ['map with str16 key', bytes(0x81, 0xda, be16(3), ascii('key'), 0xc3), { key: true }],
  ['map with str32 key', bytes(0x81, 0xdb, be32(3), ascii('key'), 0x01), { key: 1 }],
  [
    'nested map of arrays and maps',
    bytes(0x82, fixstr('a'), 0x92, 0x80, 0x91, 0x81, fixstr('b'), 0xcb, 0, 0, 0, 0, 0, 0, 0, 0, fixstr('c'), 0x90),
    { a: [{}, [{ b: 0 }]], c: [] },
  ],
];

describe('checkPlainMsgpack accepts plain msgpack', () => {
  it.each(accepted)('%s', (_name, frame, expected) => {
    expect(checkPlainMsgpack(frame)).toBeNull();
    expect(codecUnpackr.unpack(frame)).toStrictEqual(expected);
  });

  it(`accepts nesting exactly ${MAX_DEPTH} levels deep`, () => {
    const arrays = bytes(new Array(MAX_DEPTH).fill(0x91), 0x00);
    expect(checkPlainMsgpack(arrays)).toBeNull();
    const maps = bytes(...Array.from({ length: MAX_DEPTH }, () => bytes(0x81, fixstr('a'))), 0xc0);
    expect(checkPlainMsgpack(maps)).toBeNull();
  });

  it('accepts frames packed by msgpackr without records', () => {
    const packr = new Packr({ useRecords: false, variableMapSize: true });
    const values = [
      { t: 'gen', id: 'x', prompt: 'p'.repeat(100_000), stop: ['a', 'b'], temperature: 0.5, seed: 4_294_967_295 },
      { nested: { deeper: { list: Array.from({ length: 70_000 }, (_, i) => i % 3 === 0 ? i : `s${i}`) } } },
      Object.fromEntries(Array.from({ length: 70_000 }, (_, i) => [`k${i}`, i])),
      [-1e300, 2 ** 53, -(2 ** 40), 0.1, 'é—日本語🙂'],
    ];
    for (const value of values) {
      const packed = packr.pack(value);
      expect(checkPlainMsgpack(packed)).toBeNull();
      expect(codecUnpackr.unpack(packed)).toStrictEqual(value);
    }
  });

  it('decodes int64 as a number through the codec (msgpackr alone would give a bigint)', () => {
    const frame = bytes(0x81, fixstr('ts'), 0xcf, be32(0x100), be32(0));
    expect(checkPlainMsgpack(frame)).toBeNull();
    expect(typeof (unpack(frame) as { ts: unknown }).ts).toBe('bigint');
    const decoded = decodeMessage(frame, true, 'msgpack');
    expect(decoded).toStrictEqual({ ok: true, value: { ts: 0x100 * 2 ** 32 } });
  });
});

describe('checkPlainMsgpack refuses', () => {
  it('an empty frame', () => {
    expect(checkPlainMsgpack(new Uint8Array(0))).toMatch(/empty/);
  });

  it('every proper prefix of a valid frame', () => {
    const frame = encodeFrame(
      {
        t: 'gen',
        id: 'req-1',
        model: 'm',
        prompt: 'é—日本語🙂'.repeat(40),
        maxTokens: 100,
        temperature: 0.7,
        topK: 300,
        topP: 0.9,
        minP: 0.05,
        seed: 70_000,
        stop: ['x'.repeat(40), 'y'],
        extra: { deep: [1, -200, 1e10, null, true, { a: 'b' }] },
      },
      'msgpack',
    ) as Uint8Array;
    expect(checkPlainMsgpack(frame)).toBeNull();
    for (let cut = 1; cut < frame.length; cut++) {
      const reason = checkPlainMsgpack(frame.subarray(0, cut));
      expect(reason, `prefix of ${cut} bytes`).toMatch(/truncated|exceeds/);
    }
  });

  it.each(accepted.filter(([, frame]) => frame.length > 1))('every proper prefix of %s', (_name, frame) => {
    for (let cut = 1; cut < frame.length; cut++) {
      expect(checkPlainMsgpack(frame.subarray(0, cut)), `prefix of ${cut} bytes`).toMatch(/truncated|exceeds/);
    }
  });

  it.each([
    ['fixext 1', bytes(0xd4, 0x01, 0x00)],
    ['fixext 2', bytes(0xd5, 0x01, 0x00, 0x00)],
    ['fixext 4 (timestamp)', bytes(0xd6, 0xff, be32(0))],
    ['fixext 8', bytes(0xd7, 0x01, be32(0), be32(0))],
    ['fixext 16', bytes(0xd8, 0x01, new Uint8Array(16))],
    ['ext 8', bytes(0xc7, 0x03, 0x01, 0x00, 0x00, 0x00)],
    ['ext 16', bytes(0xc8, be16(3), 0x01, 0x00, 0x00, 0x00)],
    ['ext 32', bytes(0xc9, be32(3), 0x01, 0x00, 0x00, 0x00)],
    ['msgpackr undefined', bytes(0xd4, 0x00, 0x00)],
    ['msgpackr record definition', bytes(0xd4, 0x72, 0x40)],
    ['an extension as a map value', bytes(0x81, fixstr('a'), 0xd4, 0x00, 0x00)],
    ['an extension inside an array', bytes(0x92, 0x01, 0xd6, 0xff, be32(0))],
  ])('extension: %s', (_name, frame) => {
    expect(checkPlainMsgpack(frame)).toMatch(/extension/);
  });

  describe('msgpackr structured clone and extra types', () => {
    const packr = new Packr({ structuredClone: true, moreTypes: true });
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    const shared = { s: 1 };
    const cases: Array<[string, unknown]> = [
      ['record', { t: 'ping', ts: 1 }],
      ['Set', new Set([1, 2])],
      ['Map', new Map<unknown, unknown>([[1, 'a']])],
      ['RegExp', /ab+c/gi],
      ['Error', new Error('boom')],
      ['TypeError', new TypeError('bad')],
      ['Date', new Date(0)],
      ['cyclic object', cyclic],
      ['shared reference', [shared, shared]],
      ['Uint8Array', new Uint8Array([1, 2, 3])],
      ['Float64Array', new Float64Array([1.5])],
      ['undefined', undefined],
      ['bigint', 2n ** 70n],
      ['nested Set in a plain-looking frame', [1, 'x', new Set(['a'])]],
    ];
    it.each(cases)('%s', (_name, value) => {
      const packed = packr.pack(value);
      const reason = checkPlainMsgpack(packed);
      expect(reason).toMatch(/extension|binary|keys must be strings/);
      expect(decodeMessage(packed, true, 'msgpack').ok).toBe(false);
    });
  });

  it.each([
    ['bin 8', bytes(0xc4, 0x02, 0xaa, 0xbb)],
    ['bin 16', bytes(0xc5, be16(1), 0xaa)],
    ['bin 32', bytes(0xc6, be32(1), 0xaa)],
    ['bin as a map value', bytes(0x81, fixstr('b'), 0xc4, 0x00)],
  ])('binary: %s', (_name, frame) => {
    expect(checkPlainMsgpack(frame)).toMatch(/binary/);
  });

  it('the never-used byte 0xc1', () => {
    expect(checkPlainMsgpack(bytes(0xc1))).toMatch(/0xc1/);
    expect(checkPlainMsgpack(bytes(0x91, 0xc1))).toMatch(/0xc1/);
  });

  it.each([
    ['integer key', bytes(0x81, 0x01, fixstr('a'))],
    ['nil key', bytes(0x81, 0xc0, 0x01)],
    ['boolean key', bytes(0x81, 0xc3, 0x01)],
    ['float key', bytes(0x81, 0xca, 0, 0, 0, 0, 0x01)],
    ['array key', bytes(0x81, 0x90, 0x01)],
    ['map key', bytes(0x81, 0x80, 0x01)],
    ['second key not a string', bytes(0x82, fixstr('a'), 0x01, 0x02, 0x03)],
    ['map16 with integer key', bytes(0xde, be16(1), 0x05, 0x01)],
    ['nested map with integer key', bytes(0x81, fixstr('a'), 0x81, 0x07, 0x01)],
  ])('non-string map key: %s', (_name, frame) => {
    expect(checkPlainMsgpack(frame)).toMatch(/keys must be strings/);
  });

  it.each([
    ['array32 of 4 billion items', bytes(0xdd, 0xff, 0xff, 0xff, 0xff, 0x00)],
    ['map32 of 4 billion entries', bytes(0xdf, 0xff, 0xff, 0xff, 0xff, fixstr('a'), 0x00)],
    ['array32 of 2^31 items', bytes(0xdd, be32(0x80000000), 0x00, 0x00)],
    ['array16 of 65535 items', bytes(0xdc, 0xff, 0xff, 0x01, 0x02, 0x03)],
    ['map16 of 65535 entries', bytes(0xde, 0xff, 0xff, fixstr('a'), 0x01)],
    ['fixmap of 15 entries with one', bytes(0x8f, fixstr('a'), 0x01)],
    ['nested array32 lie', bytes(0x91, 0xdd, 0x7f, 0xff, 0xff, 0xff, 0x01)],
  ])('a length header larger than the frame: %s', (_name, frame) => {
    expect(checkPlainMsgpack(frame)).toMatch(/exceeds|truncated/);
  });

  it.each([
    ['str32 of 4 GB', bytes(0xdb, 0xff, 0xff, 0xff, 0xff, 0x61)],
    ['str16 too long', bytes(0xda, be16(10), 0x61)],
    ['str8 too long', bytes(0xd9, 10, 0x61)],
    ['fixstr too long', bytes(0xa5, 0x61)],
    ['float64 cut', bytes(0xcb, 0, 0, 0)],
  ])('a string or number that runs past the frame: %s', (_name, frame) => {
    expect(checkPlainMsgpack(frame)).toMatch(/truncated/);
  });

  it(`nesting deeper than MAX_DEPTH (${MAX_DEPTH})`, () => {
    expect(checkPlainMsgpack(bytes(new Array(MAX_DEPTH + 1).fill(0x91), 0x00))).toMatch(/nesting/);
    const maps = bytes(...Array.from({ length: MAX_DEPTH + 1 }, () => bytes(0x81, fixstr('a'))), 0xc0);
    expect(checkPlainMsgpack(maps)).toMatch(/nesting/);
  });

  it('very deep nesting without overflowing the stack', () => {
    const frame = bytes(new Uint8Array(200_000).fill(0x91), 0x00);
    expect(checkPlainMsgpack(frame)).toMatch(/nesting/);
    expect(decodeMessage(frame, true, 'msgpack').ok).toBe(false);
  });

  it.each([
    ['two values', bytes(0x00, 0x00)],
    ['a frame and a nil', bytes(0x81, fixstr('t'), fixstr('ping'), 0xc0)],
    ['a string and one byte', bytes(fixstr('ab'), 0x00)],
  ])('trailing bytes: %s', (_name, frame) => {
    expect(checkPlainMsgpack(frame)).toMatch(/trailing/);
  });

  it('a valid frame followed by one more byte', () => {
    const frame = encodeFrame({ t: 'ping', ts: 1 }, 'msgpack') as Uint8Array;
    expect(checkPlainMsgpack(bytes(frame, 0x00))).toMatch(/trailing/);
  });

  it('gives the same answer twice in a row (no state leaks between calls)', () => {
    const deep = bytes(new Array(MAX_DEPTH).fill(0x91), 0x00);
    const bad = bytes(0x92, 0x01, 0xa3, 0x61);
    expect(checkPlainMsgpack(bad)).toMatch(/truncated/);
    expect(checkPlainMsgpack(deep)).toBeNull();
    expect(checkPlainMsgpack(bad)).toMatch(/truncated/);
    expect(checkPlainMsgpack(bytes(0x81, fixstr('a'), 0x01))).toBeNull();
  });
});

describe('__proto__ keys', () => {
  afterEach(() => {
    delete (Object.prototype as Record<string, unknown>).polluted;
  });

  it('decoding a map with a __proto__ key leaves Object.prototype untouched (msgpack)', () => {
    // { "__proto__": { "polluted": true } }
    const frame = bytes(0x81, fixstr('__proto__'), 0x81, fixstr('polluted'), 0xc3);
    expect(checkPlainMsgpack(frame)).toBeNull();
    const decoded = decodeMessage(frame, true, 'msgpack');
    expect(decoded.ok).toBe(true);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.prototype.hasOwnProperty.call(Object.prototype, 'polluted')).toBe(false);
    if (decoded.ok) {
      expect(Object.getPrototypeOf(decoded.value)).toBe(Object.prototype);
      expect((decoded.value as Record<string, unknown>).polluted).toBeUndefined();
    }
  });

  it('decoding a map with a __proto__ key leaves Object.prototype untouched (json)', () => {
    const decoded = decodeMessage('{"__proto__":{"polluted":true},"t":"ping"}', false, 'json');
    expect(decoded.ok).toBe(true);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    if (decoded.ok) {
      expect(Object.getPrototypeOf(decoded.value)).toBe(Object.prototype);
      expect((decoded.value as Record<string, unknown>).polluted).toBeUndefined();
    }
  });
});

describe('properties', () => {
  let acceptedCount = 0;
  let refusedCount = 0;

  function checkGuardAgainstDecoder(input: Uint8Array): void {
    let reason: string | null = null;
    expect(() => {
      reason = checkPlainMsgpack(input);
    }).not.toThrow();
    expect(reason === null || (typeof reason === 'string' && (reason as string).length > 0)).toBe(true);
    if (reason === null) acceptedCount++;
    else refusedCount++;
    if (reason === null) {
      // msgpackr's default decoder reads it without throwing...
      expect(() => unpack(input)).not.toThrow();
      // ...and the codec's decoder yields plain data only.
      const value: unknown = codecUnpackr.unpack(input);
      expect(isPlain(value)).toBe(true);
      const decoded = decodeMessage(input, true, 'msgpack');
      expect(decoded.ok).toBe(true);
      if (decoded.ok) expect(isPlain(decoded.value)).toBe(true);
    } else {
      expect(decodeMessage(input, true, 'msgpack')).toStrictEqual({ ok: false, reason });
    }
  }

  it('for arbitrary bytes, never throws; when it accepts, msgpackr decodes plain data', () => {
    acceptedCount = refusedCount = 0;
    fc.assert(fc.property(fc.uint8Array({ maxLength: 2048 }), checkGuardAgainstDecoder), { numRuns: 3000 });
    // Both branches were exercised.
    expect(acceptedCount).toBeGreaterThan(0);
    expect(refusedCount).toBeGreaterThan(0);
  });

  it('for mostly-valid msgpack with random damage, never throws; when it accepts, msgpackr decodes plain data', () => {
    const packr = new Packr({ useRecords: false });
    const damaged = fc
      .tuple(
        fc.jsonValue({ maxDepth: 6 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
        fc.nat(),
        fc.uint8Array({ maxLength: 3 }),
      )
      .map(([value, edits, cut, tail]) => {
        const packed = new Uint8Array(packr.pack(value));
        for (const [at, byte] of edits) if (packed.length > 0) packed[at % packed.length] = byte;
        const kept = packed.subarray(0, packed.length - (cut % 3 === 0 ? cut % Math.max(1, packed.length) : 0));
        return bytes(kept, tail);
      });
    acceptedCount = refusedCount = 0;
    fc.assert(fc.property(damaged, checkGuardAgainstDecoder), { numRuns: 3000 });
    expect(acceptedCount).toBeGreaterThan(100);
    expect(refusedCount).toBeGreaterThan(100);
  });

  it('accepts every JSON value packed by msgpackr without records', () => {
    const packr = new Packr({ useRecords: false });
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: MAX_DEPTH - 1 }), (value) => {
        const packed = packr.pack(value);
        expect(checkPlainMsgpack(packed)).toBeNull();
        expect(isPlain(codecUnpackr.unpack(packed))).toBe(true);
      }),
      { numRuns: 1000 },
    );
  });
});
