import { EndReason, type ErrorCode, type Timings, type Usage } from '../../protocol/index.js';
import type { AccessLog } from './access-log.js';
import type { CloseCause, LoadedModelView, Origin, RequestOutcome, RequestTelemetry, Telemetry } from './events.js';
import type { CounterCell, HistogramCell } from './hot-metrics.js';
import type { LiveStats } from './live-stats.js';
import type { LoadedModels } from './loaded-models.js';
import type { ServiceMetrics } from './metrics.js';

/** Label for a refused request naming no model. */
const NO_MODEL = '';
/** Label for a refused request naming a model that does not exist (the name is the client's: unbounded). */
const UNKNOWN_MODEL = '_unknown';
const CODE_LABEL = /^[a-z][a-z0-9_]{0,39}$/;
const SUCCESS: ReadonlySet<string> = new Set([EndReason.stop, EndReason.length, EndReason.toolCalls]);
const NOT_FAILURES: ReadonlySet<string> = new Set([...Object.values(EndReason), 'disconnected']);

/** The metric cells of one model, made once and reused by all its requests. */
interface ModelCells {
  generated: CounterCell;
  interToken: HistogramCell;
  timeToFirstToken: ReturnType<ServiceMetrics['timeToFirstToken']['labels']>;
  queueWait: ReturnType<ServiceMetrics['queueWait']['labels']>;
}

export interface ServiceTelemetryParts {
  /** Prometheus metrics and the live feed's windows; both absent with METRICS_ENABLED=false. */
  metrics?: { prometheus: ServiceMetrics; live: LiveStats; models: LoadedModels };
  /** access.log; absent when it is off. */
  access?: AccessLog;
}

/** The Telemetry the gateway calls: updates metrics, the live feed's windows and the access log. */
export class ServiceTelemetry implements Telemetry {
  private readonly prometheus: ServiceMetrics | undefined;
  private readonly live: LiveStats | undefined;
  private readonly loaded: LoadedModels | undefined;
  private readonly access: AccessLog | undefined;
  private readonly cells = new Map<string, ModelCells>();
  private readonly knownModels = new Set<string>();

  constructor(parts: ServiceTelemetryParts) {
    this.prometheus = parts.metrics?.prometheus;
    this.live = parts.metrics?.live;
    this.loaded = parts.metrics?.models;
    this.access = parts.access;
  }

  /** Model names that may appear as label values (the pool's, refreshed by the feed each second). */
  noteModels(names: Iterable<string>): void {
    for (const name of names) this.knownModels.add(name);
  }

  request(model: string, requestId: string, origin: Origin): RequestTelemetry {
    this.knownModels.add(model);
    return new TrackedRequest(this, model, requestId, origin, this.prometheus ? this.cellsOf(model, this.prometheus) : undefined, this.live);
  }

  requestRefused(code: ErrorCode, origin: Origin, model?: string, requestId?: string): void {
    this.prometheus?.requests.labels(this.modelLabel(model), code).inc();
    if (this.live) this.live.failedTotal++;
    this.access?.requestRefused(code, origin, model, requestId);
  }

  connectionOpened(origin: Origin): void {
    this.prometheus?.connectionsOpened.inc();
    this.access?.connectionOpened(origin);
  }

  connectionClosed(origin: Origin, cause: CloseCause, ageMs: number): void {
    this.prometheus?.connectionsClosed.labels(cause).inc();
    this.access?.connectionClosed(origin, cause, ageMs);
  }

  frameIn(bytes: number): void {
    const metrics = this.prometheus;
    if (metrics) {
      metrics.framesReceived.value++;
      metrics.bytesReceived.value += bytes;
    }
  }

  frameOut(bytes: number): void {
    const metrics = this.prometheus;
    if (metrics) {
      metrics.framesSent.value++;
      metrics.bytesSent.value += bytes;
    }
  }

  cacheHit(model: string): void {
    this.prometheus?.cacheHits.labels(model).inc();
  }

  rateLimited(_origin: Origin): void {
    this.prometheus?.rateLimited.inc();
  }

  backpressurePaused(): void {
    this.prometheus?.backpressurePauses.inc();
  }

