import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { decodeMessage, encodeFrame, type ServerFrame } from '../../protocol/index.js';
import type { Service } from '../../server/app.js';
import { mulberry32 } from '../helpers/attack-msgpack.js';
import { requestFrameViolations } from '../helpers/attack-socket.js';
import { waitFor } from '../helpers/model-files.js';
import { RawSocket } from '../helpers/raw-socket.js';
import { startTestService } from '../helpers/service.js';

/*
 * The hammer: 1,000 clients, 50 at a time, each doing a seeded random mix of connect, gen,
 * cancel, close and terminate against the real service, then nothing may be left behind:
 * no busy or queued sequence, no session, no request in flight, no connection counted open.
 */

const CLIENTS = 1000;
const BATCH = 50;
const SEED = Number(process.env.HAMMER_SEED ?? 0x4a11e7);
const PROMPTS = ['Alice', 'The Rabbit said', 'Alice was beginning to get very tired of sitting by her sister on the bank', 'Curiouser and curiouser'];

type Ending = 'abort-handshake' | 'wait' | 'close' | 'terminate';

interface Plan {
  ending: Ending;
  /** Milliseconds before a close or terminate (or the handshake abort). */
  endAfterMs: number;
  gens: { id: string; frame: Record<string, unknown>; afterMs: number }[];
  cancel: { index: number; afterMs: number } | undefined;
}

interface Outcome {
  opened: boolean;
  frames: ServerFrame[];
  sent: Map<string, number>;
  timedOut: boolean;
}

