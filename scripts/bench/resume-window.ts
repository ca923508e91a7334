/**
 * What the resume window costs a stream: time per frame sent through a request's host with frames
 * kept and without, and the heap a kept frame really takes against what the store counts for it.
 * Usage: npm run bench:resume [-- --frames N --text-chars N --rounds N]
 */
import { parseArgs } from 'node:util';
import type { ServerFrame } from '../../protocol/index.js';
import type { ResumeTarget } from '../../server/gateway/resume-host.js';
import { loadConfig } from '../../server/config/config.js';
import { ResumeStore } from '../../server/gateway/resume-store.js';
import { frameBytes } from '../../server/gateway/resume-window.js';
import type { StreamRequest } from '../../server/gateway/stream-request.js';
import { noTelemetry } from '../../server/telemetry/events.js';
import { createLogger } from '../../server/telemetry/logger.js';
import { median } from './stats.js';

const { values: args } = parseArgs({
  options: {
    frames: { type: 'string', default: '200000' },
    'text-chars': { type: 'string', default: '8' },
    rounds: { type: 'string', default: '7' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (args.help) {
  process.stdout.write('Usage: npm run bench:resume [-- --frames N (200000) --text-chars N (8) --rounds N (7)]\n');
  process.exit(0);
}
const FRAMES = Number(args.frames);
const TEXT_CHARS = Number(args['text-chars']);
const ROUNDS = Number(args.rounds);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc (npm run bench:resume does)');

/** A connection that takes every frame and sends it nowhere. */
function sink(id: string): ResumeTarget {
  return {
    id,
    origin: { session: id, remoteAddress: '127.0.0.1', keyName: 'anonymous' },
    limits: { chargeToken: () => undefined, tokenWaitMs: () => 0, admitShared: () => undefined },
    send: () => undefined,
    sendError: () => undefined,
    waitWritable: () => undefined,
    guarded: (body) => body,
    ended: () => undefined,
    release: () => undefined,
  };
}

/** The shipped bounds, or none (`unbounded`: every frame stays, to weigh them). */
function store(windowMs: number, unbounded = false): ResumeStore {
  const shipped = loadConfig({});
  const bounds = unbounded ? { resumeConnectionBytes: 2 ** 40, resumeTotalBytes: 2 ** 40 } : { resumeConnectionBytes: shipped.resumeConnectionBytes, resumeTotalBytes: shipped.resumeTotalBytes };
  return new ResumeStore(
    { ...bounds, resumeWindowMs: windowMs, maxStreamsPerConnection: shipped.maxStreamsPerConnection },
    { telemetry: noTelemetry, logger: createLogger('silent'), report: (error) => { throw error; } },
  );
}

/** Text pieces as the engine makes them: fresh strings, built from parts. */
const pieces = Array.from({ length: 1024 }, (_, index) => `${index}`.padEnd(TEXT_CHARS, 'x'));

/** Sends FRAMES tok frames of one request through its host; returns ns per frame and the store. */
function stream(windowMs: number, unbounded = false): { nsPerFrame: number; resumes: ResumeStore } {
  const resumes = store(windowMs, unbounded);
  const target = sink(`s${windowMs}`);
  resumes.open(target.id, 'anonymous');
  const request = resumes.admit(target, 'r', (host) => ({ id: 'r', host }) as unknown as StreamRequest);
  const host = (request as unknown as { host: { send(frame: ServerFrame): void } }).host;
  const started = process.hrtime.bigint();
  for (let index = 0; index < FRAMES; index++) host.send({ t: 'tok', id: 'r', text: pieces[index & 1023]!.slice(0) });
  return { nsPerFrame: Number(process.hrtime.bigint() - started) / FRAMES, resumes };
}

const off: number[] = [];
const on: number[] = [];
for (let round = 0; round < ROUNDS; round++) {
  off.push(stream(0).nsPerFrame);
  on.push(stream(60_000).nsPerFrame);
}

gc();
const before = process.memoryUsage().heapUsed;
const kept = stream(60_000, true).resumes;
gc();
const heapPerFrame = (process.memoryUsage().heapUsed - before) / FRAMES;
const counted = frameBytes({ t: 'tok', id: 'r', text: pieces[0]! });

console.log(`${FRAMES} tok frames of ${TEXT_CHARS} characters, median of ${ROUNDS} rounds`);
console.log(`  send, resuming off:  ${median(off).toFixed(0)} ns/frame`);
console.log(`  send, frames kept:   ${median(on).toFixed(0)} ns/frame (+${(median(on) - median(off)).toFixed(0)} ns; RESUME_CONNECTION_BYTES ${loadConfig({}).resumeConnectionBytes}: the oldest trimmed)`);
console.log(`  heap per kept frame: ${heapPerFrame.toFixed(0)} B (counted as ${counted} B; store says ${kept.bytes / FRAMES} B)`);
