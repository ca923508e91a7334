import { decodeMessage, type FeedFrame, type FeedSnapshot } from '../../../../protocol/index.js';

/*
 * The feed's frames enter the dashboard here: bytes are decoded by the shared protocol codec and
 * shape-checked once, so stores and pages only ever see typed snapshots.
 */

export type ParsedFeed = { ok: true; frame: FeedFrame } | { ok: false; reason: string };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** True when the value has the fields the dashboard reads from a snapshot. */
export function isSnapshot(value: unknown): value is FeedSnapshot {
  if (!isRecord(value) || value.t !== 'snapshot' || typeof value.ts !== 'number') return false;
  return (
    isRecord(value.tokensPerSecond) &&
    isRecord(value.ttftMs) &&
    isRecord(value.interTokenMs) &&
    isRecord(value.requests) &&
    isRecord(value.slots) &&
    typeof value.connections === 'number' &&
    isRecord(value.resources) &&
    Array.isArray(value.models) &&
    Array.isArray(value.errors)
  );
}

/** Checks a decoded value; snapshots that do not fit are dropped from a history, not fatal. */
export function parseFeedValue(value: unknown): ParsedFeed {
  if (!isRecord(value)) return { ok: false, reason: 'feed frame is not a map' };
  if (value.t === 'snapshot') return isSnapshot(value) ? { ok: true, frame: value } : { ok: false, reason: 'malformed snapshot' };
  if (value.t === 'history') {
    if (!Array.isArray(value.snapshots)) return { ok: false, reason: 'history without snapshots' };
    return { ok: true, frame: { t: 'history', snapshots: value.snapshots.filter(isSnapshot) } };
  }
  return { ok: false, reason: `unknown feed frame ${JSON.stringify(value.t)}` };
}

/** Decodes one binary WebSocket message of the feed. */
export function parseFeedMessage(data: ArrayBuffer | Uint8Array | string): ParsedFeed {
  const decoded = decodeMessage(data, typeof data !== 'string', 'msgpack');
  return decoded.ok ? parseFeedValue(decoded.value) : { ok: false, reason: decoded.reason };
}
