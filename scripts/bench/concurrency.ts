/**
 * Concurrency: N streams started at once on one shape-equivalent model, for several slot counts.
 * Prints aggregate and per-stream tokens/s, time to first token and inter-token gap percentiles,
 * queue wait, and fairness (slowest / fastest stream's tokens/s).
 * Usage: npm run bench:concurrency -- [--model 100m] [--quant f16] [--slots 1,2,4] [--streams 1,2,4,8,20] [--tokens 32]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { connect, type LlmClient, type WebSocketConstructor } from '../../protocol/index.js';
import type { ShapeQuant } from '../../server/demo-model/shape-model.js';
import { BENCH_DIR, benchModelDir } from './bench-models.js';
import { startServerProcess } from './server-process.js';
import { quantile, table } from './stats.js';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: '100m' },
    quant: { type: 'string', default: 'f16' },
    slots: { type: 'string', default: '1,2,4' },
    streams: { type: 'string', default: '1,2,4,8,20' },
    tokens: { type: 'string', default: '32' },
  },
});
const TOKENS = Number(args.tokens);
const list = (text: string): number[] => text.split(',').map(Number);

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
  const stream = client.generate({ prompt: `${index}. Alice was beginning to get very tired`, maxTokens: TOKENS, temperature: 0.8, seed: index + 1 });
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

const dir = await benchModelDir(args.model, args.quant as ShapeQuant);
const rows: (string | number)[][] = [];
const results: unknown[] = [];
for (const slots of list(args.slots)) {
  const server = await startServerProcess({ MODELS_DIR: dir, THREADS: '1', PARALLEL_SEQUENCES: String(slots), GPU: 'false', QUEUE_MAX: '256', LOG_TO_FILES: 'false', ADMIN_TOKEN: 'bench', MAX_STREAMS_PER_CONNECTION: '64', RATE_LIMIT_RPS: '1000', RATE_LIMIT_BURST: '10000', RESPONSE_CACHE_ENTRIES: '0' });
  // One connection per stream, as separate chat users would have.
  const clients = await Promise.all(Array.from({ length: Math.max(...list(args.streams)) }, () => connect(server.streamUrl, { WebSocket: WebSocket as unknown as WebSocketConstructor })));
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
  await server.stop();
}
console.log(`\n${args.model} (${args.quant}) shape-equivalent model, ${TOKENS} tokens per stream, 1 engine thread`);
console.log(table(['slots', 'streams', 'total tok/s', 'tok/s per stream p50', 'ttft p50 ms', 'ttft p95 ms', 'gap p50 ms', 'gap p95 ms', 'queue p50 ms', 'queue p95 ms', 'fairness'], rows));
mkdirSync(BENCH_DIR, { recursive: true });
writeFileSync(path.join(BENCH_DIR, 'concurrency.json'), JSON.stringify({ model: args.model, quant: args.quant, tokens: TOKENS, results }, null, 2));
