import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { unpack } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { FEED_PATH, type EndFrame, type FeedFrame, type FeedHistory, type FeedSnapshot } from '../../protocol/index.js';
import { FEED_SUBPROTOCOL } from '../../protocol/feed.js';
import type { Service } from '../../server/app.js';
import { parseExposition, sampleValue, type MetricFamily } from '../helpers/exposition.js';
import { createLogger } from '../../server/telemetry/logger.js';
import { RawSocket } from '../helpers/raw-socket.js';
import { startTestService, tempDir } from '../helpers/service.js';
import { waitFor, within } from '../helpers/wait.js';

const ADMIN = 'observability-admin-token-5f2c';
const PROMPT = 'The Queen of Hearts she made some tarts';
let service: Service;
let logDir: string;

beforeAll(async () => {
  logDir = tempDir('observability-logs');
  // Files only: stdout stays quiet in the test output.
  service = await startTestService({ parallelSequences: 2, adminToken: ADMIN, logLevel: 'info', logToFiles: true, logDir }, createLogger('info', { stdout: false }));
});

afterAll(async () => {
  await service?.shutdown(0);
});

async function scrape(): Promise<Map<string, MetricFamily>> {
  const response = await fetch(`${service.httpUrl}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } });
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseExposition(await response.text());
}

function feedSocket(options: { protocols?: string[]; headers?: Record<string, string> }): { socket: WebSocket; frames: FeedFrame[]; opened: Promise<void>; next(): Promise<FeedFrame> } {
  const socket = new WebSocket(`ws://127.0.0.1:${service.port}${FEED_PATH}`, options.protocols ?? [], { headers: options.headers ?? {} });
  const frames: FeedFrame[] = [];
  const waiters: (() => void)[] = [];
  let read = 0;
  socket.on('message', (data: Buffer) => {
    frames.push(unpack(data) as FeedFrame);
    for (const wake of waiters.splice(0)) wake();
  });
  const opened = new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('unexpected-response', (_request, response) => reject(new Error(`upgrade refused: ${response.statusCode}`)));
    socket.once('error', reject);
  });
  const next = async (): Promise<FeedFrame> => {
    while (read >= frames.length) await new Promise<void>((resolve) => waiters.push(resolve));
    return frames[read++]!;
  };
  return { socket, frames, opened, next };
}

