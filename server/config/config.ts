import os from 'node:os';
import { MAX_FLOOD_LIMIT } from '../limits/flood-detector.js';
import { ConfigError, defaultMemoryBudget, defaultThreads, flag, host, integer, oneOf, text, type Setting } from './settings.js';

/**
 * Every setting of the service, read from the environment (and `.env`). This table is the one
 * source for the README's configuration table and `.env.example` (`npm run config:doc`).
 */
export const settings = {
  host: host('HOST', 'Address to listen on', '127.0.0.1'),
  port: integer('PORT', 'TCP port (0 picks a free one)', 8080, 0, 65535),
  modelsDir: text('MODELS_DIR', 'Folder of GGUF models; the demo model is written here when it holds none', 'models'),
  defaultModel: text('DEFAULT_MODEL', 'Model used when a request names none (file name without .gguf); empty: the first by name', ''),
  gpu: oneOf('GPU', 'Compute backend for node-llama-cpp', 'auto', ['auto', 'false', 'cuda', 'vulkan', 'metal'] as const),
  engineBuild: oneOf(
    'ENGINE_BUILD',
    'Which node-llama-cpp engine to load: native (built for this CPU by npm run build:engine; the start fails without it), prebuilt (the binaries the package ships), auto (native when present)',
    'auto',
    ['auto', 'native', 'prebuilt'] as const,
  ),
  threads: {
    ...integer('THREADS', 'CPU threads per context; defaults to all cores but one, which the event loop keeps', defaultThreads(), 1, 1024),
    defaultText: 'cores - 1',
  } satisfies Setting<number>,
  contextSize: integer('CONTEXT_SIZE', 'Tokens of context per sequence (prompt + generated)', 2048, 64, 1_048_576),
  parallelSequences: integer('PARALLEL_SEQUENCES', 'Sequences (slots) per model that generate at once', 2, 1, 256),
  prefillChunkTokens: integer(
    'PREFILL_CHUNK_TOKENS',
    'Prompt tokens evaluated per step while other streams of the model generate: smaller keeps their tokens flowing, larger fills a long prompt sooner',
    32,
    1,
    65_536,
  ),
  maxTokensDefault: integer('MAX_TOKENS_DEFAULT', 'maxTokens when a request gives none', 256, 1, 1_000_000),
  maxTokensCeiling: integer('MAX_TOKENS_CEILING', 'Largest maxTokens a request may ask for', 4096, 1, 1_000_000),
  memoryBudgetBytes: {
    ...integer('MEMORY_BUDGET_BYTES', 'Estimated memory all loaded models and contexts may take; idle models are unloaded to make room', defaultMemoryBudget(), 1, Number.MAX_SAFE_INTEGER),
    defaultText: '80 % of RAM',
  } satisfies Setting<number>,
  keepAliveS: integer('KEEP_ALIVE_S', 'Seconds an idle model (not the default one) stays loaded; 0: forever', 300, 0, 31_536_000),
  mlock: flag('MLOCK', 'Lock model weights in RAM (mmap is always on)', false),
  watchModels: flag('WATCH_MODELS', 'Watch MODELS_DIR and apply added, removed and replaced files without a restart', true),
  responseCacheEntries: integer('RESPONSE_CACHE_ENTRIES', 'Responses of deterministic requests (temperature 0 or a seed) kept for replay; 0: off', 1000, 0, 10_000_000),
  responseCacheBytes: integer('RESPONSE_CACHE_BYTES', 'Memory the response cache may use', 64 * 1024 * 1024, 1024, Number.MAX_SAFE_INTEGER),
  queueMax: integer('QUEUE_MAX', 'Requests that may wait for a slot, per model; beyond it: overloaded', 64, 0, 100_000),
  queueTimeoutMs: integer('QUEUE_TIMEOUT_MS', 'Longest wait for a slot before queue_timeout', 30_000, 1, 3_600_000),
  maxStreamsPerConnection: integer('MAX_STREAMS_PER_CONNECTION', 'Requests one connection may have in flight', 8, 1, 10_000),
  keysFile: text('KEYS_FILE', 'JSON file of API keys (hashes only; see npm run create-key); empty: the service runs open', ''),
  allowedHosts: text(
    'ALLOWED_HOSTS',
    'Comma-separated host names a WebSocket upgrade may name in its Host header when the service runs open (no KEYS_FILE), against DNS rebinding; HOST, localhost and loopback addresses are always allowed; *: any',
    '',
  ),
  allowedOrigins: text('ALLOWED_ORIGINS', 'Comma-separated Origins allowed to open WebSockets; empty: same host only; *: any', ''),
  maxConnectionsPerIp: integer('MAX_CONNECTIONS_PER_IP', 'Open WebSockets one remote address may hold', 32, 1, 100_000),
  rateLimitRps: integer('RATE_LIMIT_RPS', 'Requests per second refilled into each connection\'s request bucket; 0: no request limit', 5, 0, 1_000_000),
  rateLimitBurst: integer('RATE_LIMIT_BURST', 'Capacity of each connection\'s request bucket', 20, 1, 1_000_000),
  tokenLimitTps: integer('TOKEN_LIMIT_TPS', 'Generated tokens per second refilled into each connection\'s token bucket; 0: no token limit', 0, 0, 100_000_000),
  tokenLimitBurst: integer('TOKEN_LIMIT_BURST', 'Capacity of each connection\'s token bucket', 4096, 1, 100_000_000),
  maxFramesPerSecond: integer('MAX_FRAMES_PER_SECOND', 'Frames of any kind per second a connection may send (burst: twice as many)', 100, 1, 1_000_000),
  floodMultiple: integer('FLOOD_MULTIPLE', 'Refused requests (frames) within FLOOD_WINDOW_MS, as a multiple of the request (frame) bucket\'s capacity, that close a connection with 1008', 3, 1, 1000),
  floodWindowMs: integer('FLOOD_WINDOW_MS', 'Window of the flood count', 10_000, 100, 3_600_000),
  slowConsumerMs: integer('SLOW_CONSUMER_MS', 'How long a connection may leave its send buffer above the high-water mark before its streams end with slow_consumer and it is closed', 15_000, 100, 3_600_000),
  generationTimeoutMs: integer('GENERATION_TIMEOUT_MS', 'Wall-clock deadline of one generation, ending in reason timeout', 300_000, 1, 86_400_000),
  idleTimeoutS: integer('IDLE_TIMEOUT_S', 'Seconds without traffic before a connection is closed (pings are sent before)', 120, 8, 960),
  streamCoalesceMs: integer('STREAM_COALESCE_MS', 'Text of one request that comes within this many ms of its previous tok frame is sent with the next piece (at most twice as late); 0: a frame per piece', 5, 0, 1000),
  sendHighWaterBytes: integer('SEND_HIGH_WATER_BYTES', 'Buffered bytes on a socket at which its streams pause', 256 * 1024, 1024, 64 * 1024 * 1024),
  shutdownGraceMs: integer('SHUTDOWN_GRACE_MS', 'How long running streams may finish after SIGTERM', 10_000, 0, 600_000),
  httpBodyMaxBytes: integer('HTTP_BODY_MAX_BYTES', 'Largest request body of the OpenAI-compatible API (/v1/chat/completions, /v1/completions); larger ones get 413', 1024 * 1024, 1024, 64 * 1024 * 1024),
  // uWS drops an HTTP connection that sends nothing for about 10 s: past 8 s a stalled body would be cut without its 408.
  httpBodyTimeoutMs: integer('HTTP_BODY_TIMEOUT_MS', 'How long the OpenAI-compatible API waits for a whole request body to arrive before answering 408', 5000, 100, 8000),
  resumeWindowMs: integer(
    'RESUME_WINDOW_MS',
    'How long the requests of a connection that dropped wait, paused, for a resume (and the frames of an ended request stay replayable); 0: no resuming, a drop cancels at once',
    30_000,
    0,
    3_600_000,
  ),
  resumeConnectionBytes: integer('RESUME_CONNECTION_BYTES', 'Memory the kept frames of one connection\'s requests may take; beyond it the oldest are dropped', 1024 * 1024, 1024, 1024 ** 3),
  resumeTotalBytes: integer('RESUME_TOTAL_BYTES', 'Memory the kept frames of all requests may take; beyond it the oldest are dropped (a waiting request dropped is cancelled)', 64 * 1024 * 1024, 1024, 1024 ** 4),
  replicaId: {
    ...text(
      'REPLICA_ID',
      'Name of this replica, sent in hello.replica: a client that reconnects to resume names it (?replica=) so the balancer routes it back here; letters, digits, . _ - (at most 63); empty: the host name',
      '',
    ),
    parse: replicaId,
  } satisfies Setting<string>,
  redisUrl: {
    ...text('REDIS_URL', 'Redis (redis:// or rediss://) holding each API key\'s buckets, connection and stream counts, shared by every replica; empty: per-key limits are per process', ''),
    secret: true,
    parse: redisUrl,
  } satisfies Setting<string>,
  adminToken: {
    ...text('ADMIN_TOKEN', 'Token for the dashboard and admin API; empty: the token in ADMIN_TOKEN_FILE, made at random (mode 0600) the first time and kept across restarts', ''),
    secret: true,
  },
  adminTokenFile: text('ADMIN_TOKEN_FILE', 'File holding the admin token when ADMIN_TOKEN is empty', '.admin-token'),
  logLevel: oneOf('LOG_LEVEL', 'Log level', 'info', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const),
  logToFiles: flag('LOG_TO_FILES', 'Write app.log, access.log and error.log under LOG_DIR (false: stdout only)', true),
  logDir: text('LOG_DIR', 'Folder of app.log, access.log and error.log', 'logs'),
  logMaxBytes: integer('LOG_MAX_BYTES', 'Size in bytes at which a log file is rotated', 10 * 1024 * 1024, 1024, 1024 ** 4),
  logFiles: integer('LOG_FILES', 'Rotated files kept per log (app.log.1 newest ... app.log.N oldest)', 5, 0, 1000),
  logAccess: flag('LOG_ACCESS', 'Access log, one line per connection open/close and per request (access.log, or stdout)', true),
  metricsEnabled: flag('METRICS_ENABLED', 'Prometheus metrics, resource monitor and live feed (off only to measure their cost)', true),
  metricsPublic: flag('METRICS_PUBLIC', 'Serve GET /metrics without the admin token (for a scraper on a private network)', false),
  feedHistoryS: integer('FEED_HISTORY_S', 'Seconds of snapshots a dashboard receives when it joins the live feed', 300, 1, 3600),
  engineLog: flag('ENGINE_LOG', 'Pass llama.cpp warnings through to the log', false),
} as const;

