import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { connect, type EngineInfo, type WebSocketConstructor } from '../../protocol/index.js';
import { startServerProcess, watchJsonLog, type ServerProcess } from '../../scripts/bench/server-process.js';
import { ensureDemoModel } from '../../server/model-maker/demo/demo-model.js';
import { finishedLocalBuilds } from '../../server/engine/native-build.js';
import { parseExposition } from '../helpers/exposition.js';
import { SHARED_MODELS_DIR } from '../helpers/service.js';

/*
 * ENGINE_BUILD on the real server process, one process per engine (a second build in one process
 * binds to the libraries the first one loaded). The native build exists only where
 * `npm run build:engine` ran: its tests skip, saying so, elsewhere (CI).
 */

const ROOT = path.resolve(import.meta.dirname, '../..');
const ADMIN_TOKEN = 'engine-test-token';
const TEST_ENV = {
  THREADS: '1',
  GPU: 'false',
  LOG_TO_FILES: 'false',
  LOG_ACCESS: 'false',
  ADMIN_TOKEN,
  KEYS_FILE: '',
  WATCH_MODELS: 'false',
  MODELS_DIR: SHARED_MODELS_DIR,
};
/** node-llama-cpp's folder name of a CPU-only build for this machine. */
const CPU_BUILD_FOLDER = `${({ darwin: 'mac', win32: 'win' } as Record<string, string>)[process.platform] ?? process.platform}-${process.arch}`;
const NATIVE_PRESENT = finishedLocalBuilds().includes(CPU_BUILD_FOLDER);
if (!NATIVE_PRESENT) console.info(`engine-build tests: no native build (${CPU_BUILD_FOLDER}) in node_modules/node-llama-cpp/llama/localBuilds; the native-only tests are skipped (run npm run build:engine to include them)`);

let servers: ServerProcess[] = [];

beforeAll(async () => {
  await ensureDemoModel(SHARED_MODELS_DIR);
});

afterEach(() => {
  for (const server of servers) server.kill();
  servers = [];
});

async function start(engineBuild: string): Promise<ServerProcess> {
  const server = await startServerProcess({ ...TEST_ENV, ENGINE_BUILD: engineBuild }, { timeoutMs: 60_000, stderr: 'capture' });
  servers.push(server);
  return server;
}

/** The engine the server logged at start. */
async function loggedEngine(server: ServerProcess): Promise<EngineInfo> {
  const ready = await server.waitForLog('engine ready');
  return ready.engine as EngineInfo;
}

