/**
 * Cost of the limiter, the flood detector, key lookup and the frame decoder, set against the
 * per-token budget of the demo model measured in the same run (node-llama-cpp, CPU, 1 thread).
 * Target: each per-frame cost under 1 % of the time one token takes to generate (see USAGE).
 */
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { getLlama } from 'node-llama-cpp';
import { Bench } from 'tinybench';
import { decodeMessage, encodeFrame, parseClientFrame } from '../../protocol/index.js';
import { ApiKeyStore, generateKey } from '../../server/auth/api-keys.js';
import { ensureDemoModel } from '../../server/model-maker/demo/demo-model.js';
import { FloodDetector } from '../../server/limits/flood-detector.js';
import { TokenBucket } from '../../server/limits/token-bucket.js';
import { median, table } from './stats.js';

const USAGE = `Usage: npm run bench:limits -- [options]

Times the token bucket, the flood detector, the gen frame decoder, the tok frame encoder and API
key lookup (tinybench, in this process), against the demo model's time per token measured here
(node-llama-cpp, CPU, 1 thread). Prints ns per operation and its share of the token budget.

Options:
  --tokens N     tokens per run of the demo model (default 500)
  --rounds N     runs of the demo model; the median is the budget (default 3)
  --time MS      tinybench time per operation (default 1000)
  -h, --help     print this and exit

It runs no server and talks to none: --target, PORT and LLM_API_KEY do not apply.
`;

