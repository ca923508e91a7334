/**
 * A sliding window of time series with a fixed capacity, laid out the way uPlot reads data:
 * one x array (epoch seconds) and one array per series. The arrays are allocated once and
 * shifted in place, so a dashboard left open for days holds exactly `capacity` points per series
 * and the chart can be handed the same arrays on every `setData`.
 */
export class SeriesWindow {
  /** Epoch seconds, ascending. Before the first point it holds evenly spaced placeholder times. */
  readonly x: number[];
  /** One array per series; null where no value (no sample, or placeholder). */
  readonly ys: (number | null)[][];
  /** `[x, ...ys]`: the same array references for the window's whole life. */
  readonly data: readonly [number[], ...(number | null)[][]];
  private points = 0;

  /**
   * @param capacity points kept per series (300 = five minutes at one a second)
   * @param seriesCount number of y series
   * @param stepSeconds spacing of the placeholder times shown before real points exist
   */
  constructor(readonly capacity: number, readonly seriesCount: number, readonly stepSeconds = 1) {
    if (!Number.isInteger(capacity) || capacity < 2) throw new RangeError('capacity must be an integer >= 2');
    this.x = new Array<number>(capacity).fill(0);
    this.ys = Array.from({ length: seriesCount }, () => new Array<number | null>(capacity).fill(null));
    this.data = [this.x, ...this.ys];
  }

  /** Real points held, at most `capacity`. */
  get length(): number {
    return this.points;
  }

  /** Epoch seconds of the newest real point, or undefined when empty. */
  get lastTime(): number | undefined {
    return this.points > 0 ? this.x[this.capacity - 1] : undefined;
  }

  /** Forgets every point (the arrays are kept and reused). */
  clear(): void {
    this.points = 0;
    this.x.fill(0);
    for (const y of this.ys) y.fill(null);
  }

  /**
   * Appends a point at `timeSeconds`. A point at the newest time replaces it; an older one is
   * ignored (x must stay ascending). Returns whether the window changed.
   */
  push(timeSeconds: number, values: readonly (number | null | undefined)[]): boolean {
    const last = this.capacity - 1;
    if (this.points === 0) {
      // Fill the window's past with placeholder times so the chart spans its full width at once.
      for (let i = 0; i < this.capacity; i++) this.x[i] = timeSeconds - (last - i) * this.stepSeconds;
      this.write(last, values);
      this.points = 1;
      return true;
    }
    const newest = this.x[last]!;
    if (timeSeconds < newest) return false;
    if (timeSeconds === newest) {
      this.write(last, values);
      return true;
    }
    this.x.copyWithin(0, 1);
    for (const y of this.ys) y.copyWithin(0, 1);
    this.x[last] = timeSeconds;
    this.write(last, values);
    this.points = Math.min(this.capacity, this.points + 1);
    return true;
  }

  private write(index: number, values: readonly (number | null | undefined)[]): void {
    for (let s = 0; s < this.seriesCount; s++) {
      const value = values[s];
      this.ys[s]![index] = typeof value === 'number' && Number.isFinite(value) ? value : null;
    }
  }
}
