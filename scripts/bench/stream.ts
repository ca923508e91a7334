/**
 * Streaming overhead: the same generation (model, prompt, seed, token count) run directly on
 * node-llama-cpp and through the server to a WebSocket client, alternated in one run, plus the
 * latency from `cancel` to `end`, and the same chat reply through both front doors: the WebSocket
 * `chat` frame and the OpenAI-compatible `POST /v1/chat/completions` as server-sent events (see USAGE).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { getLlama, type LlamaContextSequence, type LlamaModel } from 'node-llama-cpp';
import WebSocket from 'ws';
import { connect, type ChatMessage, type LlmClient, type WebSocketConstructor } from '../../protocol/index.js';
import { BENCH_DIR, benchModelDir } from './bench-models.js';
import { measureSocketChat, measureSseChat } from './measure-chat.js';
import { measureStream, type StreamRun } from './measure-stream.js';
import { startServerProcess, type ServerProcess } from './server-process.js';
import { median, quantile, table } from './stats.js';

const USAGE = `Usage: npm run bench [-- options]   (or npm run bench:stream -- options)

Streams the same generations (model, prompt, seed, token count) directly on node-llama-cpp in this
process and through the server to a WebSocket client, alternating, and times cancel -> end.
Then streams the same chat reply (conversation, seed, token limit) through the WebSocket's \`chat\`
frame and through POST /v1/chat/completions (server-sent events), alternating.
Prints tokens/s, TTFT and server/direct per model, and tokens/s, TTFT and SSE/WebSocket per
model for the chat; writes bench-results/stream.json.

Options:
  --models LIST       demo and shape presets (tiny, 100m, 135m, 1b) to run (default demo,100m)
  --tokens N          tokens per generation (default 256)
  --rounds N          measured rounds (default 5)
  --warmups N         warm-up rounds (default 3)
  --cancels N         cancels after the third token, timed to their end frame (default 20)
  --coalesce-ms LIST  STREAM_COALESCE_MS values to compare side by side, one server each
                      (default: the server's default only)
  -h, --help          print this and exit

It starts its own servers (server/main.ts of this tree, 1 engine thread, 1 slot, no rate limits)
to compare them with the same model loaded here, so --target and PORT do not apply; they run
without API keys (leave KEYS_FILE unset), so LLM_API_KEY is not used.
`;

const { values: args } = parseArgs({
  options: {
    models: { type: 'string', default: 'demo,100m' },
    tokens: { type: 'string', default: '256' },
    rounds: { type: 'string', default: '5' },
    cancels: { type: 'string', default: '20' },
    warmups: { type: 'string', default: '3' },
    'coalesce-ms': { type: 'string', default: '' },
    target: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (args.help || args.target !== undefined) {
  if (args.target !== undefined) console.error('bench:stream starts its own servers to compare them with the engine run here; --target does not apply.\n');
  process.stdout.write(USAGE);
  process.exit(args.help ? 0 : 2);
}
const TOKENS = Number(args.tokens);
const ROUNDS = Number(args.rounds);
const CANCELS = Number(args.cancels);
const WARMUPS = Number(args.warmups);
/** Coalescing windows to compare side by side, one server each; none given: the default's. */
const WINDOWS: (string | undefined)[] = args['coalesce-ms'] ? args['coalesce-ms'].split(',') : [undefined];
const SERVER_ENV = { THREADS: '1', PARALLEL_SEQUENCES: '1', GPU: 'false', MAX_TOKENS_CEILING: '100000', LOG_TO_FILES: 'false', ADMIN_TOKEN: 'bench', RATE_LIMIT_RPS: '1000', RATE_LIMIT_BURST: '10000', RESPONSE_CACHE_ENTRIES: '0' };
const OUT_DIR = BENCH_DIR;

type Run = StreamRun;

/** Each round gets its own prompt so neither side profits from a cached prefix. */
const promptFor = (round: number): string => `${round}. Alice was beginning to get very tired of sitting by her sister on the bank`;

/** Each chat round its own conversation, for the same reason. */
const chatFor = (round: number): ChatMessage[] => [
  { role: 'system', content: 'You are a friendly storyteller who knows old books well.' },
  { role: 'user', content: `${round}. Tell me a short story.` },
];

/** The chat reply through each front door, alternating; the runs of both, by door. */
async function chatRounds(client: LlmClient, httpUrl: string): Promise<{ socket: Run[]; sse: Run[] }> {
  const socket: Run[] = [];
  const sse: Run[] = [];
  const runBoth = async (messages: ChatMessage[], keep: boolean, reversed: boolean): Promise<void> => {
    const doors = [() => measureSocketChat(client, messages, TOKENS), () => measureSseChat(httpUrl, messages, TOKENS)];
    const order = reversed ? [1, 0] : [0, 1];
    for (const door of order) {
      const run = await doors[door]!();
      if (keep) (door === 0 ? socket : sse).push(run);
    }
  };
  for (let i = 0; i < WARMUPS; i++) await runBoth(chatFor(-1 - i), false, false);
  for (let round = 0; round < ROUNDS; round++) await runBoth(chatFor(round), true, round % 2 === 1);
  return { socket, sse };
}

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

/** A server for one coalescing window (undefined: the service's default) and its client. */
interface ServerPath {
  label: string;
  server: ServerProcess;
  client: LlmClient;
  runs: Run[];
}