/** Every random choice of a client, drawn up front so the seed alone decides the plan. */
function planFor(client: number, random: () => number): Plan {
  const roll = random();
  const ending: Ending = roll < 0.08 ? 'abort-handshake' : roll < 0.45 ? 'wait' : roll < 0.75 ? 'close' : 'terminate';
  const count = Math.floor(random() * 4);
  // Clients that leave early ask for long streams, so they leave mid-generation or while queued.
  const longest = ending === 'wait' ? 8 : 200;
  const gens = Array.from({ length: count }, (_, index) => {
    const invalid = random() < 0.1;
    return {
      id: `c${client}g${index}`,
      afterMs: Math.floor(random() * 15),
      frame: {
        t: 'gen',
        id: `c${client}g${index}`,
        prompt: PROMPTS[Math.floor(random() * PROMPTS.length)]!,
        maxTokens: invalid ? 0 : 1 + Math.floor(random() * longest),
        temperature: Math.round(random() * 10) / 10,
        seed: Math.floor(random() * 1000),
      },
    };
  });
  const cancel = count > 0 && random() < 0.35 ? { index: Math.floor(random() * count), afterMs: Math.floor(random() * 25) } : undefined;
  return { ending, endAfterMs: Math.floor(random() * (ending === 'abort-handshake' ? 4 : 60)), gens, cancel };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function runClient(url: string, plan: Plan): Promise<Outcome> {
  const socket = new WebSocket(url);
  const outcome: Outcome = { opened: false, frames: [], sent: new Map(), timedOut: false };
  socket.on('error', () => undefined);
  socket.on('message', (data: Buffer, isBinary) => {
    const decoded = decodeMessage(new Uint8Array(data), isBinary, 'msgpack');
    if (!decoded.ok) throw new Error(`server sent an undecodable frame: ${decoded.reason}`);
    outcome.frames.push(decoded.value as ServerFrame);
  });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const send = (frame: object): void => {
    if (socket.readyState === WebSocket.OPEN) socket.send(encodeFrame(frame, 'msgpack') as Uint8Array);
  };
  const guard = setTimeout(() => {
    outcome.timedOut = true;
    socket.terminate();
  }, 30_000);
  try {
    if (plan.ending === 'abort-handshake') {
      // Gone during (or right after) the upgrade.
      if (plan.endAfterMs > 0) await sleep(plan.endAfterMs);
      socket.terminate();
      await closed;
      return outcome;
    }
    const opened = await Promise.race([new Promise<boolean>((resolve) => socket.once('open', () => resolve(true))), closed.then(() => false)]);
    outcome.opened = opened;
    if (!opened) return outcome;
    for (const gen of plan.gens) {
      if (gen.afterMs > 0) await sleep(gen.afterMs);
      outcome.sent.set(gen.id, (outcome.sent.get(gen.id) ?? 0) + 1);
      send(gen.frame);
    }
    if (plan.cancel) {
      await sleep(plan.cancel.afterMs);
      send({ t: 'cancel', id: plan.gens[plan.cancel.index]!.id });
    }
    if (plan.ending === 'wait') {
      const deadline = Date.now() + 20_000;
      while (requestFrameViolations(outcome.frames, outcome.sent).length > 0 && Date.now() < deadline) await sleep(10);
      socket.close();
    } else {
      await sleep(plan.endAfterMs);
      if (plan.ending === 'close') socket.close();
      else socket.terminate();
    }
    await closed;
    return outcome;
  } finally {
    clearTimeout(guard);
  }
}

function metricValue(text: string, name: string): number {
  return text
    .split('\n')
    .filter((line) => line.startsWith(name) && (line[name.length] === ' ' || line[name.length] === '{'))
    .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
}

describe('hammer', () => {
  let service: Service;

  beforeAll(async () => {
    service = await startTestService({
      parallelSequences: 2,
      maxConnectionsPerIp: 2 * BATCH,
      maxTokensCeiling: 256,
      queueMax: 64,
      metricsPublic: true,
      adminToken: 'hammer-admin-token',
    });
  });

  afterAll(async () => {
    await service?.shutdown(0);
  });

  it(`${CLIENTS} random connect/gen/cancel/close/terminate clients leave no sequence, session or connection behind`, { timeout: 90_000 }, async () => {
    const random = mulberry32(SEED);
    const plans = Array.from({ length: CLIENTS }, (_, client) => planFor(client, random));
    const started = performance.now();
    const outcomes: Outcome[] = [];
    for (let first = 0; first < CLIENTS; first += BATCH) {
      outcomes.push(...(await Promise.all(plans.slice(first, first + BATCH).map((plan) => runClient(service.streamUrl, plan)))));
    }
    const elapsedMs = performance.now() - started;

    // Clients that waited for their answers got exactly one terminal frame per gen.
    const violations = outcomes.flatMap((outcome, client) => (plans[client]!.ending === 'wait' && outcome.opened ? requestFrameViolations(outcome.frames, outcome.sent).map((problem) => `client ${client}: ${problem}`) : []));
    const count = (predicate: (frame: ServerFrame) => boolean): number => outcomes.reduce((sum, outcome) => sum + outcome.frames.filter(predicate).length, 0);
    const summary = {
      seed: SEED,
      seconds: Math.round(elapsedMs / 100) / 10,
      opened: outcomes.filter((outcome) => outcome.opened).length,
      endings: Object.fromEntries((['abort-handshake', 'wait', 'close', 'terminate'] as const).map((ending) => [ending, plans.filter((plan) => plan.ending === ending).length])),
      gensSent: outcomes.reduce((sum, outcome) => sum + [...outcome.sent.values()].reduce((a, b) => a + b, 0), 0),
      starts: count((frame) => frame.t === 'start'),
      ends: count((frame) => frame.t === 'end'),
      cancelled: count((frame) => frame.t === 'end' && frame.reason === 'cancelled'),
      refusals: count((frame) => frame.t === 'err' && frame.id !== undefined),
    };
    console.info(`hammer: ${JSON.stringify(summary)}`);
    expect(outcomes.filter((outcome) => outcome.timedOut)).toHaveLength(0);
    expect(violations).toEqual([]);
    expect(summary.opened).toBeGreaterThan(CLIENTS * 0.85);
    expect(summary.starts).toBeGreaterThan(100);

    // Nothing leaked: sequences, queue, sessions, requests and the open-connection count.
    await waitFor(
      () => service.pool.loadedModels().every((model) => model.scheduler.busy === 0 && model.scheduler.queued === 0) && service.sessions.size === 0 && service.sessions.inFlight === 0,
      15_000,
      'no busy or queued sequence, no session',
    );
    for (const model of service.pool.loadedModels()) expect({ model: model.name, busy: model.scheduler.busy, queued: model.scheduler.queued }).toEqual({ model: model.name, busy: 0, queued: 0 });
    expect(service.sessions.size).toBe(0);
    expect(service.sessions.inFlight).toBe(0);
    const metrics = await (await fetch(`${service.httpUrl}/metrics`)).text();
    expect(metricValue(metrics, 'llm_connections_open')).toBe(0);
    expect(metricValue(metrics, 'llm_connections_closed_total')).toBe(metricValue(metrics, 'llm_connections_opened_total'));
    expect(metricValue(metrics, 'llm_connections_opened_total')).toBeGreaterThanOrEqual(summary.opened);

    // The per-address connection count went back to zero too: a full batch can connect again.
    const fresh = await Promise.all(Array.from({ length: 2 * BATCH }, () => RawSocket.open(service.streamUrl)));
    fresh[0]!.send({ t: 'gen', id: 'after', prompt: PROMPTS[0]!, maxTokens: 8, temperature: 0 });
    expect((await fresh[0]!.request('after')).at(-1)).toMatchObject({ t: 'end', reason: 'length', usage: { completionTokens: 8 } });
    for (const socket of fresh) socket.close();
    await waitFor(() => service.sessions.size === 0, 5000, 'the fresh sessions closed');
  });
});
