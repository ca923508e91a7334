/**
 * Streaming overhead: the same generation (model, prompt, seed, token count) run directly on
 * node-llama-cpp and through the server to a WebSocket client, alternated in one run, plus the
 * latency from `cancel` to `end`. Usage: npm run bench:stream -- [--models demo,100m] [--tokens 256] [--rounds 5]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { getLlama, type LlamaContextSequence, type LlamaModel } from 'node-llama-cpp';
import WebSocket from 'ws';
import { connect, type LlmClient, type WebSocketConstructor } from '../../protocol/index.js';
import { BENCH_DIR, benchModelDir } from './bench-models.js';
import { measureStream, type StreamRun } from './measure-stream.js';
import { startServerProcess } from './server-process.js';
import { median, quantile, table } from './stats.js';

const { values: args } = parseArgs({
  options: {
    models: { type: 'string', default: 'demo,100m' },
    tokens: { type: 'string', default: '256' },
    rounds: { type: 'string', default: '5' },
    cancels: { type: 'string', default: '20' },
  },
});
const TOKENS = Number(args.tokens);
const ROUNDS = Number(args.rounds);
const CANCELS = Number(args.cancels);
const OUT_DIR = BENCH_DIR;

type Run = StreamRun;

/** Each round gets its own prompt so neither side profits from a cached prefix. */
const promptFor = (round: number): string => `${round}. Alice was beginning to get very tired of sitting by her sister on the bank`;

async function direct(sequence: LlamaContextSequence, model: LlamaModel, prompt: string): Promise<Run> {
  await sequence.clearHistory();
  const started = performance.now();
  const tokens = model.tokenize(prompt);
  if (model.tokens.bos !== null && model.tokens.shouldPrependBosToken) tokens.unshift(model.tokens.bos);
  let count = 0;
  let first = 0;
  let last = 0;
  const generated = [];
  for await (const token of sequence.evaluate(tokens, { temperature: 0.8, seed: 7, topK: 40, topP: 0.95, minP: 0.05 })) {
    generated.push(token);
    model.detokenize([token]);
    last = performance.now();
    if (++count === 1) first = last;
    if (count >= TOKENS) break;
  }
  return { tokens: count, ttftMs: first - started, tokensPerSecond: ((count - 1) * 1000) / (last - first) };
}

const streamed = (client: LlmClient, prompt: string): Promise<Run> => measureStream(client, prompt, TOKENS);

async function cancelLatencies(client: LlmClient): Promise<number[]> {
  const latencies: number[] = [];
  for (let i = 0; i < CANCELS; i++) {
    const stream = client.generate({ prompt: promptFor(100 + i), maxTokens: 1500, temperature: 0.8 });
    let pieces = 0;
    let cancelledAt = 0;
    for await (const _piece of stream) {
      if (++pieces === 3) {
        cancelledAt = performance.now();
        stream.cancel();
      }
    }
    await stream.end;
    latencies.push(performance.now() - cancelledAt);
  }
  return latencies;
}

const rows: (string | number)[][] = [];
const results: Record<string, unknown> = {};
const llama = await getLlama({ gpu: false, build: 'never' });
for (const name of args.models.split(',')) {
  const dir = await benchModelDir(name);
  const server = await startServerProcess({ MODELS_DIR: dir, THREADS: '1', PARALLEL_SEQUENCES: '1', GPU: 'false', MAX_TOKENS_CEILING: '100000', LOG_TO_FILES: 'false', ADMIN_TOKEN: 'bench', RATE_LIMIT_RPS: '1000', RATE_LIMIT_BURST: '10000', RESPONSE_CACHE_ENTRIES: '0' });
  const client = await connect(server.streamUrl, { WebSocket: WebSocket as unknown as WebSocketConstructor });
  const modelFile = path.join(dir, `${client.hello.models.find((model) => model.default)!.name}.gguf`);
  const model = await llama.loadModel({ modelPath: modelFile });
  const context = await model.createContext({ contextSize: 2048, threads: 1 });
  const sequence = context.getSequence();
  // One warm-up of each path, then alternate so drift on this shared machine hits both alike.
  await direct(sequence, model, promptFor(-1));
  await streamed(client, promptFor(-1));
  const directRuns: Run[] = [];
  const serverRuns: Run[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    directRuns.push(await direct(sequence, model, promptFor(round)));
    serverRuns.push(await streamed(client, promptFor(round)));
  }
  const cancels = await cancelLatencies(client);
  client.close();
  await server.stop();
  await context.dispose();
  await model.dispose();
  const directTps = median(directRuns.map((run) => run.tokensPerSecond));
  const serverTps = median(serverRuns.map((run) => run.tokensPerSecond));
  rows.push([name, 'direct', directTps, median(directRuns.map((run) => run.ttftMs)), '', '', '']);
  rows.push([name, 'server', serverTps, median(serverRuns.map((run) => run.ttftMs)), `${((serverTps / directTps) * 100).toFixed(1)}%`, quantile(cancels, 0.5), quantile(cancels, 0.95)]);
  results[name] = { directRuns, serverRuns, cancels, ratio: serverTps / directTps };
}
console.log(`\nStreaming ${TOKENS} tokens, median of ${ROUNDS} alternated rounds, 1 engine thread each`);
console.log(table(['model', 'path', 'tokens/s', 'ttft ms', 'server/direct', 'cancel→end p50 ms', 'p95 ms'], rows));
mkdirSync(OUT_DIR, { recursive: true });
writeFileSync(path.join(OUT_DIR, 'stream.json'), JSON.stringify({ tokens: TOKENS, rounds: ROUNDS, results }, null, 2));
await llama.dispose();
