import { Gauge, type Registry } from 'prom-client';
import { CloseCode } from '../protocol/index.js';
import { createAccessControl } from './auth/access-control.js';
import { ResponseCache } from './cache/response-cache.js';
import type { AdminToken } from './auth/admin-token.js';
import type { Config } from './config/config.js';
import { ensureDemoModel } from './model-maker/demo/demo-model.js';
import { createLlamaRuntime } from './engine/llama-runtime.js';
import { Ingress } from './gateway/ingress.js';
import { KeyBudgets } from './gateway/key-budgets.js';
import { ResumeStore } from './gateway/resume-store.js';
import { SessionRegistry } from './gateway/session-registry.js';
import { streamEndpoint } from './gateway/stream-endpoint.js';
import { UpgradeGuard } from './gateway/upgrade-guard.js';
import type { SessionContext } from './gateway/session.js';
import { adminRoutes } from './http/admin-routes.js';
import { healthRoutes } from './http/health-routes.js';
import { metricsRoutes } from './http/metrics-routes.js';
import { modelRoutes } from './http/model-routes.js';
import { ApiDoor } from './openai/api-door.js';
import { openAiRoutes } from './openai/openai-routes.js';
import { staticRoutes } from './http/static-routes.js';
import { SAMPLING_DEFAULTS } from './pool/sampling-defaults.js';
import { SharedLimits } from './shared-limits/shared-limits.js';
import { registerSharedLimitsMetrics } from './shared-limits/shared-limits-metrics.js';
import { ModelPool } from './pool/model-pool.js';
import { configSummary } from './telemetry/config-summary.js';
import type { Telemetry } from './telemetry/events.js';
import { feedEndpoint } from './http/feed-endpoint.js';
import { attachLogFiles, createLogger, type Logger } from './telemetry/logger.js';
import { Observability } from './telemetry/observability.js';
import { ResumeMetrics } from './telemetry/resume-metrics.js';
import { PromptTokenizer } from './tokenize/prompt-tokenizer.js';
import type { FaultSink } from './transport/types.js';
import { listen } from './transport/uws-server.js';

/** A running service. */
export interface Service {
  readonly port: number;
  /** `ws://host:port/v1/stream`. */
  readonly streamUrl: string;
  readonly httpUrl: string;
  readonly pool: ModelPool;
  readonly sessions: SessionRegistry;
  /** Requests of dropped connections and the frames kept for resumes. */
  readonly resume: ResumeStore;
  /** Guards /metrics (unless METRICS_PUBLIC), the live feed and admin routes. */
  readonly adminToken: AdminToken;
  /** Metrics, live feed and access log. */
  readonly observability: Observability;
  /**
   * Stops gracefully: stop listening, refuse new generations, let running ones finish within
   * `graceMs`, end the rest with reason `shutdown`, close every socket with 1001, free the models.
   */
  shutdown(graceMs?: number): Promise<void>;
}

/** Main-loop time per turn for decoding queued frames before I/O is polled again. */
const INGRESS_SLICE_MS = 4;
/** After the grace period, how long cancelled streams get to send their end frames. */
const CANCEL_GRACE_MS = 2000;
const MAX_BODY_BYTES = 1024 * 1024;
/** Prompts up to this long are tokenized on the event loop: about 2-5 ms at most, measured on the demo model. */
const INLINE_TOKENIZE_MAX_CHARS = 2048;
/** Long prompts one connection may have waiting for the tokenizer worker. */
const TOKENIZER_QUEUE_PER_CONNECTION = 2;
/**
 * The tokenizer worker (about 40 MB) gives its memory back after this long without a long prompt;
 * starting it again costs the next long prompt about a second.
 */
const TOKENIZER_IDLE_MS = 10 * 60_000;

/** Per-key limits shared by every replica through Redis when REDIS_URL is set; keys exist only with KEYS_FILE. */
function openSharedLimits(config: Config, keys: boolean, logger: Logger): SharedLimits | undefined {
  if (config.redisUrl === '') return undefined;
  if (!keys) {
    logger.warn('REDIS_URL is set but the service runs open (no KEYS_FILE): there are no per-key limits to share');
    return undefined;
  }
  return new SharedLimits({ url: config.redisUrl, logger });
}

