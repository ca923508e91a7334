import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { connect, type ConnectOptions, type LlmClient, type WebSocketConstructor } from '../../protocol/index.js';
import { startService, type Service, type ServiceHooks } from '../../server/app.js';
import { loadConfig, type Config } from '../../server/config/config.js';
import { ensureDemoModel } from '../../server/model-maker/demo/demo-model.js';
import { createLogger, type Logger } from '../../server/telemetry/logger.js';
import { parseExposition } from './exposition.js';
import { waitFor } from './wait.js';

/** One demo model for the whole test run, written once into the OS temp folder. */
export const SHARED_MODELS_DIR = path.join(os.tmpdir(), 'llm-stream-test-models');

/** Starts the real service on an ephemeral loopback port over the demo model. */
export async function startTestService(overrides: Partial<Config> = {}, logger?: Logger, hooks: ServiceHooks = {}): Promise<Service> {
  await ensureDemoModel(SHARED_MODELS_DIR);
  const config: Config = {
    ...loadConfig({}),
    host: '127.0.0.1',
    port: 0,
    modelsDir: SHARED_MODELS_DIR,
    threads: 1,
    gpu: 'false',
    logLevel: 'silent',
    logToFiles: false,
    adminToken: 'test-admin-token',
    // Generous limits: tests of the limits set their own.
    rateLimitRps: 10_000,
    rateLimitBurst: 10_000,
    maxFramesPerSecond: 10_000,
    // Off, so tests of generation exercise the engine; the cache's own tests turn it on.
    responseCacheEntries: 0,
    // Off, so a socket cut by a test ends its requests at once; the resume tests turn it on.
    resumeWindowMs: 0,
    ...overrides,
  };
  const service = await startService(config, logger ?? createLogger(config.logLevel), hooks);
  await waitReady(service);
  return service;
}

/** Resolves when /readyz answers 200. */
export async function waitReady(service: Service, timeoutMs = 60_000): Promise<void> {
  await waitFor(async () => (await fetch(`${service.httpUrl}/readyz`).catch(() => undefined))?.status === 200, timeoutMs, 'the service to be ready (/readyz 200)');
}

/** What the pool and the sessions hold: every count is 0 when the service is idle. */
function loadOf(service: Service): { inFlight: number; slots: { model: string; busy: number; queued: number }[] } {
  return {
    inFlight: service.sessions.inFlight,
    slots: service.pool.loadedModels().map((model) => ({ model: model.name, busy: model.scheduler.busy, queued: model.scheduler.queued })),
  };
}

/**
 * Resolves once no request is in flight and no sequence of any loaded model is busy or queued;
 * fails naming what is still held after `timeoutMs`. The requests' end is an event
 * (SessionRegistry.whenIdle); a sequence returns to its model only once its last decode step
 * settled, a little after its request ended, and that has none: it is polled.
 */
export async function waitForIdle(service: Service, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  await service.sessions.whenIdle(timeoutMs);
  const idle = (): boolean => {
    const load = loadOf(service);
    return load.inFlight === 0 && load.slots.every((slot) => slot.busy === 0 && slot.queued === 0);
  };
  await waitFor(idle, Math.max(0, deadline - Date.now()), () => `an idle service; still ${JSON.stringify(loadOf(service))}`);
}

/** The sum of every sample of a metric (all its label sets), read in-process from the service's registry. */
export async function metricTotal(service: Service, name: string): Promise<number> {
  const prometheus = service.observability.metrics?.prometheus;
  if (!prometheus) throw new Error('metrics are off in this service');
  let total = 0;
  for (const family of parseExposition(await prometheus.text()).values()) {
    for (const sample of family.samples) if (sample.name === name) total += sample.value;
  }
  return total;
}

/** Connects the protocol's own client to the service. */
export function connectClient(service: Service, options: ConnectOptions = {}): Promise<LlmClient> {
  return connect(service.streamUrl, { WebSocket: WebSocket as unknown as WebSocketConstructor, ...options });
}

/** A fresh empty folder in the OS temp folder. */
export function tempDir(prefix: string): string {
  return mkdtempSync(path.join(os.tmpdir(), `${prefix}-`));
}
