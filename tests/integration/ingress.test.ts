import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Service } from '../../server/app.js';
import { RawSocket } from '../helpers/raw-socket.js';
import { startTestService } from '../helpers/service.js';
import { parseExposition, sampleValue } from '../helpers/exposition.js';
import { waitFor } from '../helpers/wait.js';

/*
 * Large frames are queued and decoded in turns; small ones are handled as they come. Either way a
 * connection's frames are handled in the order they were sent.
 */

let service: Service;

beforeAll(async () => {
  service = await startTestService({ contextSize: 4096 });
});

afterAll(async () => {
  await service.shutdown(1000);
});

describe('frames of one connection', () => {
  it('a small cancel right behind a large gen reaches the gen it names', async () => {
    const socket = await RawSocket.open(service.streamUrl);
    // Over 16 KiB, so it waits its turn; the cancel behind it must not overtake it.
    const prompt = `${'The rabbit ran. '.repeat(1200)}`;
    socket.send({ t: 'gen', id: 'big', prompt, maxTokens: 2000 });
    socket.send({ t: 'cancel', id: 'big' });
    const frames = await socket.request('big');
    expect(frames.at(-1)).toMatchObject({ t: 'end', id: 'big', reason: 'cancelled' });
    expect(socket.frames.some((frame) => frame.t === 'err' && frame.code === 'unknown_id')).toBe(false);
    socket.close();
  });

  it('answers a run of large frames in the order they were sent', async () => {
    const socket = await RawSocket.open(service.streamUrl);
    const prompt = 'x'.repeat(100_000);
    const ids = Array.from({ length: 6 }, (_, index) => `r${index}`);
    for (const id of ids) socket.send({ t: 'gen', id, prompt, maxTokens: 8 });
    for (const id of ids) await socket.request(id);
    const answered = socket.frames.filter((frame) => frame.t === 'err').map((frame) => (frame as { id?: string; code: string }));
    // Each is refused from its length alone, in the order sent.
    expect(answered.map((frame) => frame.id)).toEqual(ids);
    expect(new Set(answered.map((frame) => frame.code))).toEqual(new Set(['prompt_too_long']));
    socket.close();
  });
});

describe('frames past the library\'s cut-off', () => {
  it('are cut without a close frame and counted as too_big, not as the client leaving', async () => {
    const closedTooBig = async (): Promise<number> =>
      sampleValue(parseExposition(await service.observability.metrics!.prometheus.text()), 'llm_connections_closed_total', { cause: 'too_big' }) ?? 0;
    const before = await closedTooBig();
    const socket = await RawSocket.open(service.streamUrl);
    socket.sendBytes(new Uint8Array(600_000));
    expect((await socket.closed).code).toBe(1006);
    await waitFor(async () => (await closedTooBig()) === before + 1 || undefined, 5000, 'the close counted');
  });
});
