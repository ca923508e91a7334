import { spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ErrFrame } from '../../protocol/index.js';
import type { Service } from '../../server/app.js';
import { ensureDemoModel } from '../../server/model-maker/demo/demo-model.js';
import { RawSocket } from '../helpers/raw-socket.js';
import { SHARED_MODELS_DIR, startTestService } from '../helpers/service.js';
import { waitFor } from '../helpers/wait.js';

/*
 * Edges of the service's lifetime and of a request's: readiness once the default model was
 * unloaded, admin actions while draining, an id reused right after its cancel, a signal while
 * the service is still starting.
 */

const ADMIN = 'test-admin-token';
const PROMPT = 'Alice was beginning to get very tired of sitting by her sister on the bank';

describe('a running service', () => {
  let service: Service;

  beforeAll(async () => {
    service = await startTestService({ tokenLimitTps: 200, tokenLimitBurst: 1 });
  });

  afterAll(async () => {
    await service.shutdown(1000);
  });

  const admin = (action: string): Promise<Response> =>
    fetch(`${service.httpUrl}/api/models/${service.pool.defaultName}/${action}`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` } });

  it('stays ready after the default model is unloaded: the next request loads it again', async () => {
    expect((await admin('unload')).status).toBe(200);
    await waitFor(() => !service.pool.isLoaded(service.pool.defaultName) || undefined, 10_000, 'the model unloaded');
    const ready = await fetch(`${service.httpUrl}/readyz`);
    expect(ready.status).toBe(200);
    const socket = await RawSocket.open(service.streamUrl);
    socket.send({ t: 'gen', id: 'after-unload', prompt: PROMPT, maxTokens: 3 });
    expect((await socket.request('after-unload')).at(-1)).toMatchObject({ t: 'end', reason: 'length' });
    expect(service.pool.isLoaded(service.pool.defaultName)).toBe(true);
    socket.close();
  });

  it('accepts a gen that reuses an id right behind its cancel: the cancelled one has already ended', async () => {
    // No token limit here: a bucket in debt would refuse the second gen for another reason.
    const unthrottled = await startTestService({ contextSize: 4096 });
    const socket = await RawSocket.open(unthrottled.streamUrl);
    socket.send({ t: 'gen', id: 'X', prompt: PROMPT, maxTokens: 4000 });
    await socket.next((frame) => frame.t === 'tok' && frame.id === 'X');
    socket.send({ t: 'cancel', id: 'X' });
    socket.send({ t: 'gen', id: 'X', prompt: PROMPT, maxTokens: 3 });
    const terminalsOfX = () => socket.frames.filter((frame) => (frame.t === 'end' || frame.t === 'err') && 'id' in frame && frame.id === 'X');
    await socket.until(() => terminalsOfX().length === 2, 20_000, 'two terminal frames for X');
    const ends = terminalsOfX();
    expect(ends.map((frame) => (frame.t === 'end' ? frame.reason : (frame as ErrFrame).code))).toEqual(['cancelled', 'length']);
    expect(socket.frames.some((frame) => frame.t === 'err' && frame.code === 'duplicate_id')).toBe(false);
    socket.close();
    await unthrottled.shutdown(1000);
  });
});

describe('a draining service', () => {
  it('refuses admin model actions with 503 shutting_down', async () => {
    const service = await startTestService({ tokenLimitTps: 100, tokenLimitBurst: 1 });
    const socket = await RawSocket.open(service.streamUrl);
    socket.send({ t: 'gen', id: 'long', prompt: PROMPT, maxTokens: 500 });
    await socket.next((frame) => frame.t === 'tok');
    const stopping = service.shutdown(30_000);
    for (const action of ['load', 'unload', 'reload']) {
      const response = await fetch(`${service.httpUrl}/api/models/${service.pool.defaultName}/${action}`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` } });
      expect(response.status, action).toBe(503);
      expect(response.headers.get('retry-after')).toBe('5');
      expect(await response.json()).toMatchObject({ error: 'shutting_down' });
    }
    socket.send({ t: 'cancel', id: 'long' });
    await stopping;
  });
});

describe('a signal during the start', () => {
  it('stops the service gracefully as soon as it is up, exit code 0', async () => {
    await ensureDemoModel(SHARED_MODELS_DIR);
    const child = spawn(process.execPath, ['--import', 'tsx', path.resolve(import.meta.dirname, '../../server/main.ts')], {
      env: { ...process.env, HOST: '127.0.0.1', PORT: '0', MODELS_DIR: SHARED_MODELS_DIR, THREADS: '1', GPU: 'false', LOG_TO_FILES: 'false', ADMIN_TOKEN: 'x', KEYS_FILE: '', WATCH_MODELS: 'false', LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const messages: string[] = [];
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await new Promise<void>((resolve) => {
      createInterface({ input: child.stdout! }).on('line', (line) => {
        const msg = (JSON.parse(line) as { msg?: string }).msg ?? '';
        messages.push(msg);
        // The first line the service logs while starting: handlers are in place, the listener not yet.
        if (msg === 'configuration') {
          child.kill('SIGTERM');
          resolve();
        }
      });
    });
    expect(await exited).toBe(0);
    expect(messages).toContain('shutting down');
    expect(messages).toContain('stopped');
  });
});
