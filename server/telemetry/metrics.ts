import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ModelInfo, ResourceFigures } from '../../protocol/index.js';
import { HotCounter, HotHistogram, type CounterCell } from './hot-metrics.js';
import type { ModelMemory } from './loaded-models.js';

/** Prefix of every service metric (process and Node.js defaults keep their standard names). */
export const METRIC_PREFIX = 'llm_';

/*
 * Buckets in seconds, chosen to resolve both the demo model (thousands of tokens/s: sub-millisecond
 * gaps, millisecond first tokens) and a 7B model on CPU (100-300 ms gaps, seconds to first token
 * behind a long prompt or a queue).
 */
export const Buckets = {
  timeToFirstToken: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80],
  interToken: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2.5],
  requestDuration: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600],
  queueWait: [0.0001, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  tokens: [1, 4, 16, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768],
} as const;

/** What the scrape reads at scrape time, so nothing is kept up to date in between. */
export interface MetricSources {
  /** The pool's model list (state, slots, queue). */
  models(): ModelInfo[];
  /** Memory and load time of loaded models. */
  modelMemory(): ModelMemory[];
  /** The resource monitor's latest sample. */
  resources(): ResourceFigures;
  /** Open connections on the stream endpoint (the session registry's count). */
  connections(): number;
}

/**
 * Every Prometheus metric of the service, in a registry of its own (several services in one
 * process do not clash). Labels: `model` (a configured model name, `""` when a refused request named
 * none, `_unknown` when it named one that does not exist), `outcome`, `cause`, `code`: all bounded;
 * never a request id, session or key. Counters touched per token or frame are HotCounters.
 */
export class ServiceMetrics {
  readonly registry = new Registry();

  // Per request (prom-client's own types: they allocate a little per call, once per request is fine).
  readonly requests: Counter<'model' | 'outcome'>;
  readonly promptTokens: Counter<'model'>;
  readonly timeToFirstToken: Histogram<'model'>;
  readonly requestDuration: Histogram<'model'>;
  readonly queueWait: Histogram<'model'>;
  readonly requestPromptTokens: Histogram<'model'>;
  readonly requestGenerationTokens: Histogram<'model'>;
  readonly connectionsOpened: Counter;
  readonly connectionsClosed: Counter<'cause'>;
  readonly rateLimited: Counter;
  readonly cacheHits: Counter;
  readonly backpressurePauses: Counter;
  readonly errors: Counter<'code'>;
  readonly faults: Counter<'site'>;

  // Per token or frame: preallocated cells, bumped without allocating.
  readonly generationTokens: HotCounter;
  readonly interTokenLatency: HotHistogram;
  readonly framesReceived: CounterCell;
  readonly framesSent: CounterCell;
  readonly bytesReceived: CounterCell;
  readonly bytesSent: CounterCell;

