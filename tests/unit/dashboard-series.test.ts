import { describe, expect, it } from 'vitest';
import type { FeedSnapshot } from '../../protocol/index.js';
import { CHARTS, COLUMN_INDEX, COLUMNS, readColumns } from '../../dashboard/src/lib/metrics.js';
import { SeriesWindow } from '../../dashboard/src/lib/series.js';
import { snapshot } from './dashboard-fixtures.js';

describe('SeriesWindow', () => {
  it('fills its past with placeholder times on the first point, so the chart spans its width', () => {
    const window = new SeriesWindow(5, 2);
    expect(window.push(100, [1, null])).toBe(true);
    expect(window.x).toEqual([96, 97, 98, 99, 100]);
    expect(window.ys[0]).toEqual([null, null, null, null, 1]);
    expect(window.ys[1]).toEqual([null, null, null, null, null]);
    expect(window.length).toBe(1);
    expect(window.lastTime).toBe(100);
  });

  it('scrolls in place: same arrays, fixed length, oldest point dropped', () => {
    const window = new SeriesWindow(3, 1);
    const { x, data } = window;
    const y = window.ys[0]!;
    for (let t = 1; t <= 10; t++) window.push(t, [t * 10]);
    expect(window.x).toBe(x);
    expect(window.ys[0]).toBe(y);
    expect(window.data).toBe(data);
    expect(data[0]).toBe(x);
    expect(x).toEqual([8, 9, 10]);
    expect(y).toEqual([80, 90, 100]);
    expect(window.length).toBe(3);
  });

  it('holds exactly its capacity over a long run (two hours at 1 Hz)', () => {
    const window = new SeriesWindow(300, 15);
    const values = Array.from({ length: 15 }, (_, i) => i);
    for (let t = 0; t < 2 * 3600; t++) window.push(t, values);
    expect(window.x.length).toBe(300);
    expect(window.ys.every((y) => y.length === 300)).toBe(true);
    expect(window.x[0]).toBe(2 * 3600 - 300);
  });

  it('replaces a point at the same time, ignores older ones, and turns non-finite values into gaps', () => {
    const window = new SeriesWindow(3, 1);
    window.push(10, [1]);
    window.push(10, [2]);
    expect(window.ys[0]![2]).toBe(2);
    expect(window.push(9, [3])).toBe(false);
    window.push(11, [Number.NaN]);
    expect(window.ys[0]).toEqual([null, 2, null]);
  });

  it('clear() forgets the points and keeps the arrays', () => {
    const window = new SeriesWindow(3, 1);
    const y = window.ys[0];
    window.push(1, [1]);
    window.clear();
    expect(window.length).toBe(0);
    expect(window.lastTime).toBeUndefined();
    expect(window.ys[0]).toBe(y);
    window.push(50, [5]);
    expect(window.x).toEqual([48, 49, 50]);
  });

  it('rejects a capacity that cannot scroll', () => {
    expect(() => new SeriesWindow(1, 1)).toThrow(RangeError);
  });
});

describe('overview metrics', () => {
  it('reads every column out of a snapshot, in order', () => {
    const values = readColumns(snapshot({ ts: 1000 }));
    expect(values).toHaveLength(COLUMNS.length);
    expect(values[COLUMN_INDEX.tok1]).toBe(50);
    expect(values[COLUMN_INDEX.ttft95]).toBe(40);
    expect(values[COLUMN_INDEX.itl50]).toBeNull();
    expect(values[COLUMN_INDEX.rss]).toBe(400e6);
    expect(values[COLUMN_INDEX.cpuProcess]).toBe(0.75);
  });

  it('plots a gap where a snapshot lacks a section instead of failing', () => {
    const broken = { ...snapshot({ ts: 1 }), resources: undefined } as unknown as FeedSnapshot;
    const values = readColumns(broken);
    expect(values[COLUMN_INDEX.rss]).toBeNull();
    expect(values[COLUMN_INDEX.tok1]).toBe(50);
  });

  it('charts only known columns', () => {
    for (const chart of CHARTS) for (const line of chart.lines) expect(COLUMN_INDEX[line.key]).toBeTypeOf('number');
  });
});
