import { mkdir, readFile, rename, rm, writeFile, copyFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { EndFrame, ErrFrame, ModelInfo, ServerFrame } from '../../protocol/index.js';
import type { Service } from '../../server/app.js';
import type { Config } from '../../server/config/config.js';
import { MODEL_FILES, ensureModelFiles, placeModels } from '../helpers/model-files.js';
import { waitFor } from '../helpers/wait.js';
import { RawSocket } from '../helpers/raw-socket.js';
import { startTestService, tempDir, waitForIdle } from '../helpers/service.js';

const PROMPT = 'Alice was beginning to get very tired';
const ADMIN = 'pool-test-admin-token';
let services: Service[] = [];
let sockets: RawSocket[] = [];

beforeAll(async () => {
  await ensureModelFiles();
});

afterEach(async () => {
  for (const socket of sockets) socket.close();
  sockets = [];
  await Promise.all(services.map((service) => service.shutdown(0)));
  services = [];
});

async function start(files: Record<string, string>, overrides: Partial<Config> = {}): Promise<{ service: Service; dir: string }> {
  const dir = tempDir('pool');
  await placeModels(dir, files);
  const service = await startTestService({ modelsDir: dir, defaultModel: 'demo', adminToken: ADMIN, ...overrides });
  services.push(service);
  return { service, dir };
}

async function open(service: Service): Promise<RawSocket> {
  const socket = await RawSocket.open(service.streamUrl);
  sockets.push(socket);
  return socket;
}

/**
 * A per-connection token rate for tests that need a stream to be still running when they look:
 * a long stream then lasts a known wall-clock time, however fast the machine generates.
 */
const THROTTLED = (tokensPerSecond: number, burst = 50): Partial<Config> => ({ tokenLimitTps: tokensPerSecond, tokenLimitBurst: burst });
// A connection whose stream drained its token bucket is refused further gens (rate_limited) until it
// refills: the tests below send their gens together, or later ones on another connection.

const info = (service: Service, name: string): ModelInfo | undefined => service.pool.list().find((model) => model.name === name);
const terminal = (frames: ServerFrame[]): ServerFrame => frames.at(-1)!;

/** Places a file atomically, as operators should: write beside, then rename over. */
async function placeAtomically(source: string | Buffer, target: string): Promise<void> {
  const temporary = `${target}.partial`;
  if (typeof source === 'string') await copyFile(source, temporary);
  else await writeFile(temporary, source);
  await rename(temporary, target);
}

describe('queueing', () => {
  it('queues beyond the slots, reports positions and serves everyone', async () => {
    // b (1000 tokens at 500/s) runs for about 2 s: c waits there long enough to hear its new position.
    const { service } = await start({ demo: MODEL_FILES.demo }, { parallelSequences: 1, queueMax: 8, ...THROTTLED(500) });
    const socket = await open(service);
    socket.send({ t: 'gen', id: 'a', prompt: PROMPT, maxTokens: 300 });
    socket.send({ t: 'gen', id: 'b', prompt: PROMPT, maxTokens: 1000 });
    socket.send({ t: 'gen', id: 'c', prompt: PROMPT, maxTokens: 20 });
    const [a, b, c] = [await socket.request('a'), await socket.request('b'), await socket.request('c')];
    expect(b[0]).toEqual({ t: 'queued', id: 'b', position: 1, seq: 1 });
    expect(c[0]).toEqual({ t: 'queued', id: 'c', position: 2, seq: 1 });
    expect(c.some((frame) => frame.t === 'queued' && frame.position === 1)).toBe(true);
    for (const frames of [a, b, c]) expect(terminal(frames)).toMatchObject({ t: 'end', reason: 'length' });
    expect((terminal(b) as EndFrame).timings.queueMs).toBeGreaterThan(0);
  });

  it('is fair across connections: B\'s single request starts before A\'s third', async () => {
    const { service } = await start({ demo: MODEL_FILES.demo }, { parallelSequences: 1, queueMax: 20, maxStreamsPerConnection: 16, ...THROTTLED(200) });
    const a = await open(service);
    const b = await open(service);
    // a1 would run for 10 s at 200 tokens/s: it holds the one slot until it is cancelled below.
    a.send({ t: 'gen', id: 'a1', prompt: PROMPT, maxTokens: 2000 });
    for (let i = 2; i <= 10; i++) a.send({ t: 'gen', id: `a${i}`, prompt: PROMPT, maxTokens: 30 });
    await a.next((frame) => frame.t === 'queued' && frame.id === 'a10');
    b.send({ t: 'gen', id: 'b1', prompt: PROMPT, maxTokens: 30 });
    await b.next((frame) => frame.t === 'queued' && frame.id === 'b1');
    // B waits behind A's nine while a1 runs; then the slot goes round: a2, b1, a3, ...
    a.send({ t: 'cancel', id: 'a1' });
    await b.request('b1');
    await a.request('a3');
    expect(b.arrivalOf('start', 'b1')).toBeLessThan(a.arrivalOf('start', 'a3'));
    expect(a.arrivalOf('start', 'a2')).toBeLessThan(b.arrivalOf('start', 'b1'));
    expect(terminal(await a.request('a1'))).toMatchObject({ t: 'end', reason: 'cancelled' });
    for (let i = 2; i <= 10; i++) expect(terminal(await a.request(`a${i}`))).toMatchObject({ t: 'end', reason: 'length' });
  });

  it('answers overloaded with a retry hint when the queue is full, and cancels while queued', async () => {
    // `run` lasts 15 s at 100 tokens/s: it still holds the slot for everything below until cancelled.
    const { service } = await start({ demo: MODEL_FILES.demo }, { parallelSequences: 1, queueMax: 2, ...THROTTLED(100) });
    const socket = await open(service);
    // Sent together: `run` takes the slot, q1 and q2 fill the queue, `over` finds it full.
    socket.send({ t: 'gen', id: 'run', prompt: PROMPT, maxTokens: 1500 });
    socket.send({ t: 'gen', id: 'q1', prompt: PROMPT, maxTokens: 10 });
    socket.send({ t: 'gen', id: 'q2', prompt: PROMPT, maxTokens: 10 });
    socket.send({ t: 'gen', id: 'over', prompt: PROMPT, maxTokens: 10 });
    await socket.next((frame) => frame.t === 'start' && frame.id === 'run');
    const over = terminal(await socket.request('over')) as ErrFrame;
    expect(over).toMatchObject({ t: 'err', id: 'over', code: 'overloaded' });
    expect(over.retryAfterMs).toBeGreaterThan(0);
    socket.send({ t: 'cancel', id: 'q1' });
    expect(terminal(await socket.request('q1'))).toMatchObject({ t: 'end', reason: 'cancelled', usage: { completionTokens: 0 } });
    expect(service.pool.current()!.scheduler.queued).toBe(1);
    socket.send({ t: 'cancel', id: 'run' });
    expect(terminal(await socket.request('q2'))).toMatchObject({ t: 'end', reason: 'length' });
    await waitForIdle(service, 10_000);
  });

  it('ends a request that waited too long with queue_timeout', async () => {
    // `hold` lasts 20 s at 100 tokens/s: `late` certainly waits past its 150 ms.
    const { service } = await start({ demo: MODEL_FILES.demo }, { parallelSequences: 1, queueTimeoutMs: 150, ...THROTTLED(100) });
    const socket = await open(service);
    socket.send({ t: 'gen', id: 'hold', prompt: PROMPT, maxTokens: 2000 });
    socket.send({ t: 'gen', id: 'late', prompt: PROMPT, maxTokens: 5 });
    await socket.next((frame) => frame.t === 'start' && frame.id === 'hold');
    expect(terminal(await socket.request('late'))).toMatchObject({ t: 'err', code: 'queue_timeout' });
    socket.send({ t: 'cancel', id: 'hold' });
    await socket.request('hold');
    await waitForIdle(service, 10_000);
  });
});

describe('several models', () => {
  it('serves two models at once and lists both with their slots', async () => {
    // 800 tokens at 200/s on this connection: d still runs for seconds while tiny loads and starts.
    const { service } = await start({ demo: MODEL_FILES.demo, tiny: MODEL_FILES.tinyF16 }, { parallelSequences: 1, ...THROTTLED(200, 20) });
    const socket = await open(service);
    socket.send({ t: 'gen', id: 'd', prompt: PROMPT, maxTokens: 400 });
    socket.send({ t: 'gen', id: 't', model: 'tiny', prompt: PROMPT, maxTokens: 400 });
    await socket.next((frame) => frame.t === 'start' && frame.id === 't', 20_000);
    expect(socket.frames.filter((frame) => frame.t === 'end')).toHaveLength(0);
    expect(info(service, 'tiny')).toMatchObject({ state: 'loaded', slotsBusy: 1, slotsTotal: 1, architecture: 'llama' });
    expect(terminal(await socket.request('d'))).toMatchObject({ reason: 'length' });
    // The tiny model's random weights may well pick the end-of-text token.
    expect(['length', 'stop']).toContain((terminal(await socket.request('t')) as EndFrame).reason);
    socket.send({ t: 'models' });
    const listed = await socket.next((frame) => frame.t === 'models');
    expect(listed.t === 'models' && listed.models.map((model) => model.name).sort()).toEqual(['demo', 'tiny']);
  });

  it('evicts the least recently used idle model to fit the budget, and unloads after keep-alive', async () => {
    const files = { demo: MODEL_FILES.demo, first: MODEL_FILES.tinyF16, second: MODEL_FILES.tinyQ8 };
    const probe = await start(files);
    const bytes = (name: string): number => info(probe.service, name)!.memoryBytes!;
    const budget = bytes('demo') + Math.max(bytes('first'), bytes('second')) + 1024;
    expect(budget).toBeLessThan(bytes('demo') + bytes('first') + bytes('second'));
    await probe.service.shutdown(0);
    const { service } = await start(files, { memoryBudgetBytes: budget, keepAliveS: 1 });
    const socket = await open(service);
    socket.send({ t: 'gen', id: '1', model: 'first', prompt: PROMPT, maxTokens: 5 });
    await socket.request('1');
    expect(info(service, 'first')!.state).toBe('loaded');
    socket.send({ t: 'gen', id: '2', model: 'second', prompt: PROMPT, maxTokens: 5 });
    expect(terminal(await socket.request('2'))).toMatchObject({ t: 'end' });
    expect(info(service, 'second')!.state).toBe('loaded');
    expect(info(service, 'first')!.state).toBe('available');
    expect(info(service, 'demo')!.state).toBe('loaded');
    await waitFor(() => info(service, 'second')!.state === 'available', 5000, 'keep-alive unload');
    expect(info(service, 'demo')!.state).toBe('loaded');
  });

  it('refuses a model that cannot fit with the numbers and stays healthy', async () => {
    const probe = await start({ demo: MODEL_FILES.demo, big: MODEL_FILES.tinyF16 });
    const budget = info(probe.service, 'demo')!.memoryBytes! + Math.floor(info(probe.service, 'big')!.memoryBytes! / 2);
    await probe.service.shutdown(0);
    const { service } = await start({ demo: MODEL_FILES.demo, big: MODEL_FILES.tinyF16 }, { memoryBudgetBytes: budget });
    const socket = await open(service);
    socket.send({ t: 'gen', id: 'x', model: 'big', prompt: PROMPT, maxTokens: 5 });
    const refused = terminal(await socket.request('x')) as ErrFrame;
    expect(refused).toMatchObject({ code: 'insufficient_memory', details: { budgetBytes: budget } });
    expect(Number(refused.details!.requiredBytes)).toBeGreaterThan(0);
    socket.send({ t: 'gen', id: 'ok', prompt: PROMPT, maxTokens: 5 });
    expect(terminal(await socket.request('ok'))).toMatchObject({ t: 'end', reason: 'length' });
    expect((await fetch(`${service.httpUrl}/readyz`)).status).toBe(200);
  });
});

describe('hot reload', () => {
  it('picks up an added file and drops a removed one after its stream ends', async () => {
    // r lasts 3 s at 500 tokens/s: the file is removed while it streams.
    const { service, dir } = await start({ demo: MODEL_FILES.demo }, THROTTLED(500, 20));
    await placeAtomically(MODEL_FILES.demoOtherSeed, path.join(dir, 'added.gguf'));
    await waitFor(() => info(service, 'added')?.state === 'available', 5000, 'added model');
    const socket = await open(service);
    socket.send({ t: 'gen', id: 'r', model: 'added', prompt: PROMPT, maxTokens: 1500 });
    await socket.next((frame) => frame.t === 'tok' && frame.id === 'r', 20_000);
    await rm(path.join(dir, 'added.gguf'));
    await waitFor(() => !info(service, 'added'), 5000, 'model removed from the list');
    expect(terminal(await socket.request('r'))).toMatchObject({ t: 'end', reason: 'length', usage: { completionTokens: 1500 } });
    const other = await open(service);
    other.send({ t: 'gen', id: 'gone', model: 'added', prompt: PROMPT, maxTokens: 5 });
    expect(terminal(await other.request('gone'))).toMatchObject({ code: 'model_not_found' });
    await waitFor(() => service.pool.loadedModels().length === 1, 5000, 'removed model unloaded');
  });

  it('replaces a file under load with zero failed or truncated requests', async () => {
    const { service, dir } = await start({ demo: MODEL_FILES.demo, swap: MODEL_FILES.demo }, { parallelSequences: 2, maxStreamsPerConnection: 16 });
    const socket = await open(service);
    const ids: string[] = [];
    const send = (): void => {
      const id = `s${ids.length}`;
      ids.push(id);
      socket.send({ t: 'gen', id, model: 'swap', prompt: PROMPT, maxTokens: 300 });
    };
    for (let i = 0; i < 4; i++) send();
    await socket.next((frame) => frame.t === 'tok', 20_000);
    const before = service.pool.current('swap')!;
    await placeAtomically(MODEL_FILES.demoOtherSeed, path.join(dir, 'swap.gguf'));
    // Requests while the file changes under the old version, then more once the new one took over.
    for (let i = 0; i < 3; i++) send();
    const after = await waitFor(() => (service.pool.current('swap') !== before ? service.pool.current('swap') : undefined), 10_000, 'new version');
    for (let i = 0; i < 3; i++) send();
    for (const id of ids) expect(terminal(await socket.request(id, 60_000))).toMatchObject({ t: 'end', reason: 'length', usage: { completionTokens: 300 } });
    expect(after.fingerprint).not.toBe(before.fingerprint);
    await waitFor(() => service.pool.loadedModels().length === 2, 10_000, 'old version unloaded');
  });

  it('lists a corrupt or truncated file as failed and retries it when the file changes', async () => {
    const { service, dir } = await start({ demo: MODEL_FILES.demo });
    await placeAtomically(Buffer.from('this is not a model at all, just text'.repeat(10)), path.join(dir, 'broken.gguf'));
    const valid = await readFile(MODEL_FILES.tinyF16);
    await placeAtomically(valid.subarray(0, 4096), path.join(dir, 'cut.gguf'));
    await mkdir(path.join(dir, 'hf-llama'));
    await writeFile(path.join(dir, 'hf-llama', 'model.safetensors'), 'x');
    await waitFor(() => info(service, 'broken')?.state === 'failed' && info(service, 'cut')?.state === 'failed', 5000, 'failed models').catch((error: Error) => {
      throw new Error(`${error.message}: ${JSON.stringify(service.pool.list())}`);
    });
    expect(info(service, 'broken')!.reason).toMatch(/magic|GGUF/i);
    expect(info(service, 'cut')!.reason).toMatch(/truncated|impossible|exceed/i);
    await waitFor(() => info(service, 'hf-llama')?.state === 'unsupported', 5000, 'unsupported folder');
    expect(info(service, 'hf-llama')!.reason).toMatch(/convert/);
    const socket = await open(service);
    socket.send({ t: 'gen', id: 'b', model: 'broken', prompt: PROMPT, maxTokens: 5 });
    expect(terminal(await socket.request('b'))).toMatchObject({ code: 'model_unavailable' });
    await placeAtomically(MODEL_FILES.tinyF16, path.join(dir, 'broken.gguf'));
    await waitFor(() => info(service, 'broken')?.state === 'available', 5000, 'repaired model');
    socket.send({ t: 'gen', id: 'fixed', model: 'broken', prompt: PROMPT, maxTokens: 5 });
    expect(terminal(await socket.request('fixed', 20_000))).toMatchObject({ t: 'end', reason: 'length' });
  });
});

describe('leases', () => {
  it('return to baseline after a random mix of completions, cancels, errors and disconnects', async () => {
    const { service } = await start({ demo: MODEL_FILES.demo }, { parallelSequences: 2, queueMax: 100 });
    let seed = 12345;
    const random = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const clients = await Promise.all([0, 1, 2, 3].map(() => open(service)));
    const sentOn = new Map<RawSocket, string[]>(clients.map((socket) => [socket, []]));
    const framesFor = (socket: RawSocket, id: string): ServerFrame[] => socket.frames.filter((frame) => 'id' in frame && frame.id === id);
    const ended = (socket: RawSocket, id: string): boolean => framesFor(socket, id).some((frame) => frame.t === 'end' || frame.t === 'err');
    const cancels: Promise<void>[] = [];
    for (let i = 0; i < 40; i++) {
      const socket = clients[Math.floor(random() * clients.length)]!;
      const id = `m${i}`;
      sentOn.get(socket)!.push(id);
      const kind = random();
      if (kind < 0.4) socket.send({ t: 'gen', id, prompt: PROMPT, maxTokens: 1 + Math.floor(random() * 50) });
      else if (kind < 0.7) {
        socket.send({ t: 'gen', id, prompt: PROMPT, maxTokens: 1000 });
        // Cancelled at a random point of its life: at once, or once its first, second or third
        // frame (queued, start, tok) came; later than its end or its socket is no point.
        const afterFrames = Math.floor(random() * 4);
        cancels.push(
          socket
            .until(() => framesFor(socket, id).length >= afterFrames || ended(socket, id) || socket.isClosed, 30_000, `frame ${afterFrames} of ${id}`)
            .then(() => socket.send({ t: 'cancel', id })),
        );
      } else if (kind < 0.85) socket.send({ t: 'gen', id, prompt: PROMPT, maxTokens: 4000 });
      else socket.send({ t: 'gen', id, model: 'missing', prompt: PROMPT });
    }
    // Two clients leave mid-stream: once the server answered each of their requests with a first
    // frame (queued, start or err), their long ones are still queued or generating.
    for (const socket of [clients[3]!, clients[2]!]) {
      await socket.until(() => sentOn.get(socket)!.every((id) => framesFor(socket, id).length > 0), 30_000, 'a first frame for every request');
      socket.socket.terminate();
    }
    await Promise.all(cancels);
    await waitForIdle(service, 30_000);
    await waitFor(() => service.sessions.size === 2, 5000, 'only the two open sessions left');
    for (const socket of [clients[0]!, clients[1]!]) {
      for (const id of sentOn.get(socket)!) expect(ended(socket, id), `${id} ended`).toBe(true);
    }
  });
});

describe('admin API', () => {
  it('loads, unloads and reloads a model with the admin token, and refuses without it', async () => {
    const { service } = await start({ demo: MODEL_FILES.demo, extra: MODEL_FILES.tinyF16 });
    const call = (route: string, token?: string) =>
      fetch(`${service.httpUrl}${route}`, { method: 'POST', headers: token ? { authorization: `Bearer ${token}` } : {} });
    expect((await call('/api/models/extra/load')).status).toBe(401);
    expect((await call('/api/models/extra/load', 'wrong')).status).toBe(401);
    const loaded = await call('/api/models/extra/load', ADMIN);
    expect(loaded.status).toBe(200);
    expect(await loaded.json()).toMatchObject({ model: 'extra', action: 'load', outcome: 'loaded' });
    expect(info(service, 'extra')!.state).toBe('loaded');
    const first = service.pool.current('extra');
    expect(await (await call('/api/models/extra/reload', ADMIN)).json()).toMatchObject({ outcome: 'reloaded' });
    expect(service.pool.current('extra')).not.toBe(first);
    expect(await (await call('/api/models/extra/unload', ADMIN)).json()).toMatchObject({ outcome: 'unloaded' });
    expect(info(service, 'extra')!.state).toBe('available');
    expect((await call('/api/models/nope/load', ADMIN)).status).toBe(404);
    const models = (await (await fetch(`${service.httpUrl}/api/models`)).json()) as { models: ModelInfo[] };
    expect(models.models.find((model) => model.name === 'demo')).toMatchObject({ state: 'loaded', default: true, slotsTotal: 2 });
  });

  it('lists connections and closes one', async () => {
    const { service } = await start({ demo: MODEL_FILES.demo });
    const socket = await open(service);
    const listed = (await (await fetch(`${service.httpUrl}/api/connections`, { headers: { authorization: `Bearer ${ADMIN}` } })).json()) as {
      connections: { id: string; remoteAddress: string; inFlight: number }[];
    };
    expect(listed.connections).toHaveLength(1);
    const id = listed.connections[0]!.id;
    const closed = await fetch(`${service.httpUrl}/api/connections/${id}/close`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` } });
    expect(await closed.json()).toEqual({ closed: true });
    expect((await socket.closed).code).toBe(1008);
  });
});