describe('metrics', () => {
  it('count a completed, a cancelled, an invalid and a refused request by the right amounts', async () => {
    const before = await scrape();
    const socket = await RawSocket.open(service.streamUrl);
    socket.send({ t: 'gen', id: 'done', prompt: PROMPT, maxTokens: 16, temperature: 0 });
    const done = (await socket.request('done')).at(-1) as EndFrame;
    expect(done.reason).toBe('length');
    socket.send({ t: 'gen', id: 'gone', prompt: PROMPT, maxTokens: 2000, temperature: 0.8, seed: 4 });
    await socket.next((frame) => frame.t === 'tok' && frame.id === 'gone');
    socket.send({ t: 'cancel', id: 'gone' });
    const cancelled = (await socket.request('gone')).at(-1) as EndFrame;
    expect(cancelled.reason).toBe('cancelled');
    socket.send({ t: 'gen', id: 'bad', prompt: 42 });
    expect((await socket.request('bad')).at(-1)).toMatchObject({ t: 'err', code: 'invalid_params' });
    socket.send({ t: 'gen', id: 'where', prompt: PROMPT, model: 'no-such-model' });
    expect((await socket.request('where')).at(-1)).toMatchObject({ t: 'err', code: 'model_not_found' });
    socket.close();
    await socket.closed;
    // The server counts the close when its side of the socket closes (no event reaches the test).
    await waitFor(() => service.sessions.size === 0, 5000, 'the server to see the close');

    const after = await scrape();
    const delta = (name: string, labels: Record<string, string> = {}): number => (sampleValue(after, name, labels) ?? 0) - (sampleValue(before, name, labels) ?? 0);
    expect(delta('llm_requests_total', { model: 'demo', outcome: 'length' })).toBe(1);
    expect(delta('llm_requests_total', { model: 'demo', outcome: 'cancelled' })).toBe(1);
    expect(delta('llm_requests_total', { model: '', outcome: 'invalid_params' })).toBe(1);
    expect(delta('llm_requests_total', { model: '_unknown', outcome: 'model_not_found' })).toBe(1);
    const generated = done.usage.completionTokens + cancelled.usage.completionTokens;
    expect(delta('llm_generation_tokens_total', { model: 'demo' })).toBe(generated);
    expect(delta('llm_prompt_tokens_total', { model: 'demo' })).toBe(done.usage.promptTokens + cancelled.usage.promptTokens);
    expect(delta('llm_time_to_first_token_seconds_count', { model: 'demo' })).toBe(2);
    expect(delta('llm_inter_token_latency_seconds_count', { model: 'demo' })).toBe(generated - 2);
    expect(delta('llm_request_queue_seconds_count', { model: 'demo' })).toBe(2);
    expect(delta('llm_request_duration_seconds_count', { model: 'demo' })).toBe(2);
    expect(delta('llm_connections_opened_total')).toBe(1);
    expect(delta('llm_connections_closed_total', { cause: 'client' })).toBe(1);
    expect(sampleValue(after, 'llm_connections_open')).toBe(0);
    expect(delta('llm_ws_frames_received_total')).toBe(5);
    expect(delta('llm_ws_frames_sent_total')).toBeGreaterThan(generated / 4);
    expect(delta('llm_ws_sent_bytes_total')).toBeGreaterThan(delta('llm_ws_frames_sent_total') * 5);
    expect(delta('llm_errors_total', { code: 'invalid_params' })).toBe(1);
    expect(sampleValue(after, 'llm_slots_total', { model: 'demo' })).toBe(2);
    expect(sampleValue(after, 'llm_model_loaded', { model: 'demo' })).toBe(1);
    expect(sampleValue(after, 'llm_model_weights_bytes', { model: 'demo' })).toBeGreaterThan(1_000_000);
    expect(sampleValue(after, 'llm_model_context_bytes', { model: 'demo' })).toBeGreaterThan(0);
    expect(sampleValue(after, 'llm_system_memory_total_bytes')).toBeGreaterThan(0);
    expect(sampleValue(after, 'process_resident_memory_bytes')).toBeGreaterThan(0);
  });

  it('/metrics needs the admin token unless METRICS_PUBLIC', async () => {
    const anonymous = await fetch(`${service.httpUrl}/metrics`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toMatch(/^Bearer/);
    const wrong = await fetch(`${service.httpUrl}/metrics`, { headers: { authorization: 'Bearer nope' } });
    expect(wrong.status).toBe(401);
  });
});

describe('live feed', () => {
  it('refuses a client without the admin token with 401 at the upgrade', async () => {
    await expect(feedSocket({ protocols: [FEED_SUBPROTOCOL] }).opened).rejects.toThrow(/401/);
    await expect(feedSocket({ protocols: [FEED_SUBPROTOCOL, 'bearer.wrong'] }).opened).rejects.toThrow(/401/);
    await expect(feedSocket({ headers: { authorization: 'Bearer wrong' } }).opened).rejects.toThrow(/401/);
  });

  it('sends history first, then a snapshot about every second with plausible values', async () => {
    const feed = feedSocket({ protocols: [FEED_SUBPROTOCOL, `bearer.${ADMIN}`] });
    await feed.opened;
    // Only the real subprotocol is echoed, never the credential.
    expect(feed.socket.protocol).toBe(FEED_SUBPROTOCOL);
    const history = (await feed.next()) as FeedHistory;
    expect(history.t).toBe('history');

    // Generate while the snapshots come, so the rates and percentiles have something to show: at
    // least three snapshots, and two of them after the request ended (the first of those may have
    // been taken just before its end reached this side), so the last one counts all of it.
    const socket = await RawSocket.open(service.streamUrl);
    socket.send({ t: 'gen', id: 'busy', prompt: PROMPT, maxTokens: 400, temperature: 0.8, seed: 2 });
    let ended = false;
    const busy = socket.request('busy').then(() => void (ended = true));
    const snapshots: FeedSnapshot[] = [];
    let afterEnd = 0;
    while (snapshots.length < 3 || afterEnd < 2) {
      const frame = await within(feed.next(), 10_000, 'feed snapshot');
      expect(frame.t).toBe('snapshot');
      snapshots.push(frame as FeedSnapshot);
      if (ended) afterEnd++;
    }
    await busy;
    const last = snapshots.at(-1)!;
    // The open stream connection, counted while it is open (the feed's own socket is not one).
    expect(last.connections).toBe(1);
    socket.close();
    // The 1 Hz loop is the behaviour under test, so this is a wall-clock check. A snapshot's ts is
    // taken after the loop's async resource sample, whose duration varies under load, so single gaps
    // wander around the second; the bounds allow that on a loaded 2-core machine, and still tell a
    // loop that ticks far too often or too seldom.
    const gaps = snapshots.slice(1).map((snapshot, index) => snapshot.ts - snapshots[index]!.ts);
    for (const gap of gaps) {
      expect(gap).toBeGreaterThan(250);
      expect(gap).toBeLessThan(3000);
    }
    expect(last.tokensPerSecond.s60).toBeGreaterThan(0);
    expect(last.interTokenMs.p50).toBeGreaterThan(0);
    expect(last.interTokenMs.p99!).toBeGreaterThanOrEqual(last.interTokenMs.p50!);
    expect(last.ttftMs.p50).toBeGreaterThan(0);
    expect(last.slots.total).toBe(2);
    expect(last.requests.completedTotal).toBeGreaterThanOrEqual(1);
    expect(last.models).toContainEqual(expect.objectContaining({ name: 'demo', state: 'loaded' }));
    expect(last.resources.rssBytes).toBeGreaterThan(10_000_000);
    expect(last.resources.memTotalBytes).toBeGreaterThan(last.resources.memUsedBytes);
    expect(last.resources.cpuLoad).toBeGreaterThanOrEqual(0);
    expect(last.resources.cpuLoad).toBeLessThanOrEqual(1);
    expect(last.resources.models).toContainEqual(expect.objectContaining({ name: 'demo' }));
    expect(last.errors.some((error) => error.code === 'invalid_params')).toBe(true);

    // A late joiner (header auth, no subprotocol) starts with the snapshots seen so far.
    const late = feedSocket({ headers: { authorization: `Bearer ${ADMIN}` } });
    await late.opened;
    const backlog = (await late.next()) as FeedHistory;
    expect(backlog.t).toBe('history');
    expect(backlog.snapshots.length).toBeGreaterThanOrEqual(history.snapshots.length + 3);
    expect(backlog.snapshots.map((snapshot) => snapshot.ts)).toEqual([...backlog.snapshots.map((snapshot) => snapshot.ts)].sort((a, b) => a - b));
    expect(backlog.snapshots.map((snapshot) => snapshot.ts)).toEqual(expect.arrayContaining(snapshots.map((snapshot) => snapshot.ts)));
    expect((await late.next()).t).toBe('snapshot');
    feed.socket.close();
    late.socket.close();
  });
});

describe('health', () => {
  it('/healthz is alive and /readyz ready with small JSON bodies', async () => {
    expect(await (await fetch(`${service.httpUrl}/healthz`)).json()).toEqual({ status: 'ok' });
    expect(await (await fetch(`${service.httpUrl}/readyz`)).json()).toEqual({ status: 'ready' });
  });
});

describe('logs', () => {
  it('write app, access and error logs without prompt text or the admin token', async () => {
    await service.shutdown(0);
    const read = (name: string): Record<string, unknown>[] =>
      readFileSync(path.join(logDir, name), 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(readdirSync(logDir).sort()).toEqual(['access.log', 'app.log', 'error.log']);

    const app = read('app.log');
    const configuration = app.find((line) => line.msg === 'configuration') as { config: Record<string, unknown> } | undefined;
    expect(configuration?.config.ADMIN_TOKEN).toBe('set');
    const messages = app.map((line) => String(line.msg));
    expect(messages).toEqual(expect.arrayContaining(['engine ready', 'service stopped']));
    expect(messages.some((message) => /model .*(loaded|ready)/.test(message))).toBe(true);

    const access = read('access.log');
    const requests = access.filter((line) => line.event === 'request');
    expect(requests.find((line) => line.request === 'done')).toMatchObject({ model: 'demo', outcome: 'length', generatedTokens: 16, key: 'anonymous' });
    expect(requests.find((line) => line.request === 'done')).toEqual(
      expect.objectContaining({ session: expect.any(String), promptTokens: expect.any(Number), ttftMs: expect.any(Number), durationMs: expect.any(Number) }),
    );
    expect(requests.find((line) => line.request === 'gone')).toMatchObject({ outcome: 'cancelled' });
    // Refused requests carry their id once the gateway passes it (Telemetry.requestRefused's 4th argument).
    expect(requests.find((line) => line.outcome === 'invalid_params')).toMatchObject({ session: expect.any(String), key: 'anonymous' });
    expect(requests.find((line) => line.outcome === 'model_not_found')).toMatchObject({ model: 'no-such-model' });
    expect(access.filter((line) => line.event === 'connection_open').length).toBeGreaterThanOrEqual(2);
    expect(access.filter((line) => line.event === 'connection_close').length).toBeGreaterThanOrEqual(2);
    // One line per request and connection event: never one per token.
    expect(access.length).toBeLessThan(20);

    for (const line of read('error.log')) expect(line.level).toBeGreaterThanOrEqual(40);
    const everything = readdirSync(logDir).map((name) => readFileSync(path.join(logDir, name), 'utf8')).join('\n');
    expect(everything).not.toContain(PROMPT);
    expect(everything).not.toContain('Queen of Hearts');
    expect(everything).not.toContain(ADMIN);
  });
});
