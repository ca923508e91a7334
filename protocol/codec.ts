import { Packr, Unpackr } from 'msgpackr';
import { Subprotocol } from './constants.js';
import { checkPlainMsgpack } from './msgpack-guard.js';

/** How frames travel on a connection: binary msgpack or text JSON of the same maps. */
export type WireFormat = 'msgpack' | 'json';

// Records, structured clone and extra types off: frames stay plain msgpack any decoder can read.
// Fields set to undefined are left out rather than written as msgpackr's "undefined" extension.
const packerOptions = { useRecords: false, moreTypes: false, structuredClone: false, skipValues: [undefined] };
const packr = new Packr(packerOptions as ConstructorParameters<typeof Packr>[0]);
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, structuredClone: false, moreTypes: false, int64AsType: 'number' });
const textDecoder = new TextDecoder('utf-8', { fatal: true });

/** Result of decoding one WebSocket message into a plain value. */
export type Decoded = { ok: true; value: unknown } | { ok: false; reason: string };

/** Maps a negotiated subprotocol to its wire format; undefined or empty means msgpack. */
export function wireFormatOf(subprotocol: string | undefined): WireFormat {
  return subprotocol === Subprotocol.json ? 'json' : 'msgpack';
}

/** Encodes a frame for the wire: bytes for msgpack, a string for JSON. */
export function encodeFrame(frame: object, format: WireFormat): Uint8Array | string {
  return format === 'msgpack' ? packr.pack(frame) : JSON.stringify(frame);
}

/**
 * Decodes one WebSocket message. Binary messages are accepted only on msgpack connections and
 * text messages only on JSON connections; msgpack is screened by checkPlainMsgpack first.
 */
export function decodeMessage(data: ArrayBuffer | Uint8Array | string, isBinary: boolean, format: WireFormat): Decoded {
  if (format === 'msgpack') {
    if (!isBinary || typeof data === 'string') return { ok: false, reason: 'text frames are not accepted on the msgpack subprotocol' };
    const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
    const problem = checkPlainMsgpack(bytes);
    if (problem !== null) return { ok: false, reason: problem };
    try {
      return { ok: true, value: unpackr.unpack(bytes) };
    } catch (error) {
      return { ok: false, reason: `undecodable msgpack: ${(error as Error).message}` };
    }
  }
  if (isBinary) return { ok: false, reason: 'binary frames are not accepted on the json subprotocol' };
  let text: string;
  try {
    text = typeof data === 'string' ? data : textDecoder.decode(data);
  } catch {
    return { ok: false, reason: 'text frame is not valid UTF-8' };
  }
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    return { ok: false, reason: 'text frame is not valid JSON' };
  }
}
