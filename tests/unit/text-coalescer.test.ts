import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { TextCoalescer } from '../../server/gateway/text-coalescer.js';

/** A coalescer whose frames land in `sent`, on fake timers and a fake clock. */
function coalescer(windowMs: number): { text: TextCoalescer; sent: string[] } {
  const sent: string[] = [];
  return { text: new TextCoalescer(windowMs, (text) => sent.push(text)), sent };
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
});

afterEach(() => {
  vi.useRealTimers();
});

describe('TextCoalescer', () => {
  it('sends the first piece at once', () => {
    const { text, sent } = coalescer(5);
    text.push('Alice');
    expect(sent).toEqual(['Alice']);
  });

  it('holds pieces that come within the window and sends them with the first piece after it', () => {
    const { text, sent } = coalescer(5);
    text.push('A');
    vi.advanceTimersByTime(1);
    text.push('l');
    vi.advanceTimersByTime(2);
    text.push('i');
    expect(sent).toEqual(['A']);
    vi.advanceTimersByTime(2);
    text.push('ce');
    expect(sent).toEqual(['A', 'lice']);
  });

  it('sends every piece of a stream slower than the window as it comes', () => {
    const { text, sent } = coalescer(5);
    for (const piece of ['a', 'b', 'c']) {
      text.push(piece);
      vi.advanceTimersByTime(6);
    }
    expect(sent).toEqual(['a', 'b', 'c']);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('sends held text two windows after the previous frame when no further piece comes', () => {
    const { text, sent } = coalescer(5);
    text.push('a');
    vi.advanceTimersByTime(1);
    text.push('b');
    vi.advanceTimersByTime(8);
    expect(sent).toEqual(['a']);
    vi.advanceTimersByTime(1);
    expect(sent).toEqual(['a', 'b']);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('flush sends what is held, stops the guard timer and sends nothing when empty', () => {
    const { text, sent } = coalescer(5);
    text.push('a');
    text.push('b');
    text.flush();
    text.flush();
    expect(sent).toEqual(['a', 'b']);
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(100);
    expect(sent).toEqual(['a', 'b']);
  });

  it('restarts the window from the last frame sent by flush', () => {
    const { text, sent } = coalescer(5);
    text.push('a');
    vi.advanceTimersByTime(1);
    text.push('b');
    text.flush();
    vi.advanceTimersByTime(1);
    text.push('c');
    expect(sent).toEqual(['a', 'b']);
  });

  it('sends a frame per piece with a window of 0', () => {
    const { text, sent } = coalescer(0);
    for (const piece of ['a', 'b', 'c']) text.push(piece);
    expect(sent).toEqual(['a', 'b', 'c']);
    expect(vi.getTimerCount()).toBe(0);
  });
});
