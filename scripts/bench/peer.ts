/**
 * This service against llama.cpp's own llama-server, side by side on the same GGUF model,
 * threads and slots, in paired alternating rounds (see USAGE).
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { BENCH_DIR, benchModelDir } from './bench-models.js';
import { ensureLlamaServer, llamaServerLocation } from './peer-llama-build.js';
import { startLlamaServer, type LlamaServer } from './peer-llama-server.js';
import { cancelToNext, concurrentStreams, longPromptTtft, prefillInterference, singleStream, type ConcurrentRun } from './peer-measures.js';
import { startOurServer, type OurServer } from './peer-ours.js';
import { sizedPrompt } from './peer-prompt.js';
import { invalidUtf8Tokens } from './peer-vocab.js';
import { pairedRounds, type Paired, type ServerPair } from './peer-rounds.js';
import { residentBytes, ServerDiedError } from './peer-side.js';
import { markdownTable, pairedRow, singleRow, type PeerRow } from './peer-table.js';

const CONTEXT_SIZE = 2048;

const USAGE = `Usage: npm run bench:peer -- [options]

Runs this service and llama.cpp's llama-server on the same GGUF model, with the same compute
threads and slots, on loopback, and measures both from the client's side in paired alternating
rounds (ours, theirs, theirs, ours, ...): single-stream decode, N concurrent streams, time to first
token of a long prompt, running streams' gaps while another request prefills it, cancel -> the
next request's first token, and resident memory. Prints a markdown table of the medians and the
ratio ours / theirs; writes the raw runs as JSON and the table as markdown beside it.

llama-server is built once (about 10 minutes on 2 cores; needs cmake, git and a C++ compiler) from
the llama.cpp source node-llama-cpp ships, into
\${XDG_CACHE_HOME:-~/.cache}/llm-stream/llama-server-<release>, and reused.

Options:
  --model PATH          GGUF model (default: the 100m shape-equivalent model, 110M params, F16,
                        written to bench-results/models/100m-f16/ if missing)
  --threads N           compute threads of each server (default 1)
  --rounds N            measured rounds per measurement (default 5)
  --warmups N           unmeasured runs per side before each measurement (default 1)
  --tokens N            tokens per generated stream (default 64)
  --streams LIST        concurrent stream counts, one server pair with that many slots each
                        (default 4,8); the first also measures prefill interference
  --prompt-tokens N     size of the long prompt (default 1000)
  --json FILE           where the raw runs go (default bench-results/peer.json; the table goes
                        beside it, as .md)
  --build-only          build llama-server if needed, print its path and exit
  -h, --help            print this and exit

Environment:
  LLAMA_SERVER_DIR      the cache folder of the llama-server build
  LLAMA_SERVER_BIN      a llama-server binary to use as is (nothing is built)

Both servers: CPU only, ${CONTEXT_SIZE} tokens of context per slot, fixed seeds (temperature 0.8,
top-k 40, top-p 0.95, min-p 0.05). llama-server: ignore_eos, --cache-ram 0, and the tokens that
are not valid UTF-8 on their own banned (its stream fails on such text, which random-weight models
make). This service: STREAM_COALESCE_MS=0 (a frame per piece, as llama-server sends an event per
piece), the response cache off, no rate limits.
`;

/** maxTokens of streams that run until cancelled: what fits a slot beside their short prompt. */
const UNTIL_CANCELLED = CONTEXT_SIZE - 256;

