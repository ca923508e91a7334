import { afterEach, describe, expect, it, vi } from 'vitest';
import { Ingress, type IngressQueue } from '../../server/gateway/ingress.js';

/**
 * A queue of named frames; handling one records it and may take main-loop time: it moves the
 * clock by `costMs` (a faked performance.now, so the slice arithmetic is exact on any machine).
 */
function queue(name: string, frames: number, log: string[], costMs = 0): IngressQueue & { left: number } {
  const q = {
    left: frames,
    handleNext(): boolean {
      if (q.left === 0) return false;
      if (costMs > 0) vi.advanceTimersByTime(costMs);
      log.push(`${name}${frames - q.left}`);
      q.left--;
      return q.left > 0;
    },
  };
  return q;
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

afterEach(() => {
  vi.useRealTimers();
});

describe('Ingress', () => {
  it('handles one frame per queue in turn, in each queue\'s order', async () => {
    const log: string[] = [];
    const ingress = new Ingress({ sliceMs: 1000 });
    ingress.enqueue(queue('a', 3, log));
    ingress.enqueue(queue('b', 1, log));
    ingress.enqueue(queue('c', 2, log));
    expect(log).toEqual([]);
    expect(ingress.busy).toBe(true);
    await turn();
    expect(log).toEqual(['a0', 'b0', 'c0', 'a1', 'c1', 'a2']);
    expect(ingress.busy).toBe(false);
  });

  it('stops a turn once its slice is spent and goes on in the next turns', async () => {
    // Only the clock is faked: the turns (setImmediate) are real.
    vi.useFakeTimers({ toFake: ['performance'] });
    const log: string[] = [];
    const ingress = new Ingress({ sliceMs: 5 });
    ingress.enqueue(queue('a', 20, log, 2));
    await turn();
    // 2 ms a frame in a 5 ms slice: the third frame starts at 4 ms and ends past the slice, so three
    // frames a turn before the loop polls I/O again.
    expect(log).toEqual(['a0', 'a1', 'a2']);
    let turns = 1;
    while (ingress.busy) {
      await turn();
      turns++;
    }
    expect(log).toHaveLength(20);
    expect(turns).toBe(7);
  });

  it('enqueues a queue once however often it is told', async () => {
    const log: string[] = [];
    const ingress = new Ingress({ sliceMs: 1000 });
    const a = queue('a', 2, log);
    ingress.enqueue(a);
    ingress.enqueue(a);
    ingress.enqueue(a);
    await turn();
    expect(log).toEqual(['a0', 'a1']);
  });
});
