import type { LiveStream, PeerServer } from './peer-side.js';
import { quantile } from './stats.js';

/*
 * The measurements, each one run of one scenario on one server, timed from the client's side.
 * Prompts carry a tag of the scenario, round and stream at their start, the same on both sides,
 * so neither server reuses a cached prefix and both get prompts of the same length.
 */

const TEXT = 'Alice was beginning to get very tired of sitting by her sister on the bank';

/** A short prompt, unique to the scenario (`kind`), round and stream. */
export function shortPrompt(kind: string, round: number, lane = 0): string {
  return `${tag(kind, round, lane)} ${TEXT}`;
}

/** The long prompt behind a tag unique to the scenario, round and stream. */
export function longPrompt(text: string, kind: string, round: number, lane = 0): string {
  return `${tag(kind, round, lane)} ${text}`;
}

// Fixed width: every round's prompt has the same length in tokens.
const tag = (kind: string, round: number, lane: number): string => `${kind}${round < 0 ? 'w' : 'r'}${String(Math.abs(round)).padStart(3, '0')}.${String(lane).padStart(2, '0')}`;
const seedOf = (round: number, lane: number): number => 1000 + (round + 100) * 64 + lane;

/** Gaps between consecutive pieces of one stream. */
function gaps(times: readonly number[]): number[] {
  return times.slice(1).map((at, index) => at - times[index]!);
}

/** Generated tokens per second between the first and the last piece. */
function decodeRate(stream: LiveStream, tokens: number): number {
  const times = stream.pieceTimes;
  if (tokens < 2 || times.length < 2) return Number.NaN;
  return ((tokens - 1) * 1000) / (times.at(-1)! - times[0]!);
}

/** Polls `ready` every few ms until it holds (the pieces to wait for arrive tens of ms apart). */
async function waitUntil(ready: () => boolean): Promise<void> {
  while (!ready()) await new Promise((resolve) => setTimeout(resolve, 3));
}

export interface DecodeRun {
  tokensPerSecond: number;
  /** Time to first token of the short prompt on an idle server. */
  ttftMs: number;
  tokens: number;
  reason: string;
}

/** One stream alone: decode speed, and the first token of a short prompt. */
export async function singleStream(server: PeerServer, round: number, tokens: number): Promise<DecodeRun> {
  await server.prepare(1);
  const stream = server.start({ prompt: shortPrompt('s', round), maxTokens: tokens, seed: seedOf(round, 0) }, 0);
  const outcome = await stream.done;
  return { tokensPerSecond: decodeRate(stream, outcome.tokens), ttftMs: (await stream.firstPiece) - stream.sentAt, tokens: outcome.tokens, reason: outcome.reason };
}

export interface ConcurrentRun {
  /** All streams' tokens over the time from the first request sent to the last piece. */
  aggregateTokensPerSecond: number;
  gapP50Ms: number;
  gapP95Ms: number;
  tokens: number;
  /** Streams that ended before maxTokens (the service cannot ignore end-of-generation tokens). */
  shortStreams: number;
}

/** `count` streams started at once, one client each. */
export async function concurrentStreams(server: PeerServer, round: number, count: number, tokens: number): Promise<ConcurrentRun> {
  await server.prepare(count);
  const streams = Array.from({ length: count }, (_, lane) => server.start({ prompt: shortPrompt(`c${count}`, round, lane), maxTokens: tokens, seed: seedOf(round, lane) }, lane));
  const outcomes = await Promise.all(streams.map((stream) => stream.done));
  const total = outcomes.reduce((sum, outcome) => sum + outcome.tokens, 0);
  const first = Math.min(...streams.map((stream) => stream.sentAt));
  const last = Math.max(...streams.map((stream) => stream.pieceTimes.at(-1) ?? first));
  const allGaps = streams.flatMap((stream) => gaps(stream.pieceTimes));
  return {
    aggregateTokensPerSecond: (total * 1000) / (last - first),
    gapP50Ms: quantile(allGaps, 0.5),
    gapP95Ms: quantile(allGaps, 0.95),
    tokens: total,
    shortStreams: outcomes.filter((outcome) => outcome.tokens < tokens).length,
  };
}

export interface TtftRun {
  ttftMs: number;
  promptTokens: number | undefined;
}

