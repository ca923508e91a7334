import { describe, expect, it } from 'vitest';
import { loadConfig, settings } from '../../server/config/config.js';
import { ConfigError, defaultThreads, type Setting } from '../../server/config/settings.js';

function expectConfigError(env: Record<string, string>, variable: string): ConfigError {
  let caught: unknown;
  try {
    loadConfig(env);
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(ConfigError);
  const error = caught as ConfigError;
  expect(error.variable).toBe(variable);
  expect(error.message).toContain(variable);
  expect(error.name).toBe('ConfigError');
  return error;
}

describe('loadConfig defaults', () => {
  it('uses every default with an empty env', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      host: '127.0.0.1',
      port: 8080,
      modelsDir: 'models',
      defaultModel: '',
      gpu: 'auto',
      threads: defaultThreads(),
      contextSize: 2048,
      parallelSequences: 2,
      maxTokensDefault: 256,
      maxTokensCeiling: 4096,
      queueMax: 64,
      queueTimeoutMs: 30_000,
      maxStreamsPerConnection: 8,
      generationTimeoutMs: 300_000,
      idleTimeoutS: 120,
      sendHighWaterBytes: 256 * 1024,
      shutdownGraceMs: 10_000,
      logLevel: 'info',
      engineLog: false,
    });
  });

  it('gives every setting its own default, and only settings', () => {
    const config = loadConfig({});
    expect(Object.keys(config).sort()).toEqual(Object.keys(settings).sort());
    for (const [key, setting] of Object.entries(settings)) {
      expect(config[key as keyof typeof config], key).toStrictEqual((setting as Setting<unknown>).parse(undefined));
    }
  });

  it('treats empty and blank values as unset', () => {
    const blank = Object.fromEntries(Object.values(settings).map((setting) => [setting.env, '  ']));
    expect(loadConfig(blank)).toStrictEqual(loadConfig({}));
    const empty = Object.fromEntries(Object.values(settings).map((setting) => [setting.env, '']));
    expect(loadConfig(empty)).toStrictEqual(loadConfig({}));
  });

  it('ignores unrelated variables', () => {
    expect(loadConfig({ PATH: '/bin', port: '1', Port: 'x' })).toStrictEqual(loadConfig({}));
  });

  it('default threads leave one core to the event loop and are at least 1', () => {
    expect(defaultThreads()).toBeGreaterThanOrEqual(1);
    expect(Number.isInteger(defaultThreads())).toBe(true);
  });

  it('documents every setting', () => {
    for (const setting of Object.values(settings)) {
      expect(setting.env).toMatch(/^[A-Z][A-Z0-9_]*$/);
      expect(setting.describe.length).toBeGreaterThan(0);
      expect(setting.defaultText.length).toBeGreaterThan(0);
    }
    expect(settings.threads.defaultText).toBe('cores - 1');
    expect(settings.defaultModel.defaultText).toBe('(empty)');
  });
});

describe('loadConfig parses valid values', () => {
  it.each<[string, string, string, unknown]>([
    ['HOST', '0.0.0.0', 'host', '0.0.0.0'],
    ['HOST', '::1', 'host', '::1'],
    ['HOST', '[::]', 'host', '[::]'],
    ['HOST', ' my-host.example.com ', 'host', 'my-host.example.com'],
    ['PORT', '0', 'port', 0],
    ['PORT', '65535', 'port', 65535],
    ['PORT', ' 9000 ', 'port', 9000],
    ['MODELS_DIR', '/var/lib/models ', 'modelsDir', '/var/lib/models'],
    ['DEFAULT_MODEL', 'tiny-llama', 'defaultModel', 'tiny-llama'],
    ['GPU', 'cuda', 'gpu', 'cuda'],
    ['GPU', 'false', 'gpu', 'false'],
    ['GPU', 'vulkan', 'gpu', 'vulkan'],
    ['GPU', 'metal', 'gpu', 'metal'],
    ['GPU', ' auto ', 'gpu', 'auto'],
    ['THREADS', '1', 'threads', 1],
    ['THREADS', '1024', 'threads', 1024],
    ['CONTEXT_SIZE', '64', 'contextSize', 64],
    ['CONTEXT_SIZE', '1048576', 'contextSize', 1_048_576],
    ['PARALLEL_SEQUENCES', '256', 'parallelSequences', 256],
    ['MAX_TOKENS_DEFAULT', '1', 'maxTokensDefault', 1],
    ['MAX_TOKENS_CEILING', '1000000', 'maxTokensCeiling', 1_000_000],
    ['QUEUE_MAX', '0', 'queueMax', 0],
    ['QUEUE_MAX', '100000', 'queueMax', 100_000],
    ['QUEUE_TIMEOUT_MS', '1', 'queueTimeoutMs', 1],
    ['MAX_STREAMS_PER_CONNECTION', '10000', 'maxStreamsPerConnection', 10_000],
    ['GENERATION_TIMEOUT_MS', '86400000', 'generationTimeoutMs', 86_400_000],
    ['IDLE_TIMEOUT_S', '8', 'idleTimeoutS', 8],
    ['IDLE_TIMEOUT_S', '960', 'idleTimeoutS', 960],
    ['SEND_HIGH_WATER_BYTES', '1024', 'sendHighWaterBytes', 1024],
    ['SHUTDOWN_GRACE_MS', '0', 'shutdownGraceMs', 0],
    ['LOG_LEVEL', 'silent', 'logLevel', 'silent'],
    ['LOG_LEVEL', 'trace', 'logLevel', 'trace'],
    ['ENGINE_LOG', 'true', 'engineLog', true],
    ['ENGINE_LOG', '1', 'engineLog', true],
    ['ENGINE_LOG', 'YES', 'engineLog', true],
    ['ENGINE_LOG', ' On ', 'engineLog', true],
    ['ENGINE_LOG', 'false', 'engineLog', false],
    ['ENGINE_LOG', '0', 'engineLog', false],
    ['ENGINE_LOG', 'no', 'engineLog', false],
    ['ENGINE_LOG', 'OFF', 'engineLog', false],
  ])('%s=%j', (env, raw, key, expected) => {
    const config = loadConfig({ [env]: raw }) as unknown as Record<string, unknown>;
    expect(config[key]).toStrictEqual(expected);
    // Nothing else changes.
    const defaults = loadConfig({}) as unknown as Record<string, unknown>;
    for (const other of Object.keys(defaults)) if (other !== key) expect(config[other], other).toStrictEqual(defaults[other]);
  });

  it('accepts MAX_TOKENS_DEFAULT equal to MAX_TOKENS_CEILING', () => {
    const config = loadConfig({ MAX_TOKENS_DEFAULT: '512', MAX_TOKENS_CEILING: '512' });
    expect(config.maxTokensDefault).toBe(512);
    expect(config.maxTokensCeiling).toBe(512);
  });
});