const { values: args } = parseArgs({
  options: {
    model: { type: 'string' },
    threads: { type: 'string', default: '1' },
    rounds: { type: 'string', default: '5' },
    warmups: { type: 'string', default: '1' },
    tokens: { type: 'string', default: '64' },
    streams: { type: 'string', default: '4,8' },
    'prompt-tokens': { type: 'string', default: '1000' },
    json: { type: 'string' },
    'build-only': { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (args.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}

function count(name: string, text: string, min: number, max: number): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < min || value > max) {
    console.error(`--${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(text)}\n\n${USAGE}`);
    process.exit(2);
  }
  return value;
}
const THREADS = count('threads', args.threads, 1, 1024);
const ROUNDS = count('rounds', args.rounds, 1, 1000);
const WARMUPS = count('warmups', args.warmups, 0, 100);
const TOKENS = count('tokens', args.tokens, 2, UNTIL_CANCELLED);
const PROMPT_TOKENS = count('prompt-tokens', args['prompt-tokens'], 16, CONTEXT_SIZE - 256);
const STREAMS = args.streams.split(',').map((text) => count('streams', text.trim(), 2, 64));
const JSON_FILE = path.resolve(args.json ?? path.join(BENCH_DIR, 'peer.json'));

// Ctrl-C and kill end the process through 'exit', where both servers are killed.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

const progress = (line: string): void => void process.stderr.write(`${line}\n`);
/** A run's deadline: a minute plus 5 tokens per second of the work asked. */
const deadline = (tokens: number): number => 60_000 + tokens * 200;

type Pair = ServerPair & { ours: OurServer; theirs: LlamaServer };
let pair: Pair | undefined;

async function startPair(slots: number, binary: string, modelFile: string, bannedTokens: readonly number[]): Promise<Pair> {
  progress(`starting both servers with ${slots} slot${slots === 1 ? '' : 's'}, ${THREADS} thread${THREADS === 1 ? '' : 's'}...`);
  const theirs = await startLlamaServer({ binary, modelFile, slots, threads: THREADS, contextSize: CONTEXT_SIZE, bannedTokens });
  try {
    const ours = await startOurServer({ modelFile, slots, threads: THREADS, contextSize: CONTEXT_SIZE });
    return { ours, theirs };
  } catch (error) {
    await theirs.stop();
    throw error;
  }
}

async function stopPair(): Promise<void> {
  const stopping = pair;
  pair = undefined;
  await Promise.all([stopping?.ours.stop(), stopping?.theirs.stop()]);
}

/** Resident memory of both processes, in MiB, once what just ran has settled. */
async function memory(servers: ServerPair): Promise<{ ours: number; theirs: number }> {
  await new Promise((resolve) => setTimeout(resolve, 1000));
  return { ours: residentBytes(servers.ours.pid) / 2 ** 20, theirs: residentBytes(servers.theirs.pid) / 2 ** 20 };
}

async function main(): Promise<void> {
  const binary = await ensureLlamaServer(progress);
  if (args['build-only']) {
    console.log(binary);
    return;
  }
  const modelFile = args.model ? path.resolve(args.model) : path.join(await benchModelDir('100m'), '100m.gguf');
  if (!existsSync(modelFile) || !modelFile.endsWith('.gguf')) throw new Error(`--model ${modelFile}: no such .gguf file`);
  const loadBefore = loadavg()[0]!;
  const bannedTokens = await invalidUtf8Tokens(modelFile);
  const rows: PeerRow[] = [];
  const raw: Record<string, unknown> = {};
  const rounds = (label: string, workTokens: number) => ({ rounds: ROUNDS, warmups: WARMUPS, label, deadlineMs: deadline(workTokens) });

  pair = await startPair(1, binary, modelFile, bannedTokens);
  const command = pair.theirs.command;
  const engine = pair.ours.engine;
  const loaded1 = await memory(pair);
  const long = await sizedPrompt(PROMPT_TOKENS, (text) => pair!.theirs.tokenize(text));
  const longSize = long.tokens.toLocaleString('en-US');
  progress(`long prompt: ${longSize} tokens (${long.text.length} characters)`);
  const single = await pairedRounds(pair, rounds('single stream', TOKENS), (server, round) => singleStream(server, round, TOKENS));
  const ttft = await pairedRounds(pair, rounds(`TTFT, ${long.tokens}-token prompt`, long.tokens), (server, round) => longPromptTtft(server, round, long.text));
  const cancel = await pairedRounds(pair, rounds('cancel -> next first token', 64), (server, round) => cancelToNext(server, round, UNTIL_CANCELLED));
  const idle1 = await memory(pair);
  await stopPair();
  rows.push(
    pairedRow('single-stream decode, tok/s', single, (run) => run.tokensPerSecond),
    pairedRow('time to first token, short prompt, ms', single, (run) => run.ttftMs),
    pairedRow(`time to first token, ${longSize}-token prompt, ms`, ttft, (run) => run.ttftMs),
    pairedRow('cancel → next request\'s first token, 1 slot, ms', cancel, (run) => run.cancelToNextMs),
  );
  raw.slots1 = { single, ttft, cancel, memoryMiB: { loaded: loaded1, idle: idle1 } };
  const concurrentRuns: ConcurrentRun[] = [];
  const memoryRows = [singleRow('RSS, 1 slot, loaded, MiB', loaded1.theirs, loaded1.ours), singleRow('RSS, 1 slot, idle after the rounds, MiB', idle1.theirs, idle1.ours)];

  for (const [index, streams] of STREAMS.entries()) {
    pair = await startPair(streams, binary, modelFile, bannedTokens);
    const loaded = await memory(pair);
    const concurrent = await pairedRounds(pair, rounds(`${streams} concurrent streams`, streams * TOKENS), (server, round) => concurrentStreams(server, round, streams, TOKENS));
    concurrentRuns.push(...concurrent.ours);
    rows.push(
      pairedRow(`${streams} streams, ${streams} slots: aggregate tok/s`, concurrent, (run) => run.aggregateTokensPerSecond),
      pairedRow(`${streams} streams: inter-token p50, ms`, concurrent, (run) => run.gapP50Ms),
      pairedRow(`${streams} streams: inter-token p95, ms`, concurrent, (run) => run.gapP95Ms),
    );
    let prefill: Paired<unknown> | undefined;
    if (index === 0) {
      const running = streams - 1;
      const runs = await pairedRounds(pair, rounds(`prefill interference, ${running} running streams`, long.tokens + running * 32), (server, round) => prefillInterference(server, round, running, long.text, UNTIL_CANCELLED));
      rows.push(
        pairedRow(`${running} running stream${running === 1 ? '' : 's'}: inter-token p50 before the prefill, ms`, runs, (run) => run.calmGapP50Ms),
        pairedRow(`… p95 while a ${longSize}-token prompt prefills, ms`, runs, (run) => run.prefillGapP95Ms),
        pairedRow('… longest gap during that prefill, ms', runs, (run) => run.prefillGapMaxMs),
        pairedRow('… that prompt\'s first token, ms', runs, (run) => run.prefillMs),
      );
      prefill = runs;
    }
    const idle = await memory(pair);
    await stopPair();
    memoryRows.push(singleRow(`RSS, ${streams} slots, loaded, MiB`, loaded.theirs, loaded.ours), singleRow(`RSS, ${streams} slots, idle after the rounds, MiB`, idle.theirs, idle.ours));
    raw[`slots${streams}`] = { concurrent, ...(prefill && { prefill }), memoryMiB: { loaded, idle } };
  }
  rows.push(...memoryRows);

  // The service cannot ignore end-of-generation tokens: say so when a stream ended before --tokens.
  const short = single.ours.filter((run) => run.tokens < TOKENS).length + concurrentRuns.reduce((sum, run) => sum + run.shortStreams, 0);
  const location = llamaServerLocation();
  const heading = [
    `${path.basename(modelFile)}, ${THREADS} thread${THREADS === 1 ? '' : 's'}, ${TOKENS} tokens per stream, ${ROUNDS} paired rounds after ${WARMUPS} warm-up${WARMUPS === 1 ? '' : 's'}; llama.cpp ${location.release} (this service: ${engine}; llama-server: ${location.external ? 'LLAMA_SERVER_BIN' : 'built with GGML_NATIVE'})`,
    ...(short > 0 ? [`${short} of this service's streams ended before ${TOKENS} tokens (end-of-generation token): compare tok/s, not totals`] : []),
    `medians; ours / theirs: median of the rounds' ratios (memory: of the single readings); load average ${loadBefore.toFixed(1)} before, ${loadavg()[0]!.toFixed(1)} after`,
  ].join('\n');
  const table = markdownTable(rows);
  console.log(`\n${heading}\n\n${table}`);
  mkdirSync(path.dirname(JSON_FILE), { recursive: true });
  const tableFile = JSON_FILE.replace(/\.json$/, '') + '.md';
  writeFileSync(tableFile, `${heading}\n\n${table}\n`);
  writeFileSync(JSON_FILE, JSON.stringify({ model: modelFile, threads: THREADS, rounds: ROUNDS, warmups: WARMUPS, tokens: TOKENS, contextSize: CONTEXT_SIZE, ourEngine: engine, loadAverage: { before: loadBefore, after: loadavg()[0] }, llamaServer: { release: location.release, binary, command, bannedTokens: bannedTokens.length }, longPromptTokens: long.tokens, rows, runs: raw }, null, 2));
  progress(`wrote ${JSON_FILE} and ${tableFile}`);
}

try {
  await main();
} catch (error) {
  console.error(`\npeer benchmark stopped: ${error instanceof Error ? error.message : String(error)}`);
  if (pair && !(error instanceof ServerDiedError)) {
    for (const server of [pair.ours, pair.theirs]) {
      const tail = server.outputTail();
      if (tail) console.error(`\n${server.side === 'ours' ? 'this service' : 'llama-server'}, last output:\n${tail.split('\n').slice(-8).join('\n')}`);
    }
  }
  await Promise.race([stopPair().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 15_000))]);
  process.exit(1);
}
