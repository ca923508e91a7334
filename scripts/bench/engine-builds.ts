/**
 * Prebuilt vs native engine (ENGINE_BUILD): time to first token after a long prompt, and decode
 * speed, on the same model with the same settings. Each build runs in a child process of its own
 * (a second build in one process binds to the first one's libraries), both stay loaded, and the
 * rounds alternate between them, the order reversed every other round.
 * Usage: npm run bench:engine [-- --help]
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { LlamaContextSequence, LlamaModel, Token } from 'node-llama-cpp';
import { createLlamaRuntime, type EngineBuildChoice } from '../../server/engine/llama-runtime.js';
import { benchModelDir, BENCH_DIR } from './bench-models.js';
import { median, table } from './stats.js';

const USAGE = `Usage: npm run bench:engine [-- options]

Loads the same model in two child processes, one on the prebuilt engine and one on the native build
(npm run build:engine first), and alternates rounds between them: a prompt of --prompt-tokens
tokens, then --tokens greedy tokens. Prints the median time to first token (prompt evaluation and
the first token) and decode tokens/s per build, and native/prebuilt; writes bench-results/engine-builds.json.

Options:
  --model NAME          demo or a shape preset (tiny, 100m, 135m, 1b) (default 100m)
  --prompt-tokens N     prompt length in tokens (default 1000)
  --tokens N            generated tokens per round (default 128)
  --rounds N            measured rounds (default 7)
  --warmups N           warm-up rounds (default 2)
  --threads N           engine threads (default 1)
  -h, --help            print this and exit`;

interface RoundResult {
  ttftMs: number;
  decodeTokensPerSecond: number;
  /** The generated tokens, to compare the builds' outputs. */
  tokens: number[];
}

type ToChild = { run: true } | { exit: true };
type FromChild = { ready: { cpuVariant: string; build: string } } | { result: RoundResult } | { error: string };

if (process.argv[2] === '--child') await child(process.argv[3] as EngineBuildChoice, process.argv[4]!, Number(process.argv[5]), Number(process.argv[6]), Number(process.argv[7]));
else await parent();

