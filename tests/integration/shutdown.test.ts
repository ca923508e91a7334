import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { connect, type EndFrame, type ServerFrame, type WebSocketConstructor } from '../../protocol/index.js';
import { ensureDemoModel } from '../../server/model-maker/demo/demo-model.js';
import { startServerProcess, type ServerProcess } from '../../scripts/bench/server-process.js';
import { requestFrameViolations } from '../helpers/attack-socket.js';
import { RawSocket } from '../helpers/raw-socket.js';
import { SHARED_MODELS_DIR } from '../helpers/service.js';

/*
 * Graceful shutdown of the real server process (`server/main.ts`): SIGTERM with streams running
 * ends every stream with exactly one terminal frame, refuses new work, closes every socket with
 * 1001 and exits 0.
 */

const PROMPT = 'Alice was beginning to get very tired of sitting by her sister on the bank';
/** A fixed, quiet environment: nothing from the machine's own configuration leaks in. */
const TEST_ENV = {
  THREADS: '1',
  GPU: 'false',
  LOG_TO_FILES: 'false',
  LOG_ACCESS: 'false',
  ADMIN_TOKEN: 'x',
  KEYS_FILE: '',
  WATCH_MODELS: 'false',
  MODELS_DIR: SHARED_MODELS_DIR,
  CONTEXT_SIZE: '4096',
  PARALLEL_SEQUENCES: '2',
};
/**
 * A token rate per connection (after a burst of 10): a stream of n tokens lasts about n / 100 s
 * whatever the machine's speed, so whether it is still running when the signal comes, or ends
 * within the grace period, does not depend on how fast the engine is. (A connection whose stream
 * drained its bucket is refused further gens until it refills; none here sends one.)
 */
const THROTTLED = { TOKEN_LIMIT_TPS: '100', TOKEN_LIMIT_BURST: '10' };
let servers: ServerProcess[] = [];
let sockets: RawSocket[] = [];

beforeAll(async () => {
  await ensureDemoModel(SHARED_MODELS_DIR);
});

afterEach(() => {
  for (const socket of sockets) socket.socket.terminate();
  sockets = [];
  for (const server of servers) server.kill();
  servers = [];
});

async function start(env: Record<string, string>): Promise<ServerProcess> {
  const server = await startServerProcess({ ...TEST_ENV, ...THROTTLED, ...env }, { timeoutMs: 60_000, stderr: 'capture' });
  servers.push(server);
  return server;
}

async function open(server: ServerProcess): Promise<RawSocket> {
  const socket = await RawSocket.open(server.streamUrl);
  sockets.push(socket);
  return socket;
}

function terminals(frames: readonly ServerFrame[], id: string): ServerFrame[] {
  return frames.filter((frame) => (frame.t === 'end' || frame.t === 'err') && 'id' in frame && frame.id === id);
}

/** Sends a gen after the server logged that it is shutting down: err shutting_down, or the close. */
async function lateGen(socket: RawSocket, id: string): Promise<ServerFrame | { closed: number }> {
  socket.send({ t: 'gen', id, prompt: PROMPT, maxTokens: 5 });
  return Promise.race([
    socket.next((frame) => 'id' in frame && frame.id === id, 10_000),
    socket.closed.then(async (close) => {
      // The answer may have arrived just before the close.
      const answer = socket.frames.find((frame) => 'id' in frame && frame.id === id);
      return answer ?? { closed: close.code };
    }),
  ]);
}

