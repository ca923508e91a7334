/**
 * Concurrency: N streams started at once on one shape-equivalent model, for several slot counts,
 * or on a running server (see USAGE).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { connect, STREAM_PATH, type LlmClient, type WebSocketConstructor } from '../../protocol/index.js';
import type { ShapeQuant } from '../../server/model-maker/demo/shape-model.js';
import { BENCH_DIR, benchModelDir } from './bench-models.js';
import { startServerProcess } from './server-process.js';
import { quantile, table } from './stats.js';

const USAGE = `Usage: npm run bench:concurrency -- [options]

Starts N streams at once, one connection each, for every N in --streams, on servers with each slot
count in --slots (PARALLEL_SEQUENCES), on one shape-equivalent model with 1 engine thread. Prints
aggregate and per-stream tokens/s, time to first token, gaps between text frames, queue wait and
fairness (slowest / fastest stream's tokens/s); writes bench-results/concurrency.json.

Options:
  --model NAME     demo or a shape preset: tiny, 100m, 135m, 1b (default 100m)
  --quant Q        shape model quantisation (default f16)
  --slots LIST     slot counts, one server each (default 1,2,4)
  --streams LIST   concurrent streams (default 1,2,4,8,20)
  --tokens N       tokens per stream (default 32)
  --target URL     measure a running server (http://host:port) with the slots and model it has;
                   --slots, --model and --quant are then ignored, and its limits apply
                   (MAX_CONNECTIONS_PER_IP, RATE_LIMIT_*, QUEUE_MAX)
  -h, --help       print this and exit

Environment:
  PORT             without --target: measure the server at http://127.0.0.1:PORT
  LLM_API_KEY      API key for a target that needs one
`;

const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: '100m' },
    quant: { type: 'string', default: 'f16' },
    slots: { type: 'string', default: '1,2,4' },
    streams: { type: 'string', default: '1,2,4,8,20' },
    tokens: { type: 'string', default: '32' },
    target: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (args.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const TOKENS = Number(args.tokens);
const target = args.target ?? (process.env.PORT ? `http://127.0.0.1:${process.env.PORT}` : undefined);
const apiKey = process.env.LLM_API_KEY || undefined;
const list = (text: string): number[] => text.split(',').map(Number);
let requests = 0;

interface StreamResult {
  ttftMs: number;
  queueMs: number;
  gapsMs: number[];
  tokensPerSecond: number;
  tokens: number;
}

async function runStream(client: LlmClient, index: number): Promise<StreamResult> {
  const started = performance.now();
  let previous = 0;
  let first = 0;
  const gapsMs: number[] = [];
  // A target's response cache would replay a seeded prompt it has seen: a unique prefix avoids it.
  const unique = target ? `${Date.now()}-${++requests} ` : '';
  const stream = client.generate({ prompt: `${unique}${index}. Alice was beginning to get very tired`, maxTokens: TOKENS, temperature: 0.8, seed: index + 1 });
  for await (const _piece of stream) {
    const now = performance.now();
    if (first === 0) first = now;
    else gapsMs.push(now - previous);
    previous = now;
  }
  const end = await stream.end;
  const tokens = end.usage.completionTokens;
  return { ttftMs: first - started, queueMs: end.timings.queueMs, gapsMs, tokens, tokensPerSecond: tokens > 1 ? ((tokens - 1) * 1000) / (previous - first) : 0 };
}

const dir = target ? '' : await benchModelDir(args.model, args.quant as ShapeQuant);
const rows: (string | number)[][] = [];
const results: unknown[] = [];
for (const slots of target ? ['target'] : list(args.slots)) {
  const server = target ? undefined : await startServerProcess({ MODELS_DIR: dir, THREADS: '1', PARALLEL_SEQUENCES: String(slots), GPU: 'false', QUEUE_MAX: '256', LOG_TO_FILES: 'false', ADMIN_TOKEN: 'bench', MAX_STREAMS_PER_CONNECTION: '64', RATE_LIMIT_RPS: '1000', RATE_LIMIT_BURST: '10000', RESPONSE_CACHE_ENTRIES: '0' });
  // One connection per stream, as separate chat users would have.
  const base = new URL(target ?? server!.streamUrl);
  const streamUrl = `${base.protocol.replace('http', 'ws')}//${base.host}${STREAM_PATH}`;
  const clients = await Promise.all(Array.from({ length: Math.max(...list(args.streams)) }, () => connect(streamUrl, { WebSocket: WebSocket as unknown as WebSocketConstructor, apiKey })));
  await runStream(clients[0]!, 0); // warm-up
  for (const count of list(args.streams)) {
    const started = performance.now();
    const streams = await Promise.all(clients.slice(0, count).map((client, index) => runStream(client, index)));
    const seconds = (performance.now() - started) / 1000;
    const total = streams.reduce((sum, stream) => sum + stream.tokens, 0);
    const perStream = streams.map((stream) => stream.tokensPerSecond);
    const gaps = streams.flatMap((stream) => stream.gapsMs);
    const ttfts = streams.map((stream) => stream.ttftMs);
    const queues = streams.map((stream) => stream.queueMs);
    rows.push([
      slots, count, total / seconds, quantile(perStream, 0.5),
      quantile(ttfts, 0.5), quantile(ttfts, 0.95), quantile(gaps, 0.5), quantile(gaps, 0.95),
      quantile(queues, 0.5), quantile(queues, 0.95), Math.min(...perStream) / Math.max(...perStream),
    ]);
    results.push({ slots, count, seconds, streams });
  }
  for (const client of clients) client.close();
  await server?.stop();
}
console.log(target ? `\n${target}, ${TOKENS} tokens per stream` : `\n${args.model} (${args.quant}) shape-equivalent model, ${TOKENS} tokens per stream, 1 engine thread`);
console.log(table(['slots', 'streams', 'total tok/s', 'tok/s per stream p50', 'ttft p50 ms', 'ttft p95 ms', 'gap p50 ms', 'gap p95 ms', 'queue p50 ms', 'queue p95 ms', 'fairness'], rows));
mkdirSync(BENCH_DIR, { recursive: true });
writeFileSync(path.join(BENCH_DIR, 'concurrency.json'), JSON.stringify({ ...(target ? { target } : { model: args.model, quant: args.quant }), tokens: TOKENS, results }, null, 2));