/** A replica name safe in a URL query and an nginx map key; empty: the host name. */
function replicaId(raw: string | undefined): string {
  const value = raw?.trim() || os.hostname();
  if (!/^[A-Za-z0-9._-]{1,63}$/.test(value)) {
    throw new ConfigError('REPLICA_ID', `expected 1 to 63 letters, digits, ".", "_" or "-", got "${value}"${raw?.trim() ? '' : ' (the host name): set REPLICA_ID'}`);
  }
  return value;
}

/** A Redis URL, or '' for none; the message never repeats the value, which may hold a password. */
function redisUrl(raw: string | undefined): string {
  const value = raw?.trim() ?? '';
  if (value === '') return '';
  let protocol: string | undefined;
  try {
    protocol = new URL(value).protocol;
  } catch {
    protocol = undefined;
  }
  if (protocol !== 'redis:' && protocol !== 'rediss:') throw new ConfigError('REDIS_URL', 'expected redis://[user:password@]host[:port][/db] or rediss://...');
  return value;
}

type Settings = typeof settings;
/** The typed, validated configuration. */
export type Config = { -readonly [K in keyof Settings]: ReturnType<Settings[K]['parse']> };

/** Reads and validates every setting; throws ConfigError naming the first bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const config = {} as Record<string, unknown>;
  for (const [key, setting] of Object.entries(settings)) config[key] = (setting as Setting<unknown>).parse(env[setting.env]);
  const typed = config as Config;
  const floodLimit = typed.floodMultiple * Math.max(typed.rateLimitBurst, typed.maxFramesPerSecond * 2);
  if (floodLimit > MAX_FLOOD_LIMIT) {
    throw new ConfigError('FLOOD_MULTIPLE', `FLOOD_MULTIPLE × the largest bucket (RATE_LIMIT_BURST, 2 × MAX_FRAMES_PER_SECOND) must not exceed ${MAX_FLOOD_LIMIT} (got ${floodLimit})`);
  }
  if (typed.resumeConnectionBytes > typed.resumeTotalBytes) {
    throw new ConfigError('RESUME_CONNECTION_BYTES', `must not exceed RESUME_TOTAL_BYTES (${typed.resumeTotalBytes})`);
  }
  if (typed.maxTokensDefault > typed.maxTokensCeiling) {
    throw new ConfigError('MAX_TOKENS_DEFAULT', `must not exceed MAX_TOKENS_CEILING (${typed.maxTokensCeiling})`);
  }
  return typed;
}
