import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LimitOptionsError } from '../../server/limits/limit-options-error.js';
import { TokenBucket } from '../../server/limits/token-bucket.js';

/** A clock the test moves by hand. */
function fakeClock(start = 0): { clock: () => number; advance(ms: number): void } {
  let now = start;
  return { clock: () => now, advance: (ms) => void (now += ms) };
}

function bucket(capacity: number, refillPerSecond: number) {
  const time = fakeClock(1_000);
  return { time, bucket: new TokenBucket({ capacity, refillPerSecond, clock: time.clock }) };
}

describe('TokenBucket', () => {
  it('starts full and takes credits while they last, taking nothing when short', () => {
    const { bucket: b } = bucket(3, 1);
    expect(b.level()).toBe(3);
    expect(b.tryTake()).toBe(true);
    expect(b.tryTake(2)).toBe(true);
    expect(b.level()).toBe(0);
    expect(b.tryTake()).toBe(false);
    expect(b.level()).toBe(0);
  });

  it('refills 1 credit after 250 ms at 4 per second', () => {
    const { time, bucket: b } = bucket(4, 4);
    expect(b.tryTake(4)).toBe(true);
    time.advance(250);
    expect(b.level()).toBe(1);
    expect(b.tryTake(2)).toBe(false);
    expect(b.level()).toBe(1);
    expect(b.tryTake(1)).toBe(true);
    expect(b.level()).toBe(0);
  });

  it('refills fractionally and lazily, whatever the number of reads', () => {
    const { time, bucket: b } = bucket(4, 4);
    b.tryTake(4);
    time.advance(100);
    expect(b.level()).toBe(0.4);
    expect(b.tryTake()).toBe(false);
    time.advance(50);
    expect(b.level()).toBeCloseTo(0.6, 12);
    time.advance(100);
    expect(b.level()).toBeCloseTo(1, 12);
    expect(b.tryTake()).toBe(true);
  });

  it('never refills past capacity', () => {
    const { time, bucket: b } = bucket(5, 10);
    b.tryTake(2);
    time.advance(60_000);
    expect(b.level()).toBe(5);
    expect(b.msUntilFull()).toBe(0);
    // Idle time above capacity is not banked: after one take, refill restarts from 4.
    b.tryTake();
    time.advance(50);
    expect(b.level()).toBe(4.5);
  });

  it('goes into debt on charge and recovers at the refill rate', () => {
    const { time, bucket: b } = bucket(10, 5);
    b.charge(25);
    expect(b.level()).toBe(-15);
    expect(b.tryTake()).toBe(false);
    expect(b.level()).toBe(-15);
    expect(b.msUntil(1)).toBe(3_200);
    expect(b.msUntilFull()).toBe(5_000);
    time.advance(3_000);
    expect(b.level()).toBe(0);
    expect(b.tryTake()).toBe(false);
    time.advance(200);
    expect(b.level()).toBe(1);
    expect(b.tryTake()).toBe(true);
    expect(b.msUntilFull()).toBe(2_000);
  });

  it('charge takes zero without effect and accepts more than capacity', () => {
    const { bucket: b } = bucket(2, 1);
    b.charge(0);
    expect(b.level()).toBe(2);
    b.charge(1_000);
    expect(b.level()).toBe(-998);
  });

  it('gives exact waits, fractional refill included', () => {
    const { time, bucket: b } = bucket(5, 3);
    expect(b.msUntil(5)).toBe(0);
    b.tryTake(5);
    expect(b.msUntil(1)).toBe(1_000 / 3);
    expect(b.msUntil(3)).toBe(1_000);
    expect(b.msUntilFull()).toBe(5_000 / 3);
    time.advance(1_000 / 3);
    // The wait is honoured exactly even though 1000/3 ms × 3/s is not exactly 1 in floating point.
    expect(b.msUntil(1)).toBe(0);
    expect(b.tryTake(1)).toBe(true);
    expect(b.level()).toBeGreaterThanOrEqual(0);
  });

  it('says Infinity for more than capacity, and 0 for nothing', () => {
    const { bucket: b } = bucket(5, 3);
    expect(b.msUntil(6)).toBe(Infinity);
    expect(b.tryTake(6)).toBe(false);
    expect(b.level()).toBe(5);
    expect(b.msUntil(0)).toBe(0);
    expect(b.tryTake(0)).toBe(true);
    expect(b.msUntil()).toBe(0);
  });

  it('with capacity 0 never grants a credit but still recovers from debt', () => {
    const { time, bucket: b } = bucket(0, 2);
    expect(b.level()).toBe(0);
    expect(b.tryTake()).toBe(false);
    expect(b.tryTake(0)).toBe(true);
    expect(b.msUntil(1)).toBe(Infinity);
    expect(b.msUntilFull()).toBe(0);
    b.charge(3);
    expect(b.msUntilFull()).toBe(1_500);
    time.advance(10_000);
    expect(b.level()).toBe(0);
  });

  it('with refill 0 spends its capacity once, then waits forever', () => {
    const { time, bucket: b } = bucket(3, 0);
    expect(b.msUntilFull()).toBe(0);
    expect(b.tryTake(2)).toBe(true);
    expect(b.msUntil(1)).toBe(0);
    expect(b.msUntil(2)).toBe(Infinity);
    expect(b.msUntilFull()).toBe(Infinity);
    time.advance(1e9);
    expect(b.level()).toBe(1);
    b.charge(5);
    expect(b.level()).toBe(-4);
    expect(b.msUntil(0)).toBe(Infinity);
  });

  it('credits nothing for a clock that steps back, and nothing twice once it moves on', () => {
    const { time, bucket: b } = bucket(10, 1);
    b.tryTake(10);
    time.advance(-5_000);
    expect(b.level()).toBe(0);
    time.advance(7_000);
    expect(b.level()).toBe(2);
  });

  it('uses performance.now when no clock is given', () => {
    const b = new TokenBucket({ capacity: 2, refillPerSecond: 0 });
    expect(b.tryTake(2)).toBe(true);
    expect(b.level()).toBe(0);
    expect(b.capacity).toBe(2);
    expect(b.refillPerSecond).toBe(0);
  });

  it('refuses options and amounts that would poison the level', () => {
    expect(() => new TokenBucket({ capacity: -1, refillPerSecond: 1 })).toThrow(LimitOptionsError);
    expect(() => new TokenBucket({ capacity: -1, refillPerSecond: 1 })).toThrow(/^capacity: /);
    expect(() => new TokenBucket({ capacity: 1, refillPerSecond: Number.NaN })).toThrow(/^refillPerSecond: /);
    expect(() => new TokenBucket({ capacity: Infinity, refillPerSecond: 1 })).toThrow(LimitOptionsError);
    const { bucket: b } = bucket(5, 1);
    expect(() => b.tryTake(Number.NaN)).toThrow(RangeError);
    expect(() => b.charge(-1)).toThrow(RangeError);
    expect(() => b.charge(Infinity)).toThrow(RangeError);
    expect(() => b.msUntil(Number.NaN)).toThrow(RangeError);
    expect(b.level()).toBe(5);
  });

  describe('properties', () => {
    const operation = fc.oneof(
      fc.record({ kind: fc.constant('advance' as const), ms: fc.oneof(fc.nat(5_000), fc.double({ min: 0, max: 5_000, noNaN: true })) }),
      fc.record({ kind: fc.constant('take' as const), n: fc.oneof(fc.nat(120), fc.double({ min: 0, max: 120, noNaN: true })) }),
      fc.record({ kind: fc.constant('charge' as const), n: fc.oneof(fc.nat(500), fc.double({ min: 0, max: 500, noNaN: true })) }),
      fc.record({ kind: fc.constant('waitFor' as const), n: fc.nat(120) }),
    );
    const setup = fc.record({
      capacity: fc.oneof(fc.nat(100), fc.double({ min: 0, max: 100, noNaN: true }), fc.constant(1e9)),
      refillPerSecond: fc.oneof(fc.constant(0), fc.nat(1_000), fc.double({ min: 0.01, max: 1_000, noNaN: true })),
    });

    it('never exceeds capacity, and tryTake never drives the level negative', () => {
      fc.assert(
        fc.property(setup, fc.array(operation, { maxLength: 200 }), ({ capacity, refillPerSecond }, operations) => {
          const time = fakeClock();
          const b = new TokenBucket({ capacity, refillPerSecond, clock: time.clock });
          for (const op of operations) {
            if (op.kind === 'advance') time.advance(op.ms);
            else if (op.kind === 'charge') b.charge(op.n);
            else if (op.kind === 'take') {
              const before = b.level();
              const taken = b.tryTake(op.n);
              const after = b.level();
              if (taken) {
                expect(before).toBeGreaterThanOrEqual(op.n - 1e-9 * Math.max(1, capacity));
                expect(after).toBeGreaterThanOrEqual(0);
                expect(after).toBeCloseTo(Math.max(before - op.n, 0), 9);
              } else {
                expect(after).toBe(before);
              }
            } else {
              // Waiting exactly the announced time is always enough.
              const wait = b.msUntil(op.n);
              if (Number.isFinite(wait)) {
                time.advance(wait);
                expect(b.tryTake(op.n)).toBe(true);
              } else {
                expect(op.n > capacity || refillPerSecond === 0).toBe(true);
              }
            }
            expect(b.level()).toBeLessThanOrEqual(capacity);
          }
        }),
        { numRuns: 500 },
      );
    });
  });
});