/** `llm_engine_info`'s one sample, scraped over HTTP. */
async function scrapedEngine(server: ServerProcess): Promise<{ labels: Record<string, string>; value: number }[]> {
  const response = await fetch(`${server.httpUrl}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  expect(response.status).toBe(200);
  return parseExposition(await response.text()).get('llm_engine_info')?.samples ?? [];
}

/** Generates from a short prompt (this thread's engine) and a long one (the tokenizer worker's). */
async function generates(server: ServerProcess): Promise<void> {
  const client = await connect(server.streamUrl, { WebSocket: WebSocket as unknown as WebSocketConstructor });
  try {
    for (const prompt of ['Alice was beginning', 'Alice was beginning to get very tired. '.repeat(80)]) {
      const { text, end } = await client.generate({ prompt, maxTokens: 8, temperature: 0 }).text();
      expect(end.usage.completionTokens).toBeGreaterThan(0);
      expect(text.length).toBeGreaterThan(0);
    }
  } finally {
    client.close();
  }
}

/** The engine files the server process has mapped, from /proc/<pid>/maps. */
function mappedEngineFiles(server: ServerProcess): { addons: string[]; cpuVariants: string[] } {
  const files = new Set(
    readFileSync(`/proc/${server.child.pid}/maps`, 'utf8')
      .split('\n')
      .map((line) => line.slice(line.indexOf('/')))
      .filter((file) => file.startsWith('/')),
  );
  const addons = [...files].filter((file) => file.endsWith('/llama-addon.node'));
  const cpuVariants = [...files].map((file) => /\/libggml-cpu-([A-Za-z0-9_]+)\.so$/.exec(file)?.[1]).filter((variant): variant is string => variant !== undefined);
  return { addons, cpuVariants };
}

describe.runIf(process.platform === 'linux')('ENGINE_BUILD', () => {
  it('prebuilt: loads the package binaries, logs and exposes which, and generates through both threads', async () => {
    const server = await start('prebuilt');
    const engine = await loggedEngine(server);
    expect(engine).toMatchObject({ build: 'prebuilt', backend: 'cpu' });
    expect(engine.llamaCppRelease).toMatch(/\S/);

    expect(await scrapedEngine(server)).toEqual([
      { name: 'llm_engine_info', labels: { build: 'prebuilt', backend: 'cpu', cpu_variant: engine.cpuVariant, llama_cpp_release: engine.llamaCppRelease }, value: 1 },
    ]);
    await generates(server);

    // One engine in the process, the tokenizer worker included: the prebuilt addon, and the one
    // CPU variant it reported.
    const mapped = mappedEngineFiles(server);
    expect(mapped.addons).toHaveLength(1);
    expect(mapped.addons[0]).not.toContain('/localBuilds/');
    expect(mapped.cpuVariants).toEqual([engine.cpuVariant]);
  });

  it('auto: takes the native build when present, else the prebuilt one', async () => {
    const server = await start('auto');
    expect((await loggedEngine(server)).build).toBe(NATIVE_PRESENT ? 'native' : 'prebuilt');
  });

  it.runIf(NATIVE_PRESENT)('native: loads the local build, with no prebuilt CPU variant in the process', async () => {
    const server = await start('native');
    const engine = await loggedEngine(server);
    expect(engine).toMatchObject({ build: 'native', backend: 'cpu', cpuVariant: 'native' });
    expect((await scrapedEngine(server))[0]?.labels).toMatchObject({ build: 'native', cpu_variant: 'native' });
    await generates(server);

    const mapped = mappedEngineFiles(server);
    expect(mapped.addons).toEqual([path.join(ROOT, 'node_modules/node-llama-cpp/llama/localBuilds', CPU_BUILD_FOLDER, 'Release/llama-addon.node')]);
    expect(mapped.cpuVariants).toEqual([]);
  });

  /** Starts the server expecting it to refuse; resolves with its exit code and the fatal log line. */
  async function refusedStart(env: Record<string, string>): Promise<{ code: number | null; message: string; listened: boolean }> {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'server/main.ts')], {
      cwd: ROOT,
      env: { ...process.env, ...TEST_ENV, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const { logs } = watchJsonLog(child.stdout);
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    const code = await new Promise<number | null>((resolve) => child.once('close', (exitCode) => resolve(exitCode)));
    clearTimeout(timer);
    const fatal = logs.find((record) => record.msg === 'could not start');
    return { code, message: String((fatal?.err as { message?: unknown } | undefined)?.message ?? ''), listened: logs.some((record) => record.msg === 'listening') };
  }

  it('native: refuses to start, saying how to build one, when none exists for the backend', async () => {
    // No native Vulkan build exists here (build:engine builds the CPU unless asked otherwise), with or without the CPU one.
    const refused = await refusedStart({ ENGINE_BUILD: 'native', GPU: 'vulkan' });
    expect(refused.code).toBe(1);
    expect(refused.listened).toBe(false);
    expect(refused.message).toMatch(/^ENGINE_BUILD: native: no native engine build for vulkan in .*localBuilds .*npm run build:engine` -- --gpu vulkan/);
  });

  it.runIf(!NATIVE_PRESENT)('native: refuses to start on the CPU when npm run build:engine never ran', async () => {
    const refused = await refusedStart({ ENGINE_BUILD: 'native' });
    expect(refused.code).toBe(1);
    expect(refused.message).toMatch(/^ENGINE_BUILD: native: no native engine build for the CPU in .*\(none built\); run `npm run build:engine` first, or set ENGINE_BUILD=auto$/);
  });

  it('rejects an unknown ENGINE_BUILD before anything starts', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'server/main.ts')], { cwd: ROOT, env: { ...process.env, ...TEST_ENV, ENGINE_BUILD: 'fast' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    expect(code).toBe(1);
    expect(stderr).toContain('Invalid configuration: ENGINE_BUILD: expected one of auto, native, prebuilt, got "fast"');
  });
});
