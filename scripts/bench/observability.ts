/**
 * Cost of observability: streaming tokens/s through a server with metrics, live feed and logs on
 * versus one with all of them off, plus a second "off" server to show the noise floor (base vs
 * base). The three run side by side and take turns, one stream at a time, so drift on a shared
 * machine hits them alike. The "on" server has a dashboard subscribed to its feed and is scraped
 * every 5 s, as in production (see USAGE).
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { FEED_PATH, connect, type LlmClient, type WebSocketConstructor } from '../../protocol/index.js';
import { FEED_SUBPROTOCOL } from '../../protocol/feed.js';
import { ensureDemoModel } from '../../server/model-maker/demo/demo-model.js';
import { measureStream } from './measure-stream.js';
import { startServerProcess, type ServerProcess } from './server-process.js';
import { median, quantile, table } from './stats.js';

const USAGE = `Usage: npm run bench:observability -- [options]

Streams through three servers in turn on the demo model (1 engine thread, 1 slot each): two with
metrics, live feed and logs off (their difference is the noise floor) and one with all of them on,
a dashboard subscribed and a scrape every 5 s. Prints tokens/s per server and the overhead;
writes bench-results/observability.json.

Options:
  --tokens N     tokens per generation (default 512)
  --rounds N     rounds, each streaming once through every server (default 15)
  -h, --help     print this and exit

It starts its own servers with these settings, so --target and PORT do not apply; they run
without API keys (leave KEYS_FILE unset), so LLM_API_KEY is not used.
`;

const { values: args } = parseArgs({
  options: {
    tokens: { type: 'string', default: '512' },
    rounds: { type: 'string', default: '15' },
    target: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (args.help || args.target !== undefined) {
  if (args.target !== undefined) console.error('bench:observability compares servers it starts with different settings; --target does not apply.\n');
  process.stdout.write(USAGE);
  process.exit(args.help ? 0 : 2);
}
const TOKENS = Number(args.tokens);
const ROUNDS = Number(args.rounds);
const OUT_DIR = path.resolve('bench-results');
const ADMIN = 'bench-observability-admin';

interface Arm {
  name: string;
  env: Record<string, string>;
  server?: ServerProcess;
  client?: LlmClient;
  runs: number[];
}

const promptFor = (round: number): string => `${round}. Alice was beginning to get very tired of sitting by her sister on the bank`;

const tokensPerSecond = async (client: LlmClient, prompt: string): Promise<number> => (await measureStream(client, prompt, TOKENS)).tokensPerSecond;

const modelsDir = path.join(OUT_DIR, 'models', 'demo');
await ensureDemoModel(modelsDir);
const logDir = mkdtempSync(path.join(os.tmpdir(), 'bench-observability-logs-'));
const common = { MODELS_DIR: modelsDir, THREADS: '1', PARALLEL_SEQUENCES: '1', GPU: 'false', ADMIN_TOKEN: ADMIN, MAX_TOKENS_CEILING: '100000', RATE_LIMIT_RPS: '1000', RATE_LIMIT_BURST: '10000', RESPONSE_CACHE_ENTRIES: '0' };
const off = { METRICS_ENABLED: 'false', LOG_TO_FILES: 'false', LOG_ACCESS: 'false' };
const arms: Arm[] = [
  { name: 'off A', env: { ...common, ...off }, runs: [] },
  { name: 'off B', env: { ...common, ...off }, runs: [] },
  { name: 'on', env: { ...common, METRICS_ENABLED: 'true', LOG_TO_FILES: 'true', LOG_ACCESS: 'true', LOG_DIR: logDir }, runs: [] },
];
for (const arm of arms) {
  arm.server = await startServerProcess(arm.env);
  arm.client = await connect(arm.server.streamUrl, { WebSocket: WebSocket as unknown as WebSocketConstructor });
}
const on = arms[2]!;
const dashboard = new WebSocket(on.server!.streamUrl.replace('/v1/stream', FEED_PATH), [FEED_SUBPROTOCOL, `bearer.${ADMIN}`]);
let feedFrames = 0;
dashboard.on('message', () => feedFrames++);
const scraper = setInterval(() => {
  void fetch(`${on.server!.httpUrl}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } }).then((response) => response.text());
}, 5000);

// Warm-up, then rounds in a rotating order.
for (const arm of arms) await tokensPerSecond(arm.client!, promptFor(-1));
for (let round = 0; round < ROUNDS; round++) {
  for (let k = 0; k < arms.length; k++) {
    const arm = arms[(round + k) % arms.length]!;
    arm.runs.push(await tokensPerSecond(arm.client!, promptFor(round)));
  }
}
clearInterval(scraper);
dashboard.close();
for (const arm of arms) {
  arm.client!.close();
  await arm.server!.stop();
}

/** Per-round ratio of two arms (paired: same round, same prompt), as a percentage difference. */
const pairedDiff = (a: Arm, b: Arm): number[] => a.runs.map((run, index) => (run / b.runs[index]! - 1) * 100);
const offAvg: Arm = { name: 'off (mean of A and B)', env: {}, runs: arms[0]!.runs.map((run, index) => (run + arms[1]!.runs[index]!) / 2) };
const noise = pairedDiff(arms[1]!, arms[0]!);
const overhead = pairedDiff(on, offAvg);
const rows = arms.map((arm) => [arm.name, median(arm.runs), quantile(arm.runs, 0.1), quantile(arm.runs, 0.9)]);
console.log(`\nStreaming ${TOKENS} tokens on the demo model, ${ROUNDS} rounds, 1 engine thread, 1 slot per server`);
console.log(table(['server', 'median tokens/s', 'p10', 'p90'], rows));
console.log(`\nnoise floor (off B vs off A): median ${median(noise).toFixed(2)} %, p10..p90 ${quantile(noise, 0.1).toFixed(2)} .. ${quantile(noise, 0.9).toFixed(2)} %`);
console.log(`overhead (on vs off): median ${median(overhead).toFixed(2)} %, p10..p90 ${quantile(overhead, 0.1).toFixed(2)} .. ${quantile(overhead, 0.9).toFixed(2)} %`);
console.log(`(negative = slower with observability on; feed frames received by the dashboard: ${feedFrames})`);
mkdirSync(OUT_DIR, { recursive: true });
writeFileSync(
  path.join(OUT_DIR, 'observability.json'),
  JSON.stringify({ tokens: TOKENS, rounds: ROUNDS, arms: arms.map(({ name, runs }) => ({ name, runs })), noise, overhead }, null, 2),
);
