import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { connect, type ConnectOptions, type LlmClient, type WebSocketConstructor } from '../../protocol/index.js';
import { startService, type Service, type ServiceHooks } from '../../server/app.js';
import { loadConfig, type Config } from '../../server/config/config.js';
import { ensureDemoModel } from '../../server/model-maker/demo/demo-model.js';
import { createLogger, type Logger } from '../../server/telemetry/logger.js';

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
    ...overrides,
  };
  const service = await startService(config, logger ?? createLogger(config.logLevel), hooks);
  await waitReady(service);
  return service;
}

/** Resolves when /readyz answers 200. */
export async function waitReady(service: Service, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const response = await fetch(`${service.httpUrl}/readyz`).catch(() => undefined);
    if (response?.status === 200) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('service did not become ready');
}

/** Connects the protocol's own client to the service. */
export function connectClient(service: Service, options: ConnectOptions = {}): Promise<LlmClient> {
  return connect(service.streamUrl, { WebSocket: WebSocket as unknown as WebSocketConstructor, ...options });
}

/** A fresh empty folder in the OS temp folder. */
export function tempDir(prefix: string): string {
  return mkdtempSync(path.join(os.tmpdir(), `${prefix}-`));
}