/** Time to first token of the long prompt on an idle server. */
export async function longPromptTtft(server: PeerServer, round: number, text: string): Promise<TtftRun> {
  await server.prepare(1);
  const stream = server.start({ prompt: longPrompt(text, 't', round), maxTokens: 2, seed: seedOf(round, 0) }, 0);
  const outcome = await stream.done;
  return { ttftMs: (await stream.firstPiece) - stream.sentAt, promptTokens: outcome.promptTokens };
}

export interface PrefillRun {
  /** Gaps of the running streams before the long prompt was sent. */
  calmGapP50Ms: number;
  /** Gaps of the running streams that overlap the long prompt's prefill (sent → its first piece). */
  prefillGapP95Ms: number;
  prefillGapMaxMs: number;
  /** The long prompt's time to first token while the others ran. */
  prefillMs: number;
}

const CALM_PIECES = 8;
const PIECES_AFTER = 3;

/**
 * `running` streams generate; once each has sent CALM_PIECES pieces the long prompt is sent on
 * another client; once its first piece came and each running stream sent PIECES_AFTER more, the
 * running streams are cancelled. Needs `running + 1` slots.
 */
export async function prefillInterference(server: PeerServer, round: number, running: number, text: string, maxTokens: number): Promise<PrefillRun> {
  await server.prepare(running + 1);
  const streams = Array.from({ length: running }, (_, lane) => server.start({ prompt: shortPrompt('p', round, lane), maxTokens, seed: seedOf(round, lane) }, lane));
  const ended = new Set<LiveStream>();
  let failure: unknown;
  for (const stream of streams) {
    void stream.done.then(
      () => ended.add(stream),
      (error: unknown) => {
        failure ??= error;
        ended.add(stream);
      },
    );
  }
  await waitUntil(() => streams.every((stream) => ended.has(stream) || stream.pieceTimes.length >= CALM_PIECES));
  if (failure) throw failure;
  const long = server.start({ prompt: longPrompt(text, 'p', round, running), maxTokens: 2, seed: seedOf(round, running) }, running);
  const prefillStart = long.sentAt;
  const prefillEnd = await long.firstPiece;
  const countAt = streams.map((stream) => stream.pieceTimes.length);
  await waitUntil(() => streams.every((stream, index) => ended.has(stream) || stream.pieceTimes.length >= countAt[index]! + PIECES_AFTER));
  for (const stream of streams) if (!ended.has(stream)) stream.cancel();
  await Promise.all([long.done, ...streams.map((stream) => stream.done)]);
  const calm: number[] = [];
  const during: number[] = [];
  for (const stream of streams) {
    const times = stream.pieceTimes;
    for (let index = 1; index < times.length; index++) {
      const [from, to] = [times[index - 1]!, times[index]!];
      if (to <= prefillStart) calm.push(to - from);
      else if (from < prefillEnd) during.push(to - from);
    }
  }
  if (during.length === 0) throw new Error('no running stream sent a piece during or right after the prefill: raise --tokens');
  return { calmGapP50Ms: quantile(calm, 0.5), prefillGapP95Ms: quantile(during, 0.95), prefillGapMaxMs: Math.max(...during), prefillMs: prefillEnd - prefillStart };
}

export interface CancelRun {
  /** From the cancel of a running stream to the first piece of the request sent right after it. */
  cancelToNextMs: number;
}

/**
 * With one slot: a stream runs, is cancelled after 3 pieces, and the next request is sent at once.
 * A stream that ends by itself first (the service cannot ignore end-of-generation tokens) is
 * retried with other seeds.
 */
export async function cancelToNext(server: PeerServer, round: number, maxTokens: number): Promise<CancelRun> {
  await server.prepare(1);
  for (let attempt = 0; attempt < 5; attempt++) {
    const running = server.start({ prompt: shortPrompt('x', round), maxTokens, seed: seedOf(round, 2 + attempt) }, 0);
    let ended = false;
    void running.done.then(() => (ended = true), () => (ended = true));
    await waitUntil(() => ended || running.pieceTimes.length >= 3);
    if (ended) {
      await running.done; // a failure surfaces here
      continue;
    }
    const cancelledAt = running.cancel();
    const next = server.start({ prompt: shortPrompt('n', round), maxTokens: 2, seed: seedOf(round, 1) }, 0);
    const first = await next.firstPiece;
    await Promise.all([running.done, next.done]);
    return { cancelToNextMs: first - cancelledAt };
  }
  throw new Error('five streams in a row ended before their third piece: nothing to cancel');
}