const percent = (ratio: number): string => `${(ratio * 100).toFixed(1)}%`;
const rows: (string | number)[][] = [];
const chatRows: (string | number)[][] = [];
const results: Record<string, unknown> = {};
const llama = await getLlama({ gpu: false, build: 'never' });
for (const name of args.models.split(',')) {
  const dir = await benchModelDir(name);
  const paths: ServerPath[] = [];
  for (const windowMs of WINDOWS) {
    const server = await startServerProcess({ ...SERVER_ENV, MODELS_DIR: dir, ...(windowMs !== undefined && { STREAM_COALESCE_MS: windowMs }) });
    const client = await connect(server.streamUrl, { WebSocket: WebSocket as unknown as WebSocketConstructor });
    paths.push({ label: windowMs === undefined ? 'server' : `server, coalesce ${windowMs} ms`, server, client, runs: [] });
  }
  const { hello } = paths[0]!.client;
  const modelFile = path.join(dir, `${hello.models.find((model) => model.default)!.name}.gguf`);
  const model = await llama.loadModel({ modelPath: modelFile });
  const context = await model.createContext({ contextSize: 2048, threads: 1 });
  const sequence = context.getSequence();
  // Warm every path up (the machine needs a few runs to reach its pace), then alternate, the
  // order reversed every other round, so no path always runs first and drift hits all alike.
  const runAll = async (prompt: string, keep: boolean, reversed: boolean): Promise<void> => {
    const order: (ServerPath | 'direct')[] = ['direct', ...paths];
    if (reversed) order.reverse();
    for (const step of order) {
      const run = step === 'direct' ? await direct(sequence, model, prompt) : await streamed(step.client, prompt);
      if (keep) (step === 'direct' ? directRuns : step.runs).push(run);
    }
  };
  const directRuns: Run[] = [];
  for (let i = 0; i < WARMUPS; i++) await runAll(promptFor(-1 - i), false, false);
  for (let round = 0; round < ROUNDS; round++) await runAll(promptFor(round), true, round % 2 === 1);
  const cancels = await cancelLatencies(paths[0]!.client);
  const chat = await chatRounds(paths[0]!.client, paths[0]!.server.httpUrl);
  for (const { client, server } of paths) {
    client.close();
    await server.stop();
  }
  await context.dispose();
  await model.dispose();
  const directTps = median(directRuns.map((run) => run.tokensPerSecond));
  rows.push([name, 'direct', directTps, median(directRuns.map((run) => run.ttftMs)), '', '', '', '']);
  const modelResults: Record<string, unknown> = { directRuns, cancels };
  for (const [index, { label, runs }] of paths.entries()) {
    const serverTps = median(runs.map((run) => run.tokensPerSecond));
    // A round's runs ran back to back, so their ratio is the least disturbed by drift.
    const pairedRatio = median(runs.map((run, round) => run.tokensPerSecond / directRuns[round]!.tokensPerSecond));
    const cancelCells = index === 0 ? [quantile(cancels, 0.5), quantile(cancels, 0.95)] : ['', ''];
    rows.push([name, label, serverTps, median(runs.map((run) => run.ttftMs)), percent(pairedRatio), percent(serverTps / directTps), ...cancelCells]);
    modelResults[label] = { runs, pairedRatio, ratioOfMedians: serverTps / directTps };
  }
  // Both doors generated the same tokens in a round (same seed), so their ratio is paired too.
  const sseRatio = median(chat.sse.map((run, round) => run.tokensPerSecond / chat.socket[round]!.tokensPerSecond));
  const ttftDelta = median(chat.sse.map((run, round) => run.ttftMs - chat.socket[round]!.ttftMs));
  chatRows.push([name, 'WebSocket chat', median(chat.socket.map((run) => run.tokens)), median(chat.socket.map((run) => run.tokensPerSecond)), median(chat.socket.map((run) => run.ttftMs)), '', '']);
  chatRows.push([name, 'SSE /v1/chat/completions', median(chat.sse.map((run) => run.tokens)), median(chat.sse.map((run) => run.tokensPerSecond)), median(chat.sse.map((run) => run.ttftMs)), percent(sseRatio), ttftDelta]);
  modelResults.chat = { ...chat, sseOverSocket: sseRatio, ttftDeltaMs: ttftDelta };
  results[name] = modelResults;
}
console.log(`\nStreaming ${TOKENS} tokens, ${ROUNDS} alternating rounds after ${WARMUPS} warm-ups, 1 engine thread each`);
console.log('server/direct: median of the rounds\' ratios (paired), and ratio of the medians');
console.log(table(['model', 'path', 'tokens/s', 'ttft ms', 'server/direct', '(of medians)', 'cancel→end p50 ms', 'p95 ms'], rows));
console.log(`\nThe same chat reply (up to ${TOKENS} tokens, same seed) through both front doors, ${ROUNDS} alternating rounds after ${WARMUPS} warm-ups`);
console.log('SSE/WebSocket: median of the rounds\' tokens/s ratios; ttft +ms: median of the rounds\' TTFT differences');
console.log(table(['model', 'door', 'tokens', 'tokens/s', 'ttft ms', 'SSE/WebSocket', 'ttft +ms'], chatRows));
mkdirSync(OUT_DIR, { recursive: true });
writeFileSync(path.join(OUT_DIR, 'stream.json'), JSON.stringify({ tokens: TOKENS, rounds: ROUNDS, results }, null, 2));
await llama.dispose();