  error(code: string, message: string, model?: string): void {
    this.prometheus?.errors.labels(CODE_LABEL.test(code) ? code : 'other').inc();
    this.live?.recordError(code, message, model);
  }

  fault(site: string, message: string): void {
    this.prometheus?.faults.labels(site).inc();
    this.live?.recordError('internal', `${site} handler failed: ${message}`, undefined);
  }

  modelLoaded(model: LoadedModelView): void {
    this.knownModels.add(model.name);
    this.loaded?.add(model);
  }

  /** Called once by each TrackedRequest when it ends. */
  requestEnded(request: TrackedRequest, outcome: RequestOutcome | 'disconnected', usage: Usage, timings: Timings): void {
    const metrics = this.prometheus;
    if (metrics) {
      const model = request.model;
      metrics.requests.labels(model, outcome).inc();
      if (usage.promptTokens > 0) metrics.promptTokens.labels(model).inc(usage.promptTokens);
      metrics.requestPromptTokens.labels(model).observe(usage.promptTokens);
      metrics.requestGenerationTokens.labels(model).observe(usage.completionTokens);
      if (timings.totalMs >= 0) metrics.requestDuration.labels(model).observe(timings.totalMs / 1000);
    }
    if (this.live) {
      if (SUCCESS.has(outcome)) this.live.completedTotal++;
      else if (!NOT_FAILURES.has(outcome)) this.live.failedTotal++;
    }
    this.access?.requestEnded(request.requestId, request.origin, request.model, outcome, usage, timings);
  }

  private cellsOf(model: string, metrics: ServiceMetrics): ModelCells {
    let cells = this.cells.get(model);
    if (!cells) {
      cells = {
        generated: metrics.generationTokens.child(model),
        interToken: metrics.interTokenLatency.child(model),
        timeToFirstToken: metrics.timeToFirstToken.labels(model),
        queueWait: metrics.queueWait.labels(model),
      };
      this.cells.set(model, cells);
    }
    return cells;
  }

  private modelLabel(model: string | undefined): string {
    if (model === undefined) return NO_MODEL;
    return this.knownModels.has(model) ? model : UNKNOWN_MODEL;
  }
}

/** One request's hooks. `token()` touches only numbers and preallocated cells. */
export class TrackedRequest implements RequestTelemetry {
  /** Replaced by the real arrival in `started()`. */
  private arrivedAt = performance.now();
  private lastTokenAt = -1;
  private done = false;

  constructor(
    private readonly owner: ServiceTelemetry,
    readonly model: string,
    readonly requestId: string,
    readonly origin: Origin,
    private readonly cells: ModelCells | undefined,
    private readonly live: LiveStats | undefined,
  ) {}

  started(queueMs: number): void {
    // Arrival is earlier than this object: the gateway measured the wait from the frame's receipt.
    this.arrivedAt = performance.now() - queueMs;
    this.cells?.queueWait.observe(queueMs / 1000);
  }

  /**
   * Node 20's `performance.now()` returns a freshly boxed number (16 bytes, short-lived): the only
   * allocation per token. Everything `tokenAt` updates is a plain number or a preallocated cell.
   */
  token(): void {
    // Without metrics (access log only) there is nothing to time.
    if (this.cells !== undefined) this.tokenAt(performance.now());
  }

  /** `token()` at a given `performance.now()` time. */
  tokenAt(now: number): void {
    const cells = this.cells;
    const live = this.live;
    if (this.lastTokenAt >= 0) {
      const gapMs = now - this.lastTokenAt;
      if (cells) cells.interToken.observe(gapMs / 1000);
      if (live) live.interToken.record(gapMs);
    } else {
      const ttftMs = now - this.arrivedAt;
      if (cells) cells.timeToFirstToken.observe(ttftMs / 1000);
      if (live) live.timeToFirstToken.record(ttftMs);
    }
    this.lastTokenAt = now;
    if (cells) cells.generated.value++;
    if (live) live.tokens.current++;
  }

  ended(outcome: RequestOutcome | 'disconnected', usage: Usage, timings: Timings): void {
    if (this.done) return;
    this.done = true;
    this.owner.requestEnded(this, outcome, usage, timings);
  }
}