describe('loadConfig refuses invalid values with a ConfigError naming the variable', () => {
  it('refuses a flood limit the detector cannot hold', () => {
    expect(() => loadConfig({ FLOOD_MULTIPLE: '1000', RATE_LIMIT_BURST: '1000' })).toThrow(/FLOOD_MULTIPLE/);
    expect(loadConfig({ FLOOD_MULTIPLE: '100', RATE_LIMIT_BURST: '1000' }).floodMultiple).toBe(100);
  });

  it.each<[string, string]>([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['PORT', '65536'],
    ['PORT', '-1'],
    ['PORT', '80.5'],
    ['PORT', '80abc'],
    ['THREADS', '0'],
    ['THREADS', '1025'],
    ['THREADS', 'many'],
    ['CONTEXT_SIZE', '63'],
    ['PARALLEL_SEQUENCES', '0'],
    ['MAX_TOKENS_DEFAULT', '0'],
    ['MAX_TOKENS_CEILING', '1000001'],
    ['QUEUE_MAX', '-1'],
    ['QUEUE_TIMEOUT_MS', '0'],
    ['MAX_STREAMS_PER_CONNECTION', '0'],
    ['GENERATION_TIMEOUT_MS', 'NaN'],
    ['IDLE_TIMEOUT_S', '7'],
    ['IDLE_TIMEOUT_S', '961'],
    ['SEND_HIGH_WATER_BYTES', '1023'],
    ['SHUTDOWN_GRACE_MS', 'Infinity'],
    ['GPU', 'tpu'],
    ['GPU', 'CUDA'],
    ['LOG_LEVEL', 'verbose'],
    ['ENGINE_LOG', 'maybe'],
    ['ENGINE_LOG', '2'],
    ['HOST', 'bad host'],
    ['HOST', 'evil.com/path'],
  ])('%s=%j', (variable, raw) => {
    const error = expectConfigError({ [variable]: raw }, variable);
    expect(error.message).toContain(raw);
  });

  it('MAX_TOKENS_DEFAULT above MAX_TOKENS_CEILING', () => {
    const error = expectConfigError({ MAX_TOKENS_DEFAULT: '1000', MAX_TOKENS_CEILING: '999' }, 'MAX_TOKENS_DEFAULT');
    expect(error.message).toContain('MAX_TOKENS_CEILING');
    expect(error.message).toContain('999');
  });

  it('MAX_TOKENS_CEILING below the default MAX_TOKENS_DEFAULT', () => {
    expectConfigError({ MAX_TOKENS_CEILING: '100' }, 'MAX_TOKENS_DEFAULT');
  });

  it('ConfigError formats its message as "VARIABLE: reason"', () => {
    const error = new ConfigError('SOME_VAR', 'is wrong');
    expect(error).toBeInstanceOf(Error);
    expect(error.message).toBe('SOME_VAR: is wrong');
    expect(error.variable).toBe('SOME_VAR');
  });
});
