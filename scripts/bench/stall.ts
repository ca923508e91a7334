/**
 * Main-loop stall under oversize prompts: hostile connections send prompts at the character limit
 * at their full allowed rate while a victim streams and a prober watches /healthz (see USAGE).
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { STREAM_PATH, WireLimits } from '../../protocol/index.js';
import { BENCH_DIR, benchModelDir } from './bench-models.js';
import { hostileTemplates, newHostileStats, type HostileStats } from './stall-hostile.js';
import type { HostileJob } from './stall-hostile-process.js';
import { HealthProber, type ProbeSamples } from './stall-probe.js';
import { Victim, type VictimSamples } from './stall-victim.js';
import { startServerProcess } from './server-process.js';
import { quantile, table } from './stats.js';

const USAGE = `Usage: npm run bench:stall -- [options]

Replays the main-loop stall attack: H hostile WebSockets from one address send gen frames whose
prompts sit at the character limit (131,072 ASCII characters, and emoji/CJK text as long as fits
in a frame), each at its full allowed rate (the burst at once, then the refill rate, read from the
server's hello and limits frames), ignoring the answers. Meanwhile one victim streams long
generations (temperature 0.8, restarted as each ends) and a prober GETs /healthz every 20 ms.
Prints /healthz latency, the victim's gaps between tok frames and its tokens/s, calm and then under
attack, and how the hostile frames were answered; writes bench-results/stall.json.

Options:
  --seconds N      length of the attack (default 20)
  --hostile H      hostile connections (default 32 = MAX_CONNECTIONS_PER_IP's default; 0: baseline)
  --calm N         seconds measured before the attack starts (default 3)
  --max-tokens N   victim's maxTokens, lowered to what the context holds (default 4096)
  --rps N          hostile refill rate per second, instead of learning it from limits frames
  --chars N        characters of each hostile prompt (default the protocol's limit, 131072); a
                   prompt short enough to pass the server's length bound is tokenized before
                   it is refused, which is the costlier path
  --target URL     measure a running server (http://host:port) instead of starting one
  -h, --help       print this and exit

Environment:
  PORT             without --target: measure the server at http://127.0.0.1:PORT
  LLM_API_KEY      API key for a target that needs one (every connection presents it)

Without a target, server/main.ts of this tree runs as a child process with default limits on the
demo model and STREAM_COALESCE_MS=0, so every token is its own tok frame; run a target with
STREAM_COALESCE_MS=0 as well, or the gaps are between frames of several tokens. On a 127.x target
the victim connects from 127.0.0.2, so the hostiles' per-address cap does not shut it out.
`;

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '20' },
    hostile: { type: 'string', default: '32' },
    calm: { type: 'string', default: '3' },
    'max-tokens': { type: 'string', default: '4096' },
    chars: { type: 'string', default: String(WireLimits.maxPromptChars) },
    rps: { type: 'string' },
    target: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (args.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const SECONDS = Number(args.seconds);
const HOSTILE = Number(args.hostile);
const CALM = Number(args.calm);
const PROBE_INTERVAL_MS = 20;
const apiKey = process.env.LLM_API_KEY || undefined;
const target = args.target ?? (process.env.PORT ? `http://127.0.0.1:${process.env.PORT}` : undefined);
const sleep = (seconds: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, seconds * 1000));

interface Phase extends ProbeSamples, VictimSamples {
  seconds: number;
}
const newPhase = (): Phase => ({ healthzMs: [], healthzFailed: 0, gapsMs: [], ttftMs: [], tokFrames: 0, errors: {}, seconds: 0 });

const server = target
  ? undefined
  : await startServerProcess({ MODELS_DIR: await benchModelDir('demo'), STREAM_COALESCE_MS: '0', LOG_TO_FILES: 'false', ADMIN_TOKEN: 'bench', KEYS_FILE: '' });
const base = new URL(server?.httpUrl ?? target!);
const httpUrl = `${base.protocol.replace('ws', 'http')}//${base.host}`;
const streamUrl = `${base.protocol.replace('http', 'ws')}//${base.host}${STREAM_PATH}`;
const localAddress = base.hostname.startsWith('127.') ? '127.0.0.2' : undefined;

let current: Phase | undefined;
const victim = await Victim.start({ streamUrl, apiKey, localAddress, maxTokens: Number(args['max-tokens']) }, () => current);
const prober = new HealthProber(`${httpUrl}/healthz`, PROBE_INTERVAL_MS, () => current);
const { maxFrameBytes } = victim.limits;
const { prompts, templates } = hostileTemplates(Number(args.chars), maxFrameBytes);
await sleep(1); // warm-up, not measured

let stopHostiles: (() => void) | undefined;

/** Starts the hostile connections in their own process; resolves with their stats once stopped. */
function startHostiles(job: HostileJob): Promise<HostileStats> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, 'stall-hostile-process.ts'), JSON.stringify(job)], { stdio: ['pipe', 'pipe', 'inherit'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  stopHostiles = () => child.stdin.end();
  return new Promise((resolve, reject) => child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(output) as HostileStats) : reject(new Error(`hostile process exited with ${code}`)))));
}