  constructor(sources: MetricSources) {
    const registers = [this.registry];
    const name = (suffix: string): string => METRIC_PREFIX + suffix;
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 10 });

    this.requests = new Counter({
      name: name('requests_total'),
      help: 'Requests by how they ended: stop, length, cancelled, timeout, slow_consumer, shutdown, disconnected, or the error code of their err frame',
      labelNames: ['model', 'outcome'],
      registers,
    });
    this.promptTokens = new Counter({ name: name('prompt_tokens_total'), help: 'Prompt tokens of requests that reached a model', labelNames: ['model'], registers });
    this.generationTokens = new HotCounter({ name: name('generation_tokens_total'), help: 'Generated tokens', labelNames: ['model'], registers });
    this.timeToFirstToken = new Histogram({
      name: name('time_to_first_token_seconds'),
      help: 'From the arrival of a request to its first generated token (includes queue wait and prompt evaluation)',
      labelNames: ['model'],
      buckets: [...Buckets.timeToFirstToken],
      registers,
    });
    this.interTokenLatency = new HotHistogram({
      name: name('inter_token_latency_seconds'),
      help: 'Time between two consecutive generated tokens of one request',
      labelNames: ['model'],
      buckets: Buckets.interToken,
      registers,
    });
    this.requestDuration = new Histogram({
      name: name('request_duration_seconds'),
      help: 'End-to-end time of a request that reached a model, from arrival to its terminal frame',
      labelNames: ['model'],
      buckets: [...Buckets.requestDuration],
      registers,
    });
    this.queueWait = new Histogram({
      name: name('request_queue_seconds'),
      help: 'Time a request waited for a free slot (sequence)',
      labelNames: ['model'],
      buckets: [...Buckets.queueWait],
      registers,
    });
    this.requestPromptTokens = new Histogram({
      name: name('request_prompt_tokens'),
      help: 'Prompt tokens per request',
      labelNames: ['model'],
      buckets: [...Buckets.tokens],
      registers,
    });
    this.requestGenerationTokens = new Histogram({
      name: name('request_generation_tokens'),
      help: 'Generated tokens per request',
      labelNames: ['model'],
      buckets: [...Buckets.tokens],
      registers,
    });

    this.connectionsOpened = new Counter({ name: name('connections_opened_total'), help: 'WebSocket connections opened on the stream endpoint', registers });
    this.connectionsClosed = new Counter({
      name: name('connections_closed_total'),
      help: 'WebSocket connections closed, by cause: client, idle, flood, slow_consumer, shutdown, admin, too_big, invalid_utf8, error',
      labelNames: ['cause'],
      registers,
    });
    new Gauge({
      name: name('connections_open'),
      help: 'WebSocket connections open on the stream endpoint',
      registers,
      collect() {
        this.set(sources.connections());
      },
    });
    this.rateLimited = new Counter({ name: name('rate_limited_total'), help: 'Requests refused with rate_limited', registers });
    this.cacheHits = new Counter({ name: name('response_cache_hits_total'), help: 'Requests answered from the response cache', labelNames: ['model'], registers });
    this.backpressurePauses = new Counter({
      name: name('backpressure_pauses_total'),
      help: "Times a stream paused because its socket's send buffer passed the high-water mark",
      registers,
    });
    this.errors = new Counter({ name: name('errors_total'), help: 'Errors sent to clients or raised inside, by code', labelNames: ['code'], registers });
    this.faults = new Counter({
      name: name('handler_faults_total'),
      help: 'Exceptions caught at the transport edge (HTTP route, upgrade, socket callback, timer), by where they happened',
      labelNames: ['site'],
      registers,
    });
    this.framesReceived = new HotCounter({ name: name('ws_frames_received_total'), help: 'WebSocket messages received', registers }).child();
    this.framesSent = new HotCounter({ name: name('ws_frames_sent_total'), help: 'WebSocket messages sent', registers }).child();
    this.bytesReceived = new HotCounter({ name: name('ws_received_bytes_total'), help: 'Payload bytes of WebSocket messages received', registers }).child();
    this.bytesSent = new HotCounter({ name: name('ws_sent_bytes_total'), help: 'Payload bytes of WebSocket messages sent', registers }).child();

    this.poolGauges(sources, name, registers);
    this.resourceGauges(sources, name, registers);
  }

  /** The Prometheus text exposition of every metric. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private poolGauges(sources: MetricSources, name: (suffix: string) => string, registers: Registry[]): void {
    const perModel = (metric: string, help: string, read: (model: ModelInfo) => number | undefined): void => {
      new Gauge({
        name: name(metric),
        help,
        labelNames: ['model'],
        registers,
        collect() {
          this.reset();
          for (const model of sources.models()) {
            const value = read(model);
            if (value !== undefined) this.labels(model.name).set(value);
          }
        },
      });
    };
    perModel('requests_running', 'Requests generating now (slots busy)', (model) => model.slotsBusy ?? 0);
    perModel('requests_waiting', 'Requests waiting for a slot', (model) => model.queueLength ?? 0);
    perModel('slots_busy', 'Sequences of the model leased to requests', (model) => model.slotsBusy);
    perModel('slots_total', 'Sequences (parallel slots) of the loaded model', (model) => model.slotsTotal);
    perModel('model_loaded', '1 when the model is loaded and can serve, else 0', (model) => (model.state === 'loaded' ? 1 : 0));
    const perModelMemory = (metric: string, help: string, read: (memory: ModelMemory) => number): void => {
      new Gauge({
        name: name(metric),
        help,
        labelNames: ['model'],
        registers,
        collect() {
          this.reset();
          for (const memory of sources.modelMemory()) this.labels(memory.name).set(read(memory));
        },
      });
    };
    perModelMemory('model_load_duration_seconds', 'Duration of the latest load of the model (weights and context)', (memory) => memory.loadSeconds);
    perModelMemory('model_weights_bytes', 'Bytes of model weights in memory, as node-llama-cpp reports them', (memory) => memory.modelBytes);
    perModelMemory('model_context_bytes', "RAM + VRAM of the model's context (KV cache of all its sequences), node-llama-cpp's estimate", (memory) => memory.contextBytes);
  }

  private resourceGauges(sources: MetricSources, name: (suffix: string) => string, registers: Registry[]): void {
    const gauge = (metric: string, help: string, read: (figures: ResourceFigures) => number): void => {
      new Gauge({
        name: name(metric),
        help,
        registers,
        collect() {
          this.set(read(sources.resources()));
        },
      });
    };
    gauge('system_cpu_load_ratio', 'System CPU load over the last second, 0..1 across all cores', (figures) => figures.cpuLoad);
    gauge('system_memory_total_bytes', 'Physical memory of the machine', (figures) => figures.memTotalBytes);
    gauge('system_memory_used_bytes', 'Memory in use on the machine, without buffers and page cache', (figures) => figures.memUsedBytes);
    gauge('process_cpu_cores', 'CPU used by this process over the last second, in cores', (figures) => figures.processCpu);
    gauge('event_loop_delay_p99_seconds', 'p99 of the event-loop delay over the last second', (figures) => figures.eventLoopDelayMs.p99 / 1000);
    gauge('event_loop_delay_max_seconds', 'Largest event-loop delay over the last second', (figures) => figures.eventLoopDelayMs.max / 1000);
  }
}