async function parent(): Promise<void> {
  const { values } = parseArgs({
    options: {
      model: { type: 'string', default: '100m' },
      'prompt-tokens': { type: 'string', default: '1000' },
      tokens: { type: 'string', default: '128' },
      rounds: { type: 'string', default: '7' },
      warmups: { type: 'string', default: '2' },
      threads: { type: 'string', default: '1' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const [promptTokens, tokens, rounds, warmups, threads] = [values['prompt-tokens'], values.tokens, values.rounds, values.warmups, values.threads].map(Number) as [number, number, number, number, number];
  const dir = await benchModelDir(values.model);
  const modelFile = path.join(dir, readdirSync(dir).find((file) => file.endsWith('.gguf'))!);

  const builds = ['prebuilt', 'native'] as const;
  const children = await Promise.all(builds.map((build) => startChild(build, modelFile, promptTokens, tokens, threads)));
  const runs: Record<(typeof builds)[number], RoundResult[]> = { prebuilt: [], native: [] };
  try {
    for (let round = -warmups; round < rounds; round++) {
      const order = round % 2 === 0 ? [0, 1] : [1, 0];
      for (const index of order) {
        const result = await children[index]!.run();
        if (round >= 0) runs[builds[index]!].push(result);
      }
    }
  } finally {
    for (const { process: child } of children) child.send({ exit: true } satisfies ToChild);
  }

  const ttft = (build: (typeof builds)[number]): number => median(runs[build].map((run) => run.ttftMs));
  const tps = (build: (typeof builds)[number]): number => median(runs[build].map((run) => run.decodeTokensPerSecond));
  // Each round's runs ran back to back: their ratio is the least disturbed by a shared machine's drift.
  const paired = (read: (run: RoundResult) => number): number => median(runs.native.map((run, round) => read(run) / read(runs.prebuilt[round]!)));
  const sameText = runs.native.every((run, round) => run.tokens.join() === runs.prebuilt[round]!.tokens.join());
  console.log(`\n${values.model}, ${promptTokens}-token prompt, ${tokens} greedy tokens, ${threads} thread(s), ${rounds} alternating rounds after ${warmups} warm-ups`);
  console.log(
    table(
      ['build', 'cpu library', 'ttft ms', 'decode tok/s'],
      builds.map((build, index) => [build, children[index]!.cpuVariant, ttft(build), tps(build)]),
    ),
  );
  console.log(`native/prebuilt (median of paired rounds): ttft ${paired((run) => run.ttftMs).toFixed(2)}×, decode tok/s ${paired((run) => run.decodeTokensPerSecond).toFixed(2)}×`);
  console.log(`same greedy tokens from both builds: ${sameText ? 'yes' : 'no (floating-point order differs between the builds)'}`);
  mkdirSync(BENCH_DIR, { recursive: true });
  writeFileSync(path.join(BENCH_DIR, 'engine-builds.json'), JSON.stringify({ model: values.model, promptTokens, tokens, threads, rounds, runs }, null, 2));
}

/** A child process holding one build and the model, ready to run rounds on request. */
async function startChild(build: EngineBuildChoice, modelFile: string, promptTokens: number, tokens: number, threads: number): Promise<{ process: ChildProcess; cpuVariant: string; run(): Promise<RoundResult> }> {
  const child = fork(import.meta.filename, ['--child', build, modelFile, String(promptTokens), String(tokens), String(threads)], { execArgv: ['--import', 'tsx'], stdio: 'inherit' });
  process.once('exit', () => child.kill('SIGKILL'));
  // One request at a time: the one waiting for the child's next message.
  let waiting: { resolve(message: FromChild): void; reject(error: Error): void } | undefined;
  child.on('message', (message) => waiting?.resolve(message as FromChild));
  child.once('exit', (code) => waiting?.reject(new Error(`the ${build} child exited (${code})`)));
  const next = (): Promise<FromChild> => new Promise((resolve, reject) => (waiting = { resolve, reject }));
  const ready = await next();
  if ('error' in ready) throw new Error(`${build}: ${ready.error}`);
  if (!('ready' in ready)) throw new Error(`${build}: unexpected first message`);
  return {
    process: child,
    cpuVariant: ready.ready.cpuVariant,
    async run() {
      const reply = next();
      child.send({ run: true } satisfies ToChild);
      const message = await reply;
      if ('error' in message) throw new Error(`${build}: ${message.error}`);
      if (!('result' in message)) throw new Error(`${build}: unexpected message`);
      return message.result;
    },
  };
}

async function child(build: EngineBuildChoice, modelFile: string, promptTokens: number, tokens: number, threads: number): Promise<void> {
  const send = (message: FromChild): void => void process.send!(message);
  try {
    const { llama, info } = await createLlamaRuntime({ gpu: 'false', build, maxThreads: threads });
    const model = await llama.loadModel({ modelPath: modelFile });
    const context = await model.createContext({ contextSize: promptTokens + tokens + 16, sequences: 1, threads });
    const sequence = context.getSequence();
    const prompt = promptOf(model, promptTokens);
    send({ ready: { cpuVariant: info.cpuVariant, build: info.build } });
    process.on('message', (message: ToChild) => {
      if ('exit' in message) {
        void context.dispose().then(() => model.dispose()).then(() => llama.dispose()).finally(() => process.exit(0));
        return;
      }
      round(sequence, prompt, tokens).then(
        (result) => send({ result }),
        (error: Error) => send({ error: error.message }),
      );
    });
  } catch (error) {
    send({ error: error instanceof Error ? error.message : String(error) });
    process.exit(1);
  }
}

/** `count` tokens of the demo corpus's prose (its first 50,000 characters), repeated as needed. */
function promptOf(model: LlamaModel, count: number): Token[] {
  const corpusDir = path.resolve('models/corpus');
  const text = readdirSync(corpusDir)
    .filter((file) => file.endsWith('.txt'))
    .map((file) => readFileSync(path.join(corpusDir, file), 'utf8'))
    .join('\n')
    .slice(0, 50_000);
  const all = model.tokenize(text);
  if (all.length === 0) throw new Error('the corpus tokenized to nothing');
  const prompt: Token[] = [];
  while (prompt.length < count) prompt.push(...all.slice(0, count - prompt.length));
  return prompt;
}

/** One round from an empty sequence: prompt evaluation to the first token, then greedy decoding. */
async function round(sequence: LlamaContextSequence, prompt: Token[], count: number): Promise<RoundResult> {
  await sequence.clearHistory();
  const generated: number[] = [];
  const started = performance.now();
  let firstAt = 0;
  for await (const token of sequence.evaluate(prompt, { temperature: 0 })) {
    if (generated.length === 0) firstAt = performance.now();
    generated.push(token);
    if (generated.length >= count) break;
  }
  const endedAt = performance.now();
  return { ttftMs: firstAt - started, decodeTokensPerSecond: ((generated.length - 1) * 1000) / (endedAt - firstAt), tokens: generated };
}
