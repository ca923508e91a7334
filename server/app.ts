import type { Llama } from 'node-llama-cpp';
import { CloseCode } from '../protocol/index.js';
import type { Config } from './config/config.js';
import { ensureDemoModel } from './demo-model/demo-model.js';
import { createLlamaRuntime } from './engine/llama-runtime.js';
import { SessionRegistry, streamEndpoint } from './gateway/stream-endpoint.js';
import type { SessionContext } from './gateway/session.js';
import { healthRoutes } from './http/health-routes.js';
import { modelRoutes } from './http/model-routes.js';
import { ModelPool } from './pool/model-pool.js';
import { noTelemetry, type Telemetry } from './telemetry/events.js';
import { createLogger, type Logger } from './telemetry/logger.js';
import { listen } from './transport/uws-server.js';

/** A running service. */
export interface Service {
  readonly port: number;
  /** `ws://host:port/v1/stream`. */
  readonly streamUrl: string;
  readonly httpUrl: string;
  readonly pool: ModelPool;
  readonly sessions: SessionRegistry;
  /**
   * Stops gracefully: stop listening, refuse new generations, let running ones finish within
   * `graceMs`, end the rest with reason `shutdown`, close every socket with 1001, free the models.
   */
  shutdown(graceMs?: number): Promise<void>;
}

const POLL_MS = 20;
const MAX_BODY_BYTES = 1024 * 1024;

/** Builds and starts the whole service from a configuration. */
export async function startService(config: Config, logger: Logger = createLogger(config.logLevel)): Promise<Service> {
  const demo = await ensureDemoModel(config.modelsDir);
  if (demo.created) logger.info({ path: demo.path }, 'no model found: wrote the demo model');
  const llama: Llama = await createLlamaRuntime({
    gpu: config.gpu,
    maxThreads: config.threads,
    ...(config.engineLog && { onEngineLog: (level: string, message: string) => logger.warn({ engine: level }, message) }),
  });
  const pool = await ModelPool.open(llama, {
    modelsDir: config.modelsDir,
    defaultModel: config.defaultModel,
    contextSize: config.contextSize,
    sequences: config.parallelSequences,
    threads: config.threads,
    maxQueue: config.queueMax,
    queueTimeoutMs: config.queueTimeoutMs,
  });
  let shuttingDown = false;
  let defaultModelError: string | undefined;
  const telemetry: Telemetry = noTelemetry;
  const context: SessionContext = { config, pool, logger, telemetry, isShuttingDown: () => shuttingDown };
  const sessions = new SessionRegistry();
  const server = await listen({
    host: config.host,
    port: config.port,
    maxBodyBytes: MAX_BODY_BYTES,
    sockets: [streamEndpoint(context, sessions)],
    routes: [
      ...healthRoutes({
        notReadyReason: () => {
          if (shuttingDown) return 'shutting down';
          if (pool.ready) return undefined;
          return defaultModelError ?? `default model "${pool.defaultName}" is loading`;
        },
      }),
      ...modelRoutes(pool),
    ],
  });
  logger.info({ gpu: llama.gpu, threads: config.threads, model: pool.defaultName }, 'engine ready');
  // Listening starts before the default model is loaded: /healthz answers at once, /readyz once it loaded.
  const loading = pool.get(undefined).then(
    (model) => logger.info({ model: model.name, loadMs: Math.round(model.loadMs), contextSize: model.contextSize }, 'default model loaded'),
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
    shutdown(graceMs = config.shutdownGraceMs) {
      stopping ??= (async () => {
        shuttingDown = true;
        server.stopListening();
        await waitUntil(() => sessions.inFlight === 0, graceMs);
        for (const session of sessions.sessions) for (const request of session.requests.values()) request.cancel('shutdown');
        await waitUntil(() => sessions.inFlight === 0, 2000);
        sessions.closeAll(CloseCode.goingAway, 'server shutting down');
        await loading;
        await pool.close();
        await llama.dispose();
        server.closeAll();
      })();
      return stopping;
    },
  };
}

async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition() && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, POLL_MS));
}
