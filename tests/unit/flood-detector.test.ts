import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FloodDetector, MAX_FLOOD_LIMIT } from '../../server/limits/flood-detector.js';
import { LimitOptionsError } from '../../server/limits/limit-options-error.js';

/** A clock the test moves by hand. */
function fakeClock(start = 0): { clock: () => number; advance(ms: number): void } {
  let now = start;
  return { clock: () => now, advance: (ms) => void (now += ms) };
}

function detector(limit: number, windowMs: number) {
  const time = fakeClock(5_000);
  return { time, detector: new FloodDetector({ limit, windowMs, clock: time.clock }) };
}

describe('FloodDetector', () => {
  it('trips on the event that makes more than `limit` within the window', () => {
    const { time, detector: d } = detector(3, 1_000);
    expect(d.count()).toBe(0);
    expect([d.record(), d.record(), d.record()]).toEqual([false, false, false]);
    expect(d.count()).toBe(3);
    time.advance(999);
    expect(d.record()).toBe(true);
    expect(d.count()).toBe(4);
  });

  it('keeps saying true while the flood goes on, and recovers once the window has passed', () => {
    const { time, detector: d } = detector(2, 100);
    d.record();
    d.record();
    expect(d.record()).toBe(true);
    expect(d.record()).toBe(true);
    time.advance(100);
    expect(d.count()).toBe(0);
    expect(d.record()).toBe(false);
    expect(d.count()).toBe(1);
  });

  it('leaves an event out once exactly windowMs has passed', () => {
    const { time, detector: d } = detector(3, 1_000);
    d.record();
    d.record();
    d.record();
    time.advance(1_000);
    expect(d.count()).toBe(0);
    expect(d.record()).toBe(false);
  });

  it('counts only the events inside the window', () => {
    const { time, detector: d } = detector(3, 1_000);
    for (const gap of [0, 400, 400, 400]) {
      time.advance(gap);
      expect(d.record()).toBe(false);
    }
    // Events at 0, 400, 800, 1200: the first has left the window.
    expect(d.count()).toBe(3);
    time.advance(399);
    expect(d.count()).toBe(2);
    expect(d.record()).toBe(false);
    expect(d.record()).toBe(true);
  });

  it('never trips for a steady rate of exactly limit per window', () => {
    const { time, detector: d } = detector(10, 1_000);
    for (let i = 0; i < 200; i++) {
      expect(d.record()).toBe(false);
      time.advance(100);
    }
  });

  it('with limit 0 trips on the first event', () => {
    const { detector: d } = detector(0, 1_000);
    expect(d.record()).toBe(true);
    expect(d.count()).toBe(1);
  });

  it('remembers at most limit + 1 events', () => {
    const { detector: d } = detector(4, 1_000);
    for (let i = 0; i < 100; i++) d.record();
    expect(d.count()).toBe(5);
  });

  it('uses performance.now when no clock is given', () => {
    const d = new FloodDetector({ limit: 1, windowMs: 60_000 });
    expect(d.record()).toBe(false);
    expect(d.record()).toBe(true);
  });

  it('refuses options it cannot work with, naming them', () => {
    expect(() => new FloodDetector({ limit: -1, windowMs: 1 })).toThrow(LimitOptionsError);
    expect(() => new FloodDetector({ limit: 1.5, windowMs: 1 })).toThrow(/^limit: /);
    expect(() => new FloodDetector({ limit: MAX_FLOOD_LIMIT + 1, windowMs: 1 })).toThrow(/^limit: must be at most/);
    expect(() => new FloodDetector({ limit: 1, windowMs: 0 })).toThrow(/^windowMs: /);
    expect(() => new FloodDetector({ limit: 1, windowMs: Number.NaN })).toThrow(/^windowMs: /);
  });

  it('agrees with a count over every event ever recorded', () => {
    fc.assert(
      fc.property(
        fc.nat(20),
        fc.integer({ min: 1, max: 2_000 }),
        fc.array(fc.record({ gap: fc.oneof(fc.nat(300), fc.double({ min: 0, max: 300, noNaN: true })), check: fc.boolean() }), { maxLength: 300 }),
        (limit, windowMs, steps) => {
          const time = fakeClock();
          let now = 0;
          const d = new FloodDetector({ limit, windowMs, clock: time.clock });
          const all: number[] = [];
          const inside = () => all.filter((t) => now - t < windowMs).length;
          for (const { gap, check } of steps) {
            time.advance(gap);
            now += gap;
            all.push(now);
            expect(d.record()).toBe(inside() > limit);
            if (check) expect(d.count()).toBe(Math.min(inside(), limit + 1));
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});
