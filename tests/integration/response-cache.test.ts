import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EndFrame, ServerFrame } from '../../protocol/index.js';
import type { Service } from '../../server/app.js';
import { RawSocket } from '../helpers/raw-socket.js';
import { startTestService } from '../helpers/service.js';

const PROMPT = 'The Queen of Hearts, she made some tarts';
let service: Service;
let socket: RawSocket;
let next = 0;

beforeAll(async () => {
  service = await startTestService({ responseCacheEntries: 100 });
  socket = await RawSocket.open(service.streamUrl);
});

afterAll(async () => {
  socket?.close();
  await service?.shutdown(0);
});

async function run(params: Record<string, unknown>): Promise<{ text: string; end: EndFrame; frames: ServerFrame[] }> {
  const id = `c${next++}`;
  socket.send({ t: 'gen', id, prompt: PROMPT, maxTokens: 40, ...params });
  const frames = await socket.request(id);
  const text = frames.map((frame) => (frame.t === 'tok' ? frame.text : '')).join('');
  return { text, end: frames.at(-1) as EndFrame, frames };
}

describe('response cache', () => {
  it('replays an identical greedy request without generating', async () => {
    const first = await run({ temperature: 0 });
    expect(first.end.cached).toBeUndefined();
    const again = await run({ temperature: 0 });
    expect(again.end).toMatchObject({ t: 'end', reason: first.end.reason, cached: true, usage: first.end.usage });
    expect(again.text).toBe(first.text);
    expect(again.frames[0]).toMatchObject({ t: 'start', model: 'demo' });
    expect(again.frames.filter((frame) => frame.t === 'tok')).toHaveLength(1);
    // A different parameter is a different request.
    expect((await run({ temperature: 0, maxTokens: 41 })).end.cached).toBeUndefined();
  });

  it('caches seeded sampling but never unseeded sampling or cancelled streams', async () => {
    const seeded = await run({ temperature: 0.9, seed: 5 });
    expect((await run({ temperature: 0.9, seed: 5 })).end).toMatchObject({ cached: true });
    expect((await run({ temperature: 0.9, seed: 5 })).text).toBe(seeded.text);
    await run({ temperature: 0.9 });
    expect((await run({ temperature: 0.9 })).end.cached).toBeUndefined();
    const id = `c${next++}`;
    socket.send({ t: 'gen', id, prompt: 'Curiouser and curiouser', maxTokens: 2000, temperature: 0 });
    await socket.next((frame) => frame.t === 'tok' && frame.id === id);
    socket.send({ t: 'cancel', id });
    expect((await socket.request(id)).at(-1)).toMatchObject({ reason: 'cancelled' });
    const after = `c${next++}`;
    socket.send({ t: 'gen', id: after, prompt: 'Curiouser and curiouser', maxTokens: 2000, temperature: 0 });
    socket.send({ t: 'cancel', id: after });
    expect(((await socket.request(after)).at(-1) as EndFrame).cached).toBeUndefined();
  });

  it('counts hits in the metrics', async () => {
    const hits = async (): Promise<number | undefined> => {
      const text = await (await fetch(`${service.httpUrl}/metrics`, { headers: { authorization: 'Bearer test-admin-token' } })).text();
      const match = /^llm_response_cache_hits_total\{model="demo"\} (\d+)/m.exec(text);
      return match ? Number(match[1]) : undefined;
    };
    const before = (await hits()) ?? 0;
    // A request no other test makes (maxTokens 12): a miss, then a hit.
    expect((await run({ temperature: 0, maxTokens: 12 })).end.cached).toBeUndefined();
    expect((await run({ temperature: 0, maxTokens: 12 })).end.cached).toBe(true);
    expect(await hits()).toBe(before + 1);
  });
});
