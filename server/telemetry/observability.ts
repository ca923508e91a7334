import type { EngineInfo, ModelInfo } from '../../protocol/index.js';
import { AccessLog } from './access-log.js';
import { registerEngineInfo } from './engine-info-metric.js';
import { noTelemetry, type Telemetry } from './events.js';
import { FEED_TOPIC, LiveFeed } from './live-feed.js';
import { LiveStats } from './live-stats.js';
import { LoadedModels } from './loaded-models.js';
import type { Logger } from './logger.js';
import { ServiceMetrics } from './metrics.js';
import { ResourceMonitor } from './resource-monitor.js';
import { ServiceTelemetry } from './service-telemetry.js';

const TICK_MS = 1000;

export interface ObservabilityOptions {
  /** Metrics, resource monitor and live feed on (METRICS_ENABLED). */
  metrics: boolean;
  /** Seconds of snapshots a late feed client receives first (FEED_HISTORY_S). */
  feedHistoryS: number;
  /** The pool's model list. */
  models(): ModelInfo[];
  /** Open connections on the stream endpoint. */
  connections(): number;
  /** Writes access.log, when it is on. */
  accessLog?: Logger | undefined;
  /** The engine loaded: `llm_engine_info` and the feed's `engine`. */
  engine?: EngineInfo | undefined;
  /** For failures of the sampling loop itself. */
  logger: Logger;
}

/** What the metrics side adds when it is on. */
export interface MetricsSide {
  readonly prometheus: ServiceMetrics;
  readonly feed: LiveFeed;
  readonly monitor: ResourceMonitor;
  readonly models: LoadedModels;
}

/**
 * Owns the observability parts and their 1 Hz loop: roll the feed's windows, sample resources,
 * build one snapshot, encode it once and publish it. The timer is unref'ed and stopped by `stop()`.
 */
export class Observability {
  readonly telemetry: Telemetry;
  readonly metrics: MetricsSide | undefined;
  private readonly live: LiveStats | undefined;
  private readonly service: ServiceTelemetry | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;
  private lastTickAt = performance.now();
  private ticking = false;
  private publish: ((message: Uint8Array) => void) | undefined;

  constructor(private readonly options: ObservabilityOptions) {
    const access = options.accessLog ? new AccessLog(options.accessLog) : undefined;
    if (options.metrics) {
      const live = new LiveStats();
      const models = new LoadedModels();
      const monitor = new ResourceMonitor(models);
      const prometheus = new ServiceMetrics({ models: options.models, modelMemory: () => models.memory(), resources: () => monitor.latest, connections: options.connections });
      if (options.engine) registerEngineInfo(prometheus.registry, options.engine);
      this.live = live;
      this.metrics = {
        prometheus,
        monitor,
        models,
        feed: new LiveFeed({ live, models: options.models, connections: options.connections, ...(options.engine && { engine: options.engine }) }, options.feedHistoryS),
      };
      this.service = new ServiceTelemetry({ metrics: { prometheus, live, models }, ...(access && { access }) });
    } else if (access) {
      this.service = new ServiceTelemetry({ access });
    }
    this.telemetry = this.service ?? noTelemetry;
  }

  /** Starts the 1 Hz loop; `publish` sends bytes to every socket subscribed to a topic. */
  start(publish: (topic: string, message: Uint8Array) => void): void {
    if (!this.metrics || this.timer) return;
    this.publish = (message) => publish(FEED_TOPIC, message);
    this.lastTickAt = performance.now();
    this.timer = setInterval(() => void this.tick(), TICK_MS);
    this.timer.unref();
  }

  /** One second of the loop; exposed so tests can drive it without waiting. */
  async tick(): Promise<void> {
    const metrics = this.metrics;
    if (!metrics || !this.live || this.ticking) return;
    this.ticking = true;
    try {
      const now = performance.now();
      this.live.roll(now - this.lastTickAt);
      this.lastTickAt = now;
      const models = this.options.models();
      this.service?.noteModels(models.map((model) => model.name));
      const resources = await metrics.monitor.sample();
      const { encoded } = metrics.feed.snapshot(resources, models);
      this.publish?.(encoded);
    } catch (error) {
      this.options.logger.warn({ err: error }, 'metrics sampling failed');
    } finally {
      this.ticking = false;
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.publish = undefined;
    this.metrics?.monitor.stop();
    this.metrics?.models.clear();
  }
}