describe('SIGTERM', () => {
  it('ends running streams with one terminal frame, refuses new gens, closes every socket with 1001 and exits 0', async () => {
    const server = await start({ SHUTDOWN_GRACE_MS: '300' });
    const [a, b, c, idle] = [await open(server), await open(server), await open(server), await open(server)];
    // 3000 tokens take 30 s at the throttled rate: both still run when the grace period ends.
    a.send({ t: 'gen', id: 'a', prompt: PROMPT, maxTokens: 3000 });
    b.send({ t: 'gen', id: 'b', prompt: PROMPT, maxTokens: 3000 });
    await a.next((frame) => frame.t === 'tok' && frame.id === 'a');
    await b.next((frame) => frame.t === 'tok' && frame.id === 'b');
    // Both slots are busy: a third stream waits in the queue when the signal comes.
    c.send({ t: 'gen', id: 'queued', prompt: PROMPT, maxTokens: 3000 });
    await c.next((frame) => frame.t === 'queued' && frame.id === 'queued');

    const signalledAt = performance.now();
    server.child.kill('SIGTERM');
    await server.waitForLog('shutting down', 5000);
    const late = await lateGen(idle, 'late');
    console.info(`late gen after SIGTERM: ${JSON.stringify(late)}`);
    if ('closed' in late) expect(late.closed).toBe(1001);
    else expect(late).toMatchObject({ t: 'err', id: 'late', code: 'shutting_down' });
    // No new connection gets in: refused with 503 while the streams drain, or the port is closed.
    await expect(RawSocket.open(server.streamUrl)).rejects.toThrow(/upgrade refused: 503|ECONNREFUSED/);

    const closes = await Promise.all([a.closed, b.closed, c.closed, idle.closed]);
    const exit = await server.exited;
    const exitAfterMs = exit.at - signalledAt;
    console.info(`shutdown: exit ${exit.code} ${Math.round(exitAfterMs)} ms after SIGTERM; a ${JSON.stringify(a.frames.at(-1))}`);

    // The grace period (300 ms) ended long before the streams could: they were cut, each with one
    // terminal frame and nothing after it.
    for (const [socket, id] of [[a, 'a'], [b, 'b']] as const) {
      const ends = terminals(socket.frames, id);
      expect(ends).toHaveLength(1);
      expect(ends[0]).toMatchObject({ t: 'end', id, reason: 'shutdown' });
      expect((ends[0] as EndFrame).usage.completionTokens).toBeLessThan(3000);
      expect(requestFrameViolations(socket.frames, new Map([[id, 1]]))).toEqual([]);
    }
    // The queued stream ends too, with one terminal frame and without ever starting.
    const queued = terminals(c.frames, 'queued');
    expect(queued).toHaveLength(1);
    expect(queued[0]).toMatchObject({ t: 'end', id: 'queued', reason: 'shutdown', usage: { completionTokens: 0 } });
    expect(c.frames.some((frame) => frame.t === 'start' && frame.id === 'queued')).toBe(false);
    expect(requestFrameViolations(c.frames, new Map([['queued', 1]]))).toEqual([]);
    expect(closes.map((close) => close.code)).toEqual([1001, 1001, 1001, 1001]);
    expect(exit).toMatchObject({ code: 0, signal: null });
    // Timing is the behaviour here: the server stops at the end of its grace period instead of
    // waiting for the streams, which had about 30 s to go. It takes the 300 ms of grace plus about
    // 50 ms to end the streams and free the model (measured: 350 ms in all); the bound is over 5
    // times that, for a loaded 2-core machine, and still far below the 30 s of a server that waited.
    expect(exitAfterMs).toBeLessThan(2000);
    expect(server.logs.some((record) => record.msg === 'stopped')).toBe(true);
  });

  it('lets streams that finish within the grace period end with length, then closes with 1001 and exits 0', async () => {
    // 300 tokens take about 3 s at the throttled rate: still running when the late gen comes, and
    // done long before the grace period (30 s) ends.
    const server = await start({ SHUTDOWN_GRACE_MS: '30000' });
    const [a, b, idle] = [await open(server), await open(server), await open(server)];
    a.send({ t: 'gen', id: 'a', prompt: PROMPT, maxTokens: 300, temperature: 0 });
    b.send({ t: 'gen', id: 'b', prompt: PROMPT, maxTokens: 300, temperature: 0 });
    await a.next((frame) => frame.t === 'tok' && frame.id === 'a');
    await b.next((frame) => frame.t === 'tok' && frame.id === 'b');

    server.child.kill('SIGTERM');
    await server.waitForLog('shutting down', 5000);
    // The sockets stay open while the streams finish, so the refusal is certain here.
    idle.send({ t: 'gen', id: 'late', prompt: PROMPT, maxTokens: 5 });
    const late = await idle.next((frame) => 'id' in frame && frame.id === 'late');
    expect(late).toMatchObject({ t: 'err', id: 'late', code: 'shutting_down' });
    expect(terminals(idle.frames, 'late')).toHaveLength(1);

    const closes = await Promise.all([a.closed, b.closed, idle.closed]);
    const exit = await server.exited;
    const exitAfterMs = exit.at - Math.max(a.arrivalOf('end', 'a'), b.arrivalOf('end', 'b'));
    console.info(`shutdown within grace: exit ${exit.code} ${Math.round(exitAfterMs)} ms after the last stream ended`);
    for (const [socket, id] of [[a, 'a'], [b, 'b']] as const) {
      const ends = terminals(socket.frames, id);
      expect(ends).toHaveLength(1);
      expect(ends[0]).toMatchObject({ t: 'end', id, reason: 'length', usage: { completionTokens: 300 } });
      expect(requestFrameViolations(socket.frames, new Map([[id, 1]]))).toEqual([]);
    }
    expect(closes.map((close) => close.code)).toEqual([1001, 1001, 1001]);
    expect(exit).toMatchObject({ code: 0, signal: null });
    // Timing is the behaviour here: the server does not sit out the rest of its grace period (about
    // 27 s) once the streams are done. Closing the sessions and freeing the model takes about 50 ms
    // (measured); the bound leaves far more than 5 times that for a loaded 2-core machine, and is
    // still far below the rest of the grace period.
    expect(exitAfterMs).toBeLessThan(2000);
  });

  it('refuses a gen that reuses a running id during the grace period without ending the running stream', async () => {
    // 400 tokens take about 4 s at the throttled rate: `a` still runs when the second gen comes,
    // and ends well within the grace period.
    const server = await start({ SHUTDOWN_GRACE_MS: '30000' });
    const a = await open(server);
    a.send({ t: 'gen', id: 'a', prompt: PROMPT, maxTokens: 400, temperature: 0 });
    await a.next((frame) => frame.t === 'tok' && frame.id === 'a');
    server.child.kill('SIGTERM');
    await server.waitForLog('shutting down', 5000);
    const before = a.frames.length;
    a.send({ t: 'gen', id: 'a', prompt: PROMPT, maxTokens: 5 });
    await a.closed;
    expect(await server.exited).toMatchObject({ code: 0 });
    const refusal = a.frames.slice(before).find((frame) => frame.t === 'err');
    const ends = terminals(a.frames, 'a');
    console.info(`reused id during shutdown: refusal ${JSON.stringify(refusal)}; terminals ${JSON.stringify(ends.map((frame) => frame.t))}`);
    // Regression: this used to be err{id:"a", code:"shutting_down"} (the shutdown check ran before the duplicate
    // check), a second terminal frame for the running stream.
    expect(refusal).toMatchObject({ t: 'err', code: 'duplicate_id', details: { id: 'a' } });
    expect(refusal).not.toHaveProperty('id');
    expect(ends).toHaveLength(1);
    expect(ends[0]).toMatchObject({ t: 'end', reason: 'length', usage: { completionTokens: 400 } });
  });

  it('drains as a load balancer sees it: health 503 and upgrades 503 while streams finish, then the port closes', async () => {
    // 300 tokens take about 3 s at the throttled rate: the stream runs on through the checks below.
    const server = await start({ SHUTDOWN_GRACE_MS: '30000' });
    const a = await open(server);
    a.send({ t: 'gen', id: 'a', prompt: PROMPT, maxTokens: 300, temperature: 0 });
    await a.next((frame) => frame.t === 'tok' && frame.id === 'a');
    server.child.kill('SIGTERM');
    await server.waitForLog('shutting down', 5000);

    const health = await fetch(`${server.httpUrl}/healthz`);
    expect(health.status).toBe(503);
    expect(await health.json()).toEqual({ status: 'shutting_down' });
    const ready = await fetch(`${server.httpUrl}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({ status: 'shutting_down' });
    const upgrade = await connect(server.streamUrl, { WebSocket: WebSocket as unknown as WebSocketConstructor }).catch((error: unknown) => error);
    expect(upgrade).toMatchObject({ code: 'shutting_down', status: 503, retryAfterMs: 5000 });

    // Probe until the port closes: every answer before that is 503, and it closes only after the stream ended.
    const answers: number[] = [];
    let portClosedAt = -1;
    while (portClosedAt < 0) {
      const status = await fetch(`${server.httpUrl}/healthz`).then((response) => response.status, () => undefined);
      if (status === undefined) portClosedAt = performance.now();
      else answers.push(status);
    }
    const end = terminals(a.frames, 'a');
    expect(end).toHaveLength(1);
    expect(end[0]).toMatchObject({ t: 'end', reason: 'length', usage: { completionTokens: 300 } });
    expect(a.arrivalOf('end', 'a')).toBeLessThan(portClosedAt);
    expect(new Set(answers)).toEqual(new Set([503]));
    expect((await a.closed).code).toBe(1001);
    expect(await server.exited).toMatchObject({ code: 0, signal: null });
  });
});