/** The memory budget as a metric, beside the models' memory, so alerts can compare them (docker/monitoring). */
function registerMemoryBudget(registry: Registry, bytes: number): void {
  new Gauge({
    name: 'llm_memory_budget_bytes',
    help: 'MEMORY_BUDGET_BYTES: estimated memory that all loaded models and their contexts may take',
    registers: [registry],
    collect() {
      this.set(bytes);
    },
  });
}

/** Seams for tests; production passes none. */
export interface ServiceHooks {
  /** Runs first inside every guarded callback; a throw from it is contained like any fault. */
  injectFault?: FaultSink['inject'];
}

/** Builds and starts the whole service from a configuration. */
export async function startService(config: Config, logger: Logger = createLogger(config.logLevel), hooks: ServiceHooks = {}): Promise<Service> {
  // app.log and error.log join the logger's stdout; access.log gets a logger of its own.
  const logFiles =
    config.logToFiles && config.logLevel !== 'silent'
      ? attachLogFiles(logger, { dir: config.logDir, level: config.logLevel, maxBytes: config.logMaxBytes, keep: config.logFiles, access: config.logAccess })
      : undefined;
  logger.info({ config: configSummary(config) }, 'configuration');
  const access = await createAccessControl(config, logger);
  const demo = await ensureDemoModel(config.modelsDir);
  if (demo.created) logger.info({ path: demo.path }, 'no model found: wrote the demo model');
  const { llama, info: engine, notice: engineNotice } = await createLlamaRuntime({
    gpu: config.gpu,
    build: config.engineBuild,
    maxThreads: config.threads,
    ...(config.engineLog && { onEngineLog: (level: string, message: string) => logger.warn({ engine: level }, message) }),
  });
  if (engineNotice) logger.warn({ engine }, engineNotice);
  // Bound once observability exists; the pool reports loads to it.
  let telemetry: Telemetry | undefined;
  const pool = await ModelPool.open(llama, {
    modelsDir: config.modelsDir,
    defaultModel: config.defaultModel,
    contextSize: config.contextSize,
    sequences: config.parallelSequences,
    threads: config.threads,
    prefillChunkTokens: config.prefillChunkTokens,
    maxQueue: config.queueMax,
    queueTimeoutMs: config.queueTimeoutMs,
    memoryBudgetBytes: config.memoryBudgetBytes,
    keepAliveS: config.keepAliveS,
    mlock: config.mlock,
    watch: config.watchModels,
    sampling: SAMPLING_DEFAULTS,
    tokenizer: new PromptTokenizer({
      inlineMaxChars: INLINE_TOKENIZE_MAX_CHARS,
      maxQueue: config.queueMax,
      maxQueuedPerOwner: TOKENIZER_QUEUE_PER_CONNECTION,
      queueTimeoutMs: config.queueTimeoutMs,
      idleMs: TOKENIZER_IDLE_MS,
      // The worker loads the build this thread did: a second build's addon would bind to the
      // libllama/libggml this one loaded (same file names) and run their code under its own label.
      engine: { build: engine.build, backend: engine.backend },
    }),
    onLoaded: (model) => telemetry?.modelLoaded?.(model),
  }, logger);
  let shuttingDown = false;
  let defaultModelError: string | undefined;
  const sessions = new SessionRegistry();
  const observability = new Observability({
    metrics: config.metricsEnabled,
    feedHistoryS: config.feedHistoryS,
    models: () => pool.list(),
    connections: () => sessions.size,
    accessLog: !config.logAccess || config.logLevel === 'silent' ? undefined : (logFiles?.access ?? logger.child({ log: 'access' })),
    engine,
    logger,
  });
  telemetry = observability.telemetry;
  const faults: FaultSink = {
    report({ site, error, context }) {
      logger.error({ err: error, site, ...context }, `${site} handler failed`);
      observability.telemetry.fault(site, error instanceof Error ? error.message : String(error));
    },
    inject: hooks.injectFault,
  };
  const cache = new ResponseCache({ maxEntries: config.responseCacheEntries, maxBytes: config.responseCacheBytes });
  const ingress = new Ingress({ sliceMs: INGRESS_SLICE_MS });
  const resume: ResumeStore = new ResumeStore(config, {
    telemetry: observability.telemetry,
    logger,
    events: observability.metrics && new ResumeMetrics(observability.metrics.prometheus.registry, () => ({ bytes: resume.bytes, detached: resume.detachedCount })),
    report: (error) => faults.report({ site: 'timer', error, context: { component: 'resume-store' } }),
  });
  const context: SessionContext = { config, pool, logger, telemetry: observability.telemetry, cache, faults, ingress, isShuttingDown: () => shuttingDown, resume };
  const sharedLimits = openSharedLimits(config, access.keys !== undefined, logger);
  if (sharedLimits && observability.metrics) registerSharedLimitsMetrics(observability.metrics.prometheus.registry, sharedLimits);
  if (observability.metrics) registerMemoryBudget(observability.metrics.prometheus.registry, config.memoryBudgetBytes);
  const budgets = new KeyBudgets(sharedLimits);
  const guard = new UpgradeGuard(config, access.keys, budgets);
  const callerRefusal = (headers: Record<string, string>): string | undefined => guard.callerRefusal(headers);
  // The OpenAI-compatible API: the same requests, limits and keys as the stream endpoint, over HTTP.
  const api = new ApiDoor({ ...context, callerRefusal, keys: access.keys, budgets, registry: sessions });
  const server = await listen({
    host: config.host,
    port: config.port,
    maxBodyBytes: MAX_BODY_BYTES,
    faults,
    sockets: [streamEndpoint(context, sessions, guard), ...(observability.metrics ? [feedEndpoint(observability.metrics.feed, access.admin)] : [])],
    routes: [
      ...healthRoutes({
        shuttingDown: () => shuttingDown,
        // A failed preload (say, no memory for it) counts until the default model is loaded after all.
        notReadyReason: () => pool.notReadyReason() ?? (pool.isLoaded(pool.defaultName) ? undefined : defaultModelError),
        ...(sharedLimits && { details: () => ({ sharedLimits: sharedLimits.details() }) }),
      }),
      ...modelRoutes(pool),
      ...openAiRoutes(api, config, callerRefusal),
      ...adminRoutes(pool, sessions, access.admin, () => shuttingDown),
      ...(observability.metrics ? metricsRoutes({ metrics: observability.metrics.prometheus, admin: access.admin, public: config.metricsPublic }) : []),
      // Last: its `/*` would shadow any route registered after it.
      ...staticRoutes(),
    ],
  });
  observability.start((topic, message) => server.publish(topic, message, true));
  logger.info({ gpu: llama.gpu, engine, threads: config.threads, model: pool.defaultName }, 'engine ready');
  // Listening starts before the default model is loaded: /healthz answers at once, /readyz once it loaded.
  const loading = pool.preload().then(
    () => logger.info({ model: pool.defaultName }, 'default model ready'),
    (error: Error) => {
      defaultModelError = error.message;
      logger.error({ err: error }, 'default model failed to load');
    },
  );

  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  let stopping: Promise<void> | undefined;
  return {
    port: server.port,
    streamUrl: `ws://${host}:${server.port}/v1/stream`,
    httpUrl: `http://${host}:${server.port}`,
    pool,
    sessions,
    resume,
    adminToken: access.adminToken,
    observability,
    shutdown(graceMs = config.shutdownGraceMs) {
      stopping ??= (async () => {
        // Draining: still listening, so a load balancer sees /readyz and /healthz answer 503 and
        // new upgrades refused with 503 while the running streams finish.
        shuttingDown = true;
        // Nobody can come back for a detached request now: cancel them rather than wait for them.
        resume.close();
        await sessions.whenIdle(graceMs);
        sessions.cancelAll('shutdown');
        await sessions.whenIdle(CANCEL_GRACE_MS);
        server.stopListening();
        sessions.closeAll(CloseCode.goingAway, 'server shutting down');
        api.close();
        await loading;
        await pool.close();
        await llama.dispose();
        server.closeAll();
        await sharedLimits?.close();
        observability.stop();
        logger.info('service stopped');
        await logFiles?.close();
      })();
      return stopping;
    },
  };
}