/** The server's event-loop delay since the previous scrape (prom-client resets it on each), in ms. */
async function serverLoopLag(): Promise<{ p99: number; max: number }> {
  const text = await fetch(`${httpUrl}/metrics`, { headers: { authorization: `Bearer ${process.env.ADMIN_TOKEN ?? 'bench'}` } }).then((response) => (response.ok ? response.text() : ''), () => '');
  const read = (name: string): number => Math.round(Number(new RegExp(`^${name} ([0-9.e+-]+)`, 'm').exec(text)?.[1] ?? Number.NaN) * 10_000) / 10;
  return { p99: read('nodejs_eventloop_lag_p99_seconds'), max: read('nodejs_eventloop_lag_max_seconds') };
}

/** Runs `during` while the phase records; returns the phase. */
async function measure(seconds: number, during: () => () => void = () => () => undefined): Promise<Phase> {
  const phase = (current = newPhase());
  const started = performance.now();
  const stop = during();
  await sleep(seconds);
  stop();
  victim.closePhase(phase);
  phase.seconds = (performance.now() - started) / 1000;
  return phase;
}

console.error(`calm for ${CALM} s, then ${HOSTILE} hostile connections for ${SECONDS} s against ${target ?? server!.httpUrl}...`);
const calm = await measure(CALM);
let stats = newHostileStats();
const rps = args.rps === undefined ? undefined : Number(args.rps);
const lagBefore = await serverLoopLag(); // also resets the server's lag histogram
let hostiles: Promise<HostileStats> | undefined;
const attack = await measure(SECONDS, () => {
  hostiles = startHostiles({ streamUrl, apiKey, rps, count: HOSTILE, maxFrameBytes, chars: Number(args.chars) });
  return () => undefined;
});
const lagAttack = await serverLoopLag();
stopHostiles?.();
stats = await hostiles!;
console.error('attack over, stopping...');
await prober.stop(); // a probe still unanswered counts in the attack
current = undefined;
await victim.stop();
if (server) await Promise.race([server.stop(), sleep(15)]);

const max = (values: number[]): number => (values.length === 0 ? Number.NaN : values.reduce((a, b) => Math.max(a, b), -Infinity));
const summary = (phase: Phase) => ({
  seconds: phase.seconds,
  healthz: { samples: phase.healthzMs.length, failed: phase.healthzFailed, p50: quantile(phase.healthzMs, 0.5), p99: quantile(phase.healthzMs, 0.99), max: max(phase.healthzMs) },
  victim: {
    tokFrames: phase.tokFrames,
    tokensPerSecond: phase.tokFrames / phase.seconds,
    gapMs: { samples: phase.gapsMs.length, p50: quantile(phase.gapsMs, 0.5), p99: quantile(phase.gapsMs, 0.99), max: max(phase.gapsMs) },
    ttftMs: { samples: phase.ttftMs.length, p50: quantile(phase.ttftMs, 0.5), max: max(phase.ttftMs) },
    errors: phase.errors,
  },
});
const results = { calm: { ...summary(calm), serverLoopLagMs: lagBefore }, attack: { ...summary(attack), serverLoopLagMs: lagAttack } };
const rows = Object.entries(results).map(([name, { seconds, healthz, victim: v }]) => [
  name, seconds, healthz.p50, healthz.p99, healthz.max, healthz.failed, v.gapMs.p50, v.gapMs.p99, v.gapMs.max, v.tokensPerSecond, v.ttftMs.max,
]);
const answered = Object.values(stats.answers).reduce((sum, n) => sum + n, 0);
const list = (counts: Record<string, number>): string => Object.entries(counts).map(([key, n]) => `${key} ${n}`).join(', ') || 'none';

console.log(`\n${HOSTILE} hostile connections for ${SECONDS} s; /healthz every ${PROBE_INTERVAL_MS} ms (latency from its scheduled time)`);
console.log(table(['phase', 's', 'healthz p50 ms', 'p99', 'max', 'failed', 'tok gap p50 ms', 'p99', 'max', 'victim tok/s', 'ttft max ms'], rows));
console.log(`hostile: ${stats.opened} of ${HOSTILE} connections opened, ${stats.sent} gen frames sent (ASCII ${prompts.ascii.length} chars / ${templates[0]!.bytes.length} bytes, mixed ${prompts.mixed.length} chars / ${templates[1]!.bytes.length} bytes)`);
console.log(`answers: ${list(stats.answers)}; unanswered ${stats.sent - answered}`);
console.log(`server event-loop delay (prom-client, 10 ms resolution): calm p99 ${lagBefore.p99} ms max ${lagBefore.max} ms; attack p99 ${lagAttack.p99} ms max ${lagAttack.max} ms`);
console.log(`other: ${list(stats.other)}; victim errors under attack: ${list(attack.errors)}`);
mkdirSync(BENCH_DIR, { recursive: true });
const file = path.join(BENCH_DIR, 'stall.json');
writeFileSync(file, JSON.stringify({ target: target ?? 'child process, default limits, STREAM_COALESCE_MS=0', seconds: SECONDS, hostile: HOSTILE, ...results, hostileStats: stats }, null, 2));
console.log(`written to ${file}`);
process.exit(0);
