import { describe, expect, it } from 'vitest';
import type { ServerFrame } from '../../protocol/index.js';
import { FRAME_OVERHEAD_BYTES, FrameWindow, frameBytes } from '../../server/gateway/resume-window.js';
import { newResumeToken, tokenDigest, tokenMatches } from '../../server/gateway/resume-token.js';

const tok = (text: string, seq: number): ServerFrame => ({ t: 'tok', id: 'r', text, seq });

function filled(count: number): FrameWindow {
  const window = new FrameWindow();
  for (let seq = 1; seq <= count; seq++) window.push(tok(`piece ${seq}`, seq));
  return window;
}

describe('FrameWindow', () => {
  it('keeps frames by seq from 1 and counts their estimated memory', () => {
    const window = new FrameWindow();
    expect([window.firstSeq, window.lastSeq, window.bytes]).toEqual([1, 0, 0]);
    expect(window.push(tok('héllo', 1))).toBe(FRAME_OVERHEAD_BYTES + 10);
    window.push({ t: 'start', id: 'r', model: 'demo', seq: 2 });
    expect([window.firstSeq, window.lastSeq, window.bytes]).toEqual([1, 2, 2 * FRAME_OVERHEAD_BYTES + 10]);
    expect(window.at(1)).toMatchObject({ text: 'héllo' });
    expect(window.at(2)).toMatchObject({ t: 'start' });
    expect(window.at(0)).toBeUndefined();
    expect(window.at(3)).toBeUndefined();
  });

  it('counts an end frame with its nested objects and an err with its message', () => {
    const end: ServerFrame = { t: 'end', id: 'r', reason: 'stop', usage: { promptTokens: 1, completionTokens: 2 }, timings: { queueMs: 0, ttftMs: 1, totalMs: 2 } };
    expect(frameBytes(end)).toBe(3 * FRAME_OVERHEAD_BYTES);
    expect(frameBytes({ t: 'err', id: 'r', code: 'internal', message: 'abc' })).toBe(2 * FRAME_OVERHEAD_BYTES + 6);
  });

  it('trims the oldest frames until enough is freed, never from beforeSeq on', () => {
    const window = filled(10);
    const each = frameBytes(tok('piece 1', 1));
    expect(window.trim(each + 1, 100)).toBe(2 * each);
    expect([window.firstSeq, window.lastSeq]).toEqual([3, 10]);
    expect(window.at(2)).toBeUndefined();
    expect(window.at(3)).toMatchObject({ text: 'piece 3' });
    // Frames from seq 5 on are protected: only 3 and 4 can go.
    expect(window.trim(Number.POSITIVE_INFINITY, 5)).toBe(2 * each);
    expect(window.firstSeq).toBe(5);
    expect(window.trim(Number.POSITIVE_INFINITY, 5)).toBe(0);
  });

  it('goes on numbering after a clear, and compacts what it trimmed', () => {
    const window = filled(600);
    const total = window.bytes;
    expect(window.clear()).toBe(total);
    expect([window.firstSeq, window.lastSeq, window.bytes]).toEqual([601, 600, 0]);
    window.push(tok('next', 601));
    expect(window.at(601)).toMatchObject({ text: 'next' });
    const long = filled(1000);
    long.trim(Number.POSITIVE_INFINITY, 701);
    expect(long.at(700)).toBeUndefined();
    expect(long.at(701)).toMatchObject({ text: 'piece 701' });
    expect(long.at(1000)).toMatchObject({ text: 'piece 1000' });
  });
});

describe('resume tokens', () => {
  it('are 256 random bits, never repeated, and only their own digest matches', () => {
    const tokens = new Set(Array.from({ length: 200 }, () => newResumeToken()));
    expect(tokens.size).toBe(200);
    const [first, second] = [...tokens] as [string, string];
    expect(first).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const digest = tokenDigest(first);
    expect(digest).toHaveLength(32);
    expect(tokenMatches(first, digest)).toBe(true);
    expect(tokenMatches(second, digest)).toBe(false);
    // Any length is compared (as a digest) without throwing.
    expect(tokenMatches('', digest)).toBe(false);
    expect(tokenMatches(first + first, digest)).toBe(false);
  });
});
