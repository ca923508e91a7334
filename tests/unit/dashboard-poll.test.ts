import { afterEach, describe, expect, it, vi } from 'vitest';
import { startPolling } from '../../dashboard/src/lib/poll.svelte.js';

describe('startPolling', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('runs at once, then every interval, and never again once stopped', () => {
    vi.useFakeTimers();
    const run = vi.fn(async () => undefined);
    const stop = startPolling(run, 2000);
    expect(run).toHaveBeenCalledOnce();
    vi.advanceTimersByTime(1999);
    expect(run).toHaveBeenCalledOnce();
    vi.advanceTimersByTime(1);
    expect(run).toHaveBeenCalledTimes(2);
    vi.advanceTimersByTime(4000);
    expect(run).toHaveBeenCalledTimes(4);
    stop();
    vi.advanceTimersByTime(10_000);
    expect(run).toHaveBeenCalledTimes(4);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('uses the timers it is given', () => {
    const timers = { setInterval: vi.fn(() => 7), clearInterval: vi.fn() };
    const stop = startPolling(() => undefined, 500, timers);
    expect(timers.setInterval).toHaveBeenCalledWith(expect.any(Function), 500);
    stop();
    expect(timers.clearInterval).toHaveBeenCalledWith(7);
  });
});
