import { Packr } from 'msgpackr';
import { MAX_DEPTH } from '../../protocol/msgpack-guard.js';

/**
 * Raw msgpack bytes for attack tests, built by hand so that a frame can say exactly what a
 * well-behaved encoder never would: `__proto__` keys, headers that lie about their length,
 * extensions, binary blobs, non-string keys and absurd nesting.
 */

export type Bytes = Uint8Array;

const utf8 = new TextEncoder();

export function bytes(...parts: (number | number[] | Bytes)[]): Bytes {
  const flat: number[] = [];
  for (const part of parts) {
    if (typeof part === 'number') flat.push(part);
    else flat.push(...part);
  }
  return Uint8Array.from(flat);
}

export function concat(...parts: Bytes[]): Bytes {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function be(value: number, width: 1 | 2 | 4): number[] {
  const out: number[] = [];
  for (let shift = (width - 1) * 8; shift >= 0; shift -= 8) out.push(Math.floor(value / 2 ** shift) & 0xff);
  return out;
}

export const mp = {
  nil: (): Bytes => bytes(0xc0),
  bool: (value: boolean): Bytes => bytes(value ? 0xc3 : 0xc2),
  /** Any safe integer in its shortest msgpack form. */
  int(value: number): Bytes {
    if (value >= 0 && value <= 0x7f) return bytes(value);
    if (value < 0 && value >= -32) return bytes(0x100 + value);
    if (value >= 0 && value <= 0xff) return bytes(0xcc, value);
    if (value >= 0 && value <= 0xffff) return bytes(0xcd, be(value, 2));
    if (value >= 0 && value <= 0xffffffff) return bytes(0xce, be(value, 4));
    if (value >= -0x80 && value < 0) return bytes(0xd0, value & 0xff);
    return mp.f64(value);
  },
  f64(value: number): Bytes {
    const out = new Uint8Array(9);
    out[0] = 0xcb;
    new DataView(out.buffer).setFloat64(1, value);
    return out;
  },
  /** A string from raw UTF-8 (or deliberately invalid) bytes. */
  strBytes(raw: Bytes): Bytes {
    const n = raw.length;
    if (n < 32) return concat(bytes(0xa0 | n), raw);
    if (n <= 0xff) return concat(bytes(0xd9, n), raw);
    if (n <= 0xffff) return concat(bytes(0xda, be(n, 2)), raw);
    return concat(bytes(0xdb, be(n, 4)), raw);
  },
  str: (value: string): Bytes => mp.strBytes(utf8.encode(value)),
  arr(items: Bytes[]): Bytes {
    const n = items.length;
    const head = n < 16 ? bytes(0x90 | n) : n <= 0xffff ? bytes(0xdc, be(n, 2)) : bytes(0xdd, be(n, 4));
    return concat(head, ...items);
  },
  /** A map; string keys are encoded as msgpack strings, byte keys are written as they are. */
  map(entries: [string | Bytes, Bytes][]): Bytes {
    const n = entries.length;
    const head = n < 16 ? bytes(0x80 | n) : n <= 0xffff ? bytes(0xde, be(n, 2)) : bytes(0xdf, be(n, 4));
    return concat(head, ...entries.flatMap(([key, value]) => [typeof key === 'string' ? mp.str(key) : key, value]));
  },
  /** A map from a plain object's own entries (values: strings, numbers, booleans, null, nested plain objects and arrays). */
  obj(value: Record<string, unknown>): Bytes {
    return mp.map(Object.entries(value).map(([key, item]) => [key, mp.value(item)]));
  },
  value(item: unknown): Bytes {
    if (item === null) return mp.nil();
    if (item instanceof Uint8Array) return item;
    if (typeof item === 'string') return mp.str(item);
    if (typeof item === 'boolean') return mp.bool(item);
    if (typeof item === 'number') return Number.isInteger(item) ? mp.int(item) : mp.f64(item);
    if (Array.isArray(item)) return mp.arr(item.map((entry) => mp.value(entry)));
    return mp.obj(item as Record<string, unknown>);
  },
};

/** One hostile frame and the error code the server must answer it with. */
export interface CorpusEntry {
  name: string;
  data: Bytes | string;
  /** Acceptable err codes (the first is the expected one). */
  codes: readonly string[];
  /** When set, the err must carry this request id (a refused `gen` with a usable id). */
  id?: string;
}

const BAD = ['bad_frame'] as const;
const INVALID = ['invalid_params'] as const;
const UNKNOWN_TYPE = ['unknown_type'] as const;

/** Wraps a value into the prompt of an otherwise valid `gen`, so the guard must look inside. */
const genWith = (value: Bytes): Bytes => mp.map([['t', mp.str('gen')], ['id', mp.str('inner')], ['prompt', value]]);

const filler = (n: number): number[] => Array.from({ length: n }, (_, index) => index & 0x7f);

/** Every msgpack extension encoding, the msgpackr-specific ones included. */
export function extensionEntries(): CorpusEntry[] {
  const records = new Packr({ useRecords: true } as ConstructorParameters<typeof Packr>[0]);
  const clone = new Packr({ structuredClone: true, moreTypes: true } as ConstructorParameters<typeof Packr>[0]);
  const more = new Packr({ moreTypes: true } as ConstructorParameters<typeof Packr>[0]);
  const cyclic: Record<string, unknown> = { t: 'ping' };
  cyclic.self = cyclic;
  const raw: [string, Bytes][] = [
    ['fixext 1', bytes(0xd4, 0x01, 0x00)],
    ['fixext 2', bytes(0xd5, 0x01, filler(2))],
    ['fixext 4', bytes(0xd6, 0x01, filler(4))],
    ['fixext 8', bytes(0xd7, 0x01, filler(8))],
    ['fixext 16', bytes(0xd8, 0x01, filler(16))],
    ['ext 8', bytes(0xc7, 0x03, 0x01, filler(3))],
    ['ext 16', bytes(0xc8, 0x00, 0x03, 0x01, filler(3))],
    ['ext 32', bytes(0xc9, 0x00, 0x00, 0x00, 0x03, 0x01, filler(3))],
    ['ext 32 claiming 4 GB', bytes(0xc9, 0xff, 0xff, 0xff, 0xff, 0x01, filler(4))],
    ['negative ext type', bytes(0xd4, 0x80, 0x00)],
    ['timestamp 32', bytes(0xd6, 0xff, 0, 0, 0, 0)],
    ['timestamp 64', bytes(0xd7, 0xff, filler(8))],
    ['timestamp 96', bytes(0xc7, 0x0c, 0xff, filler(12))],
    ['msgpackr record', records.pack({ t: 'ping' })],
    ['msgpackr record of a gen', records.pack({ t: 'gen', id: 'rec', prompt: 'p', maxTokens: 1 })],
    ['msgpackr structured clone (cycle)', clone.pack(cyclic)],
    ['msgpackr Set', clone.pack(new Set(['ping']))],
    ['msgpackr RegExp', clone.pack(/(a+)+$/)],
    ['msgpackr Error', clone.pack(new Error('boom'))],
    ['msgpackr Date', more.pack(new Date(0))],
    ['msgpackr undefined', more.pack(undefined)],
    ['msgpackr typed array', more.pack(new Float64Array([1, 2]))],
    ['msgpackr Uint8Array', more.pack(new Uint8Array([1, 2, 3]))],
    ['msgpackr BigInt extension', new Packr({ useBigIntExtension: true } as ConstructorParameters<typeof Packr>[0]).pack(2n ** 70n)],
  ];
  return raw.flatMap(([name, data]) => [
    { name, data, codes: BAD },
    { name: `${name} inside a gen`, data: genWith(data), codes: BAD },
  ]);
}

/** Binary values in every width, alone and as a field. */
export function binaryEntries(): CorpusEntry[] {
  const raw: [string, Bytes][] = [
    ['bin 8', bytes(0xc4, 0x03, 1, 2, 3)],
    ['bin 16', bytes(0xc5, 0x00, 0x03, 1, 2, 3)],
    ['bin 32', bytes(0xc6, 0x00, 0x00, 0x00, 0x03, 1, 2, 3)],
    ['bin 32 claiming 4 GB', bytes(0xc6, 0xff, 0xff, 0xff, 0xff, 1, 2, 3)],
  ];
  return raw.flatMap(([name, data]) => [
    { name, data, codes: BAD },
    { name: `${name} inside a gen`, data: genWith(data), codes: BAD },
  ]);
}

/** Headers that claim far more than the frame holds. */
export function lyingHeaderEntries(): CorpusEntry[] {
  const pad = filler(5);
  return [
    { name: 'array32 claiming 2^32-1 items in 10 bytes', data: bytes(0xdd, 0xff, 0xff, 0xff, 0xff, pad), codes: BAD },
    { name: 'map32 claiming 2^32-1 entries in 10 bytes', data: bytes(0xdf, 0xff, 0xff, 0xff, 0xff, pad), codes: BAD },
    { name: 'array16 claiming 65535 items', data: bytes(0xdc, 0xff, 0xff, pad), codes: BAD },
    { name: 'map16 claiming 65535 entries', data: bytes(0xde, 0xff, 0xff, pad), codes: BAD },
    { name: 'str32 claiming 4 GB', data: bytes(0xdb, 0xff, 0xff, 0xff, 0xff, 0x61, 0x62, 0x63, 0x64, 0x65), codes: BAD },
    { name: 'str16 claiming 65535 bytes', data: bytes(0xda, 0xff, 0xff, 0x61), codes: BAD },
    { name: 'str8 claiming 255 bytes', data: bytes(0xd9, 0xff, 0x61), codes: BAD },
    { name: 'fixmap claiming 15 entries holding 1', data: concat(bytes(0x8f), mp.str('t'), mp.str('ping')), codes: BAD },
    { name: 'prompt as str32 claiming 4 GB', data: concat(bytes(0x83), mp.str('t'), mp.str('gen'), mp.str('id'), mp.str('lie'), mp.str('prompt'), bytes(0xdb, 0xff, 0xff, 0xff, 0xff, 0x61)), codes: BAD },
    { name: 'stop as array32 claiming 2^32-1 items', data: concat(bytes(0x84), mp.str('t'), mp.str('gen'), mp.str('id'), mp.str('lie2'), mp.str('prompt'), mp.str('p'), mp.str('stop'), bytes(0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0)), codes: BAD },
    { name: 'float64 cut short', data: bytes(0x81, 0xa1, 0x74, 0xcb, 0x00, 0x00), codes: BAD },
    { name: 'uint64 cut short', data: bytes(0x81, 0xa1, 0x74, 0xcf, 0x00), codes: BAD },
  ];
}

/** Nesting far past any sane depth, and right at the guard's limit. */
export function nestingEntries(): CorpusEntry[] {
  const deepArrays = concat(new Uint8Array(10_000).fill(0x91), bytes(0xc0));
  const deepMaps = concat(...Array.from({ length: 10_000 }, () => bytes(0x81, 0xa1, 0x61)), bytes(0xc0));
  const nestedStop = (depth: number): Bytes =>
    concat(bytes(0x84), mp.str('t'), mp.str('gen'), mp.str('id'), mp.str(`deep${depth}`), mp.str('prompt'), mp.str('p'), mp.str('stop'), new Uint8Array(depth).fill(0x91), mp.str('x'));
  return [
    { name: 'arrays nested 10,000 deep', data: deepArrays, codes: BAD },
    { name: 'maps nested 10,000 deep', data: deepMaps, codes: BAD },
    { name: 'gen whose stop is nested 10,000 deep', data: nestedStop(10_000), codes: BAD },
    // MAX_DEPTH (the frame map plus MAX_DEPTH - 1 arrays) still decodes; it is then refused by the schema.
    { name: `gen whose stop is nested ${MAX_DEPTH - 1} deep (guard limit)`, data: nestedStop(MAX_DEPTH - 1), codes: INVALID, id: `deep${MAX_DEPTH - 1}` },
    { name: `gen whose stop is nested ${MAX_DEPTH} deep (one past the limit)`, data: nestedStop(MAX_DEPTH), codes: BAD },
  ];
}

/** Every proper prefix of a valid `gen`. */
export function truncatedEntries(): CorpusEntry[] {
  const whole = mp.obj({ t: 'gen', id: 'cut', prompt: 'Alice was beginning', maxTokens: 5, temperature: 0.5 });
  return Array.from({ length: whole.length - 1 }, (_, index) => ({ name: `gen truncated to ${index + 1} of ${whole.length} bytes`, data: whole.subarray(0, index + 1), codes: BAD }));
}

/** `__proto__`, `constructor` and `prototype` keys, and type tags and ids named after Object.prototype members. */
export function prototypeEntries(): CorpusEntry[] {
  const polluted = mp.obj({ polluted: true });
  return [
    { name: '__proto__ smuggling the type tag', data: mp.map([['__proto__', mp.obj({ t: 'ping' })]]), codes: BAD },
    { name: '__proto__ smuggling the prompt', data: mp.map([['t', mp.str('gen')], ['id', mp.str('pp1')], ['__proto__', mp.obj({ prompt: 'p', maxTokens: 1 })]]), codes: INVALID, id: 'pp1' },
    { name: '__proto__ polluting from a refused gen', data: mp.map([['t', mp.str('gen')], ['id', mp.str('pp2')], ['prompt', mp.str('p')], ['maxTokens', mp.int(0)], ['__proto__', polluted]]), codes: INVALID, id: 'pp2' },
    { name: 'constructor.prototype polluting from a refused gen', data: mp.map([['t', mp.str('gen')], ['id', mp.str('pp3')], ['prompt', mp.str('p')], ['maxTokens', mp.str('x')], ['constructor', mp.map([['prototype', polluted]])]]), codes: INVALID, id: 'pp3' },
    { name: '__proto__, constructor and prototype keys on an unknown type', data: mp.map([['t', mp.str('launch')], ['__proto__', polluted], ['constructor', mp.map([['prototype', polluted]])], ['prototype', polluted]]), codes: UNKNOWN_TYPE },
    { name: 'nested __proto__ in __proto__', data: mp.map([['__proto__', mp.map([['__proto__', polluted]])]]), codes: BAD },
    { name: '__proto__ smuggling a valid ts', data: mp.map([['t', mp.str('ping')], ['ts', mp.str('x')], ['__proto__', mp.obj({ ts: 1 })]]), codes: INVALID },
    { name: '__proto__ smuggling a cancel id', data: mp.map([['t', mp.str('cancel')], ['__proto__', mp.obj({ id: 'abc' })]]), codes: INVALID },
    { name: 'duplicate __proto__ keys', data: mp.map([['__proto__', polluted], ['__proto__', polluted], ['t', mp.str('nope')]]), codes: UNKNOWN_TYPE },
    ...['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'prototype'].map((tag) => ({ name: `type tag "${tag}"`, data: mp.obj({ t: tag }), codes: UNKNOWN_TYPE })),
    ...['__proto__', 'constructor', 'toString', 'hasOwnProperty'].map((id) => ({ name: `cancel of id "${id}"`, data: mp.obj({ t: 'cancel', id }), codes: ['unknown_id'] })),
    { name: 'gen with id "__proto__" and invalid params', data: mp.obj({ t: 'gen', id: '__proto__', prompt: 'p', maxTokens: -1 }), codes: INVALID, id: '__proto__' },
  ];
}

/** Structurally valid msgpack that is not a valid frame. */
export function schemaEntries(): CorpusEntry[] {
  const nonStringKey = (key: Bytes): Bytes => concat(bytes(0x82), mp.str('t'), mp.str('ping'), key, mp.str('x'));
  return [
    { name: 'empty frame', data: new Uint8Array(0), codes: BAD },
    { name: 'byte 0xc1 (never used)', data: bytes(0xc1), codes: BAD },
    { name: 'a lone nil', data: mp.nil(), codes: BAD },
    { name: 'an array of frames', data: mp.arr([mp.obj({ t: 'ping' })]), codes: BAD },
    { name: 'two frames in one message', data: concat(mp.obj({ t: 'ping' }), mp.obj({ t: 'ping' })), codes: BAD },
    { name: 'trailing byte after a ping', data: concat(mp.obj({ t: 'ping' }), bytes(0x00)), codes: BAD },
    { name: 'integer key', data: nonStringKey(mp.int(1)), codes: BAD },
    { name: 'nil key', data: nonStringKey(mp.nil()), codes: BAD },
    { name: 'float key', data: nonStringKey(mp.f64(1.5)), codes: BAD },
    { name: 'array key', data: nonStringKey(mp.arr([mp.str('t')])), codes: BAD },
    { name: 'map key', data: nonStringKey(mp.obj({ t: 'ping' })), codes: BAD },
    { name: 'type tag is a number', data: mp.obj({ t: 42 }), codes: BAD },
    { name: 'type tag is a map', data: mp.obj({ t: { t: 'ping' } }), codes: BAD },
    { name: 'invalid UTF-8 in the type tag', data: mp.map([['t', mp.strBytes(bytes(0xff, 0xfe, 0xc0, 0x80))]]), codes: [...UNKNOWN_TYPE, ...BAD] },
    { name: 'NaN maxTokens', data: mp.map([['t', mp.str('gen')], ['id', mp.str('nan')], ['prompt', mp.str('p')], ['maxTokens', mp.f64(Number.NaN)]]), codes: INVALID, id: 'nan' },
    { name: 'Infinity temperature', data: mp.map([['t', mp.str('gen')], ['id', mp.str('inf')], ['prompt', mp.str('p')], ['temperature', mp.f64(Number.POSITIVE_INFINITY)]]), codes: INVALID, id: 'inf' },
    { name: 'uint64 maxTokens 2^64-1', data: mp.map([['t', mp.str('gen')], ['id', mp.str('u64')], ['prompt', mp.str('p')], ['maxTokens', bytes(0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)]]), codes: INVALID, id: 'u64' },
    { name: 'int64 seed -2^63', data: mp.map([['t', mp.str('gen')], ['id', mp.str('i64')], ['prompt', mp.str('p')], ['seed', bytes(0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0)]]), codes: INVALID, id: 'i64' },
    { name: 'negative-zero maxTokens', data: mp.map([['t', mp.str('gen')], ['id', mp.str('nz')], ['prompt', mp.str('p')], ['maxTokens', mp.f64(-0)]]), codes: INVALID, id: 'nz' },
    { name: 'prompt is an array', data: mp.obj({ t: 'gen', id: 'pa', prompt: ['p'] }), codes: INVALID, id: 'pa' },
    { name: 'nine stop sequences', data: mp.obj({ t: 'gen', id: 'st', prompt: 'p', stop: Array.from({ length: 9 }, () => 'x') }), codes: INVALID, id: 'st' },
    { name: 'stop sequence of 65 characters', data: mp.obj({ t: 'gen', id: 'sl', prompt: 'p', stop: ['x'.repeat(65)] }), codes: INVALID, id: 'sl' },
    { name: 'id of 129 characters', data: mp.obj({ t: 'gen', id: 'i'.repeat(129), prompt: 'p' }), codes: INVALID },
    { name: 'id is a number', data: mp.obj({ t: 'gen', id: 7, prompt: 'p' }), codes: INVALID },
    { name: 'empty id', data: mp.obj({ t: 'cancel', id: '' }), codes: INVALID },
    { name: 'ping ts is a string', data: mp.obj({ t: 'ping', ts: 'soon' }), codes: INVALID },
    { name: 'ping ts is NaN', data: mp.map([['t', mp.str('ping')], ['ts', mp.f64(Number.NaN)]]), codes: INVALID },
    { name: 'model name of 257 characters', data: mp.obj({ t: 'gen', id: 'mn', prompt: 'p', model: 'm'.repeat(257) }), codes: INVALID, id: 'mn' },
    { name: 'model name "../../etc/passwd"', data: mp.obj({ t: 'gen', id: 'mp', prompt: 'p', model: '../../etc/passwd' }), codes: ['model_not_found'], id: 'mp' },
    { name: 'map of 30,000 keys', data: mp.map([['t', mp.str('nope')], ...Array.from({ length: 30_000 }, (_, index): [string, Bytes] => [`k${index}`, mp.nil()])]), codes: UNKNOWN_TYPE },
  ];
}

/** Seeded random garbage (bytes that are not a frame). */
export function garbageEntries(seed: number, count: number): CorpusEntry[] {
  const random = mulberry32(seed);
  return Array.from({ length: count }, (_, index) => {
    const length = 1 + Math.floor(random() * 64);
    const data = Uint8Array.from({ length }, () => Math.floor(random() * 256));
    return { name: `random garbage #${index} (${length} bytes)`, data, codes: ['bad_frame', 'invalid_params', 'unknown_type', 'unknown_id'] };
  });
}

/** The whole msgpack corpus. */
export function msgpackCorpus(): CorpusEntry[] {
  return [
    ...extensionEntries(),
    ...binaryEntries(),
    ...lyingHeaderEntries(),
    ...nestingEntries(),
    ...truncatedEntries(),
    ...prototypeEntries(),
    ...schemaEntries(),
    ...garbageEntries(0xa77ac4, 24),
  ];
}

/** Hostile text frames for the JSON subprotocol. */
export function jsonCorpus(): CorpusEntry[] {
  return [
    { name: 'JSON __proto__ smuggling the type tag', data: '{"__proto__":{"t":"ping"}}', codes: BAD },
    { name: 'JSON __proto__ smuggling the prompt', data: '{"t":"gen","id":"jp1","__proto__":{"prompt":"p","maxTokens":1}}', codes: INVALID, id: 'jp1' },
    { name: 'JSON __proto__ polluting from a refused gen', data: '{"t":"gen","id":"jp2","prompt":"p","maxTokens":0,"__proto__":{"polluted":true}}', codes: INVALID, id: 'jp2' },
    { name: 'JSON constructor.prototype', data: '{"t":"launch","constructor":{"prototype":{"polluted":true}},"prototype":{"polluted":true}}', codes: UNKNOWN_TYPE },
    { name: 'JSON arrays nested 10,000 deep', data: `${'['.repeat(10_000)}${']'.repeat(10_000)}`, codes: BAD },
    { name: 'JSON objects nested 10,000 deep', data: `${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}`, codes: BAD },
    { name: 'JSON gen whose stop is nested 10,000 deep', data: `{"t":"gen","id":"jd","prompt":"p","stop":${'['.repeat(10_000)}${']'.repeat(10_000)}}`, codes: INVALID, id: 'jd' },
    { name: 'JSON empty text', data: '', codes: BAD },
    { name: 'JSON null', data: 'null', codes: BAD },
    { name: 'JSON string', data: '"gen"', codes: BAD },
    { name: 'JSON truncated', data: '{"t":"ping"', codes: BAD },
    { name: 'JSON 1e400 ts', data: '{"t":"ping","ts":1e400}', codes: INVALID },
    { name: 'JSON 1e400 maxTokens', data: '{"t":"gen","id":"jbig","prompt":"p","maxTokens":1e400}', codes: INVALID, id: 'jbig' },
    { name: 'JSON lone surrogate type tag', data: '{"t":"\\ud800"}', codes: UNKNOWN_TYPE },
    { name: 'JSON duplicate keys', data: '{"t":"ping","t":"launch"}', codes: UNKNOWN_TYPE },
    { name: 'JSON binary frame', data: mp.obj({ t: 'ping' }), codes: BAD },
  ];
}

/** A small fast PRNG; the same seed gives the same sequence. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
