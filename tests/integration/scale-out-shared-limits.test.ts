import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServerFrame } from '../../protocol/index.js';
import type { Service } from '../../server/app.js';
import { generateKey, type ApiKeyLimits } from '../../server/auth/api-keys.js';
import type { Config } from '../../server/config/config.js';
import { RawSocket } from '../helpers/raw-socket.js';
import { RedisServer } from '../helpers/redis-server.js';
import { metricTotal, startTestService, tempDir } from '../helpers/service.js';
import { missingBinaries } from '../helpers/system-binary.js';
import { waitFor } from '../helpers/wait.js';

/*
 * Two services in this process share one real redis-server (REDIS_URL) and one keys file: what a
 * key may do holds across both, end to end through the gateway; with Redis gone each limits on its
 * own and says so. (tests/integration/scale-out.test.ts runs the same as processes behind nginx.)
 */

const skipReason = missingBinaries(['redis-server']);
if (skipReason) console.warn(`shared-limit service tests skipped: ${skipReason}`);
const suite = skipReason ? describe.skip : describe;

const PROMPT = 'Alice was beginning to get very tired of sitting by her sister on the bank';

suite('two services sharing per-key limits in Redis', () => {
  let redis: RedisServer;
  let services: Service[] = [];
  const sockets: RawSocket[] = [];
  const keys: Record<string, string> = {};
  let keysFile = '';

  beforeAll(async () => {
    redis = await RedisServer.start();
    keysFile = path.join(tempDir('llm-shared-keys'), 'keys.json');
    const limits: Record<string, ApiKeyLimits> = {
      rate: { requestsPerSecond: 0.01, requestBurst: 4 },
      streams: { maxStreams: 1 },
      connections: { maxConnections: 1 },
      fallback: { requestsPerSecond: 0.01, requestBurst: 2 },
    };
    writeFileSync(keysFile, JSON.stringify({ keys: Object.entries(limits).map(([name, keyLimits]) => {
      const { key, entry } = generateKey(name, keyLimits);
      keys[name] = key;
      return entry;
    }) }));
    const shared: Partial<Config> = { keysFile, redisUrl: redis.url, tokenLimitTps: 40, tokenLimitBurst: 40 };
    services = [await startTestService(shared), await startTestService(shared)];
    await waitFor(async () => (await Promise.all(services.map(readyz))).every((body) => (body.sharedLimits as { limits?: string } | undefined)?.limits === 'shared'), 10_000, 'both services sharing limits');
  });

  afterAll(async () => {
    for (const socket of sockets) socket.close();
    redis?.resume();
    await Promise.all(services.map((service) => service.shutdown(0)));
    await redis?.close();
  });

  async function readyz(service: Service): Promise<Record<string, unknown>> {
    return (await (await fetch(`${service.httpUrl}/readyz`)).json()) as Record<string, unknown>;
  }

  async function open(service: Service, key: string): Promise<RawSocket> {
    const socket = await RawSocket.open(service.streamUrl, { headers: { authorization: `Bearer ${keys[key]}` } });
    sockets.push(socket);
    return socket;
  }

  const terminal = async (socket: RawSocket, id: string): Promise<ServerFrame> => (await socket.request(id)).at(-1)!;

  it("admits a key's burst once across both services, and counts the refusals only Redis could make", async () => {
    const [a, b] = [await open(services[0]!, 'rate'), await open(services[1]!, 'rate')];
    for (let i = 0; i < 8; i++) (i % 2 ? b : a).send({ t: 'gen', id: `r${i}`, prompt: PROMPT, maxTokens: 1 });
    const outcomes = await Promise.all(Array.from({ length: 8 }, (_, i) => terminal(i % 2 ? b : a, `r${i}`)));
    expect(outcomes.filter((frame) => frame.t === 'end')).toHaveLength(4);
    expect(outcomes.filter((frame) => frame.t === 'err' && frame.code === 'rate_limited')).toHaveLength(4);
    const sharedRefusals = (await Promise.all(services.map((service) => metricTotal(service, 'llm_shared_limits_refusals_total')))).reduce((sum, value) => sum + value, 0);
    expect(sharedRefusals).toBeGreaterThan(0);
    for (const service of services) expect(await metricTotal(service, 'llm_shared_limits_up')).toBe(1);
  });

  it("caps a key's streams across both services", async () => {
    const [a, b] = [await open(services[0]!, 'streams'), await open(services[1]!, 'streams')];
    a.send({ t: 'gen', id: 'long', prompt: PROMPT, maxTokens: 200 });
    await a.next((frame) => frame.t === 'start' && frame.id === 'long');
    b.send({ t: 'gen', id: 'second', prompt: PROMPT, maxTokens: 1 });
    expect(await terminal(b, 'second')).toMatchObject({ t: 'err', code: 'too_many_streams', details: { limit: 1 } });
    a.send({ t: 'cancel', id: 'long' });
    expect(await terminal(a, 'long')).toMatchObject({ t: 'end', reason: 'cancelled' });
    await waitFor(async () => {
      const id = `again-${Math.random()}`;
      b.send({ t: 'gen', id, prompt: PROMPT, maxTokens: 1 });
      return (await terminal(b, id)).t === 'end';
    }, 5000, 'a stream admitted on the other service once the first ended');
  });

  it("caps a key's connections across both services", async () => {
    const first = await open(services[0]!, 'connections');
    await expect(RawSocket.open(services[1]!.streamUrl, { headers: { authorization: `Bearer ${keys.connections}` } })).rejects.toThrow('upgrade refused: 429');
    first.close();
    await first.closed;
    await waitFor(async () => {
      const socket = await RawSocket.open(services[1]!.streamUrl, { headers: { authorization: `Bearer ${keys.connections}` } }).catch(() => undefined);
      socket?.close();
      return socket !== undefined;
    }, 5000, 'a connection accepted on the other service once the first closed');
  });

  it('keeps serving with local limits while Redis does not answer, says so in /readyz and metrics, and shares again after', async () => {
    const [service] = services as [Service];
    redis.pause();
    const socket = await open(service, 'fallback');
    // The first request meets the silent Redis: it is served on the local decision, and the
    // service stops asking Redis until it answers again.
    socket.send({ t: 'gen', id: 'f0', prompt: PROMPT, maxTokens: 1 });
    expect(await terminal(socket, 'f0')).toMatchObject({ t: 'end' });
    await waitFor(async () => (await readyz(service)).sharedLimits !== undefined && ((await readyz(service)).sharedLimits as { limits: string }).limits === 'local', 5000, '/readyz saying limits are local');
    const body = await readyz(service);
    expect(body).toMatchObject({ status: 'ready', sharedLimits: { limits: 'local', redis: 'down' } });
    expect(await metricTotal(service, 'llm_shared_limits_up')).toBe(0);
    expect(await metricTotal(service, 'llm_shared_limits_fallbacks_total')).toBe(1);
    // Local limits: the key's own burst of 2 on this service.
    socket.send({ t: 'gen', id: 'f1', prompt: PROMPT, maxTokens: 1 });
    socket.send({ t: 'gen', id: 'f2', prompt: PROMPT, maxTokens: 1 });
    expect(await terminal(socket, 'f1')).toMatchObject({ t: 'end' });
    expect(await terminal(socket, 'f2')).toMatchObject({ t: 'err', code: 'rate_limited' });
    redis.resume();
    await waitFor(async () => ((await readyz(service)).sharedLimits as { limits: string }).limits === 'shared', 10_000, '/readyz saying limits are shared again');
    expect(await metricTotal(service, 'llm_shared_limits_up')).toBe(1);
  });

  it('changes nothing for a service without API keys: REDIS_URL alone shares nothing', async () => {
    const open = await startTestService({ redisUrl: redis.url });
    try {
      expect(await readyz(open)).toEqual({ status: 'ready' });
      const socket = await RawSocket.open(open.streamUrl);
      socket.send({ t: 'gen', id: 'o', prompt: PROMPT, maxTokens: 2 });
      expect(await terminal(socket, 'o')).toMatchObject({ t: 'end', reason: 'length' });
      socket.close();
    } finally {
      await open.shutdown(0);
    }
  });
});