const { values: args } = parseArgs({
  options: {
    tokens: { type: 'string', default: '500' },
    rounds: { type: 'string', default: '3' },
    time: { type: 'string', default: '1000' },
    target: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (args.help || args.target !== undefined) {
  if (args.target !== undefined) console.error('bench:limits measures code in this process and talks to no server; --target does not apply.\n');
  process.stdout.write(USAGE);
  process.exit(args.help ? 0 : 2);
}
const TOKENS = Number(args.tokens);
const ROUNDS = Number(args.rounds);
const TIME_MS = Number(args.time);
/** Operations per timed call: one sub-microsecond call is below the timer's resolution. */
const BATCH = 1_000;
const TARGET_PERCENT = 1;

/** Tokens per second of the demo model generating alone: the median of ROUNDS runs of TOKENS tokens. */
async function demoTokensPerSecond(): Promise<number> {
  const { path: modelPath } = await ensureDemoModel(path.join(os.tmpdir(), 'llm-bench-demo'));
  const llama = await getLlama({ gpu: false, build: 'never' });
  const model = await llama.loadModel({ modelPath });
  const context = await model.createContext({ contextSize: 2048, threads: 1 });
  const sequence = context.getSequence();
  const rates: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    await sequence.clearHistory();
    const prompt = model.tokenize(`${round}. Alice was beginning to get very tired of sitting by her sister on the bank`);
    if (model.tokens.bos !== null && model.tokens.shouldPrependBosToken) prompt.unshift(model.tokens.bos);
    let count = 0;
    let first = 0;
    let last = 0;
    for await (const _token of sequence.evaluate(prompt, { temperature: 0.8, seed: 7 + round, topK: 40, topP: 0.95 })) {
      last = performance.now();
      if (++count === 1) first = last;
      if (count >= TOKENS) break;
    }
    // From the first token on: prompt processing is not part of the per-token budget.
    rates.push(((count - 1) * 1000) / (last - first));
  }
  await context.dispose();
  await model.dispose();
  await llama.dispose();
  return median(rates);
}

interface Case {
  name: string;
  /** How often the server pays this cost. */
  per: 'frame' | 'token' | 'request' | 'connection';
  /** Counted against the 1 % target (per-connection costs are not on the frame path). */
  onFramePath: boolean;
  run(): void;
}

// Results flow into this sink so the optimiser cannot drop the work being measured.
let sink = 0;

function cases(): Case[] {
  // Large buckets: every call takes the common path (credits available) rather than refusal.
  const requests = new TokenBucket({ capacity: 1e12, refillPerSecond: 1e9 });
  const tokens = new TokenBucket({ capacity: 1e12, refillPerSecond: 1e9 });
  const flood = new FloodDetector({ limit: 100, windowMs: 1_000 });
  const keys = Array.from({ length: 100 }, (_, i) => generateKey(`key-${i}`, { requestsPerSecond: 2 }));
  const store = ApiKeyStore.fromEntries(keys.map(({ entry }) => entry));
  const lastKey = keys.at(-1)!.key;
  const genBytes = encodeFrame(
    {
      t: 'gen',
      id: 'req-42',
      model: 'demo',
      prompt: 'Write a short story about a lighthouse keeper who finds a message in a bottle. Keep it under two hundred words and give it a hopeful ending.',
      maxTokens: 256,
      temperature: 0.8,
      topP: 0.95,
      seed: 7,
      stop: ['\n\n'],
    },
    'msgpack',
  ) as Uint8Array;
  const tok = { t: 'tok', id: 'req-42', text: ' the' };
  return [
    {
      name: 'TokenBucket tryTake + charge',
      per: 'frame',
      onFramePath: true,
      run() {
        if (requests.tryTake(1)) sink++;
        tokens.charge(1);
      },
    },
    { name: 'FloodDetector record', per: 'frame', onFramePath: true, run: () => void (sink += flood.record() ? 1 : 0) },
    {
      name: 'decode gen: decodeMessage + parseClientFrame',
      per: 'request',
      onFramePath: true,
      run() {
        const decoded = decodeMessage(genBytes, true, 'msgpack');
        if (decoded.ok && parseClientFrame(decoded.value).ok) sink++;
      },
    },
    { name: 'encode tok: encodeFrame', per: 'token', onFramePath: true, run: () => void (sink += encodeFrame(tok, 'msgpack').length) },
    { name: 'ApiKeyStore authenticate, 100 keys', per: 'connection', onFramePath: false, run: () => void (sink += store.authenticate(lastKey) ? 1 : 0) },
  ];
}

async function main(): Promise<void> {
  console.error(`measuring the demo model (1 thread, ${ROUNDS} × ${TOKENS} tokens)...`);
  const tokensPerSecond = await demoTokensPerSecond();
  const budgetNs = 1e9 / tokensPerSecond;

  const bench = new Bench({ time: TIME_MS, warmupTime: 200 });
  const all = cases();
  for (const item of all) {
    // Key lookup hashes and compares 100 digests: fewer per timed call keep its samples short.
    const repeat = item.onFramePath ? BATCH : BATCH / 100;
    bench.add(item.name, () => {
      for (let i = 0; i < repeat; i++) item.run();
    });
  }
  console.error('measuring the per-frame costs...');
  await bench.run();

  const measured = all.map((item, index) => {
    const result = bench.tasks[index]!.result;
    if (!('latency' in result)) throw new Error(`${item.name} did not complete (${result.state})`);
    const repeat = item.onFramePath ? BATCH : BATCH / 100;
    return { item, ns: (result.latency.mean * 1e6) / repeat, rme: result.latency.rme };
  });
  const rows = measured.map(({ item, ns, rme }) => {
    const percent = (100 * ns) / budgetNs;
    const verdict = item.onFramePath ? (percent < TARGET_PERCENT ? 'ok' : 'OVER') : 'n/a (once per connection)';
    return [item.name, `per ${item.per}`, ns, `±${rme.toFixed(1)} %`, `${percent.toFixed(4)} %`, verdict];
  });
  console.log(`demo model: ${tokensPerSecond.toFixed(0)} tokens/s at 1 thread → per-token budget ${(budgetNs / 1000).toFixed(1)} µs`);
  console.log(table(['operation', 'paid', 'ns/op', 'rme', '% of token budget', `< ${TARGET_PERCENT} %`], rows));
  // An upper bound: a request frame is paid once per generation, not once per token.
  const totalNs = measured.filter(({ item }) => item.onFramePath).reduce((sum, { ns }) => sum + ns, 0);
  console.log(`upper bound, every frame-path cost paid once per token: ${totalNs.toFixed(0)} ns = ${((100 * totalNs) / budgetNs).toFixed(4)} % of the budget`);
  if (sink === -1) console.log('unreachable: keeps the sink alive');
}

await main();
