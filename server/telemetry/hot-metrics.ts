import type { Registry } from 'prom-client';

/*
 * prom-client's `labels(...).inc()` and `.observe()` build a label object and a hash string on
 * every call. That is fine once per request, not once per token or frame. These two metric kinds
 * keep a preallocated cell per label set: the hot path bumps plain numbers, and the text is built
 * only when Prometheus scrapes. They register with a prom-client Registry like its own metrics.
 */

interface Sample {
  metricName?: string;
  labels: Record<string, string | number>;
  value: number;
}

interface MetricDescriptor {
  name: string;
  help: string;
  labelNames?: readonly string[];
  registers: Registry[];
}

abstract class HotMetric<Cell> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  abstract readonly type: 'counter' | 'histogram';
  protected readonly cells = new Map<string, { labels: Record<string, string>; cell: Cell }>();

  constructor(descriptor: MetricDescriptor) {
    this.name = descriptor.name;
    this.help = descriptor.help;
    this.labelNames = descriptor.labelNames ?? [];
    for (const registry of descriptor.registers) registry.registerMetric(this as never);
  }

  /** The cell for these label values, created on first use; keep it and update it directly. */
  child(...values: string[]): Cell {
    const key = values.join('\u0000');
    let entry = this.cells.get(key);
    if (!entry) {
      const labels: Record<string, string> = {};
      this.labelNames.forEach((label, index) => (labels[label] = values[index] ?? ''));
      entry = { labels, cell: this.createCell() };
      this.cells.set(key, entry);
    }
    return entry.cell;
  }

  /** prom-client's collector interface: called by `registry.metrics()`. */
  async get(): Promise<{ name: string; help: string; type: string; values: Sample[]; aggregator: 'sum' }> {
    const values: Sample[] = [];
    for (const { labels, cell } of this.cells.values()) this.samples(labels, cell, values);
    return { name: this.name, help: this.help, type: this.type, values, aggregator: 'sum' };
  }

  /** Called by `registry.resetMetrics()`. */
  reset(): void {
    this.cells.clear();
  }

  protected abstract createCell(): Cell;
  protected abstract samples(labels: Record<string, string>, cell: Cell, into: Sample[]): void;
}

/** A counter cell: `cell.value++` / `cell.value += n`. */
export interface CounterCell {
  value: number;
}

/** A monotonically increasing count whose cells are bumped without allocating. */
export class HotCounter extends HotMetric<CounterCell> {
  readonly type = 'counter';

  protected createCell(): CounterCell {
    return { value: 0 };
  }

  protected samples(labels: Record<string, string>, cell: CounterCell, into: Sample[]): void {
    into.push({ labels, value: cell.value });
  }
}

/** Fixed-bucket histogram cell; `observe` allocates nothing. */
export class HistogramCell {
  /** Non-cumulative counts: `counts[i]` holds values in (bounds[i-1], bounds[i]]; the last one is +Inf. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(readonly bounds: Float64Array) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const bounds = this.bounds;
    // Binary search for the first bound >= value.
    let low = 0;
    let high = bounds.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (bounds[mid]! < value) low = mid + 1;
      else high = mid;
    }
    this.counts[low]!++;
    this.sum += value;
    this.count++;
  }
}

export interface HotHistogramDescriptor extends MetricDescriptor {
  /** Upper bounds in increasing order (+Inf is implied). */
  buckets: readonly number[];
}

/** A Prometheus histogram whose per-label cells observe without allocating. */
export class HotHistogram extends HotMetric<HistogramCell> {
  readonly type = 'histogram';
  private readonly bounds: Float64Array;

  constructor(descriptor: HotHistogramDescriptor) {
    super(descriptor);
    this.bounds = Float64Array.from(descriptor.buckets);
    for (let i = 1; i < this.bounds.length; i++) {
      if (!(this.bounds[i]! > this.bounds[i - 1]!)) throw new Error(`${descriptor.name}: buckets must increase`);
    }
  }

  protected createCell(): HistogramCell {
    return new HistogramCell(this.bounds);
  }

  protected samples(labels: Record<string, string>, cell: HistogramCell, into: Sample[]): void {
    let cumulative = 0;
    for (let i = 0; i <= cell.bounds.length; i++) {
      cumulative += cell.counts[i]!;
      const le = i < cell.bounds.length ? cell.bounds[i]! : '+Inf';
      into.push({ metricName: `${this.name}_bucket`, labels: { le, ...labels }, value: cumulative });
    }
    into.push({ metricName: `${this.name}_sum`, labels, value: cell.sum });
    into.push({ metricName: `${this.name}_count`, labels, value: cell.count });
  }
}
