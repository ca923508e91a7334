import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { decodeMessage, encodeFrame, type ServerFrame } from '../../protocol/index.js';
import type { Service } from '../../server/app.js';
import { mulberry32 } from '../helpers/attack-msgpack.js';
import { requestFrameViolations } from '../helpers/attack-socket.js';
import { RawSocket } from '../helpers/raw-socket.js';
import { metricTotal, startTestService, waitForIdle } from '../helpers/service.js';
import { waitFor } from '../helpers/wait.js';

/*
 * The hammer: 1,000 clients, 50 at a time, each doing a seeded random mix of connect, gen,
 * cancel, close and terminate against the real service, then nothing may be left behind:
 * no busy or queued sequence, no session, no request in flight, no connection counted open.
 * Each client's steps wait for frames (the n-th frame it received), never for time: the seed
 * decides at which point of its requests' lives a client sends, cancels or leaves.
 */

const CLIENTS = 1000;
const BATCH = 50;
const SEED = Number(process.env.HAMMER_SEED ?? 0x4a11e7);
const PROMPTS = ['Alice', 'The Rabbit said', 'Alice was beginning to get very tired of sitting by her sister on the bank', 'Curiouser and curiouser'];

type Ending = 'abort-handshake' | 'wait' | 'close' | 'terminate';

interface Plan {
  ending: Ending;
  /**
   * When it leaves: for a close or terminate, once it received this many frames (hello included);
   * for a handshake abort, 0 before the upgrade is answered, 1 once it is (the server may have
   * opened the session), before the client sees it open.
   */
  endAfterFrames: number;
  /** Each gen goes out once the client received `afterFrames` frames more than before it. */
  gens: { id: string; frame: Record<string, unknown>; afterFrames: number }[];
  cancel: { index: number; afterFrames: number } | undefined;
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
      afterFrames: Math.floor(random() * 3),
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
  const cancel = count > 0 && random() < 0.35 ? { index: Math.floor(random() * count), afterFrames: Math.floor(random() * 4) } : undefined;
  return { ending, endAfterFrames: ending === 'abort-handshake' ? Math.floor(random() * 2) : 1 + Math.floor(random() * 12), gens, cancel };
}

async function runClient(url: string, plan: Plan): Promise<Outcome> {
  const socket = new WebSocket(url);
  const outcome: Outcome = { opened: false, frames: [], sent: new Map(), timedOut: false };
  let closed = false;
  let wake: (() => void) | undefined;
  const changed = (): void => {
    wake?.();
    wake = undefined;
  };
  socket.on('error', () => undefined);
  socket.on('message', (data: Buffer, isBinary) => {
    const decoded = decodeMessage(new Uint8Array(data), isBinary, 'msgpack');
    if (!decoded.ok) throw new Error(`server sent an undecodable frame: ${decoded.reason}`);
    outcome.frames.push(decoded.value as ServerFrame);
    changed();
  });
  const closedPromise = new Promise<void>((resolve) =>
    socket.once('close', () => {
      closed = true;
      changed();
      resolve();
    }),
  );
  /** Every gen sent so far has its terminal frame (or duplicate_id refusal): nothing more will come. */
  const settled = (): boolean => requestFrameViolations(outcome.frames, outcome.sent).length === 0;
  /** Resolves once `check` holds, looked at again on each frame and on the close. */
  const until = async (check: () => boolean): Promise<void> => {
    while (!check() && !closed) await new Promise<void>((resolve) => (wake = resolve));
  };
  /** Once `count` frames came, or nothing more can come (all answered, or closed). */
  const frames = (count: number): Promise<void> => until(() => outcome.frames.length >= count || settled());
  const send = (frame: object): void => {
    if (socket.readyState === WebSocket.OPEN) socket.send(encodeFrame(frame, 'msgpack') as Uint8Array);
  };
  // A safety net: a client that hangs fails the test (timedOut) instead of stalling it.
  const guard = setTimeout(() => {
    outcome.timedOut = true;
    socket.terminate();
  }, 30_000);
  try {
    if (plan.ending === 'abort-handshake') {
      // Gone during the upgrade: before its answer, or once the answer came (the server may have
      // opened the session already) but before the client opens.
      if (plan.endAfterFrames > 0) await new Promise<void>((resolve) => socket.once('upgrade', () => resolve()).once('close', () => resolve()));
      socket.terminate();
      await closedPromise;
      return outcome;
    }
    const opened = await Promise.race([new Promise<boolean>((resolve) => socket.once('open', () => resolve(true))), closedPromise.then(() => false)]);
    outcome.opened = opened;
    if (!opened) return outcome;
    for (const gen of plan.gens) {
      await frames(outcome.frames.length + gen.afterFrames);
      outcome.sent.set(gen.id, (outcome.sent.get(gen.id) ?? 0) + 1);
      send(gen.frame);
    }
    if (plan.cancel) {
      await frames(outcome.frames.length + plan.cancel.afterFrames);
      send({ t: 'cancel', id: plan.gens[plan.cancel.index]!.id });
    }
    if (plan.ending === 'wait') {
      await until(settled);
      socket.close();
    } else {
      await frames(plan.endAfterFrames);
      if (plan.ending === 'close') socket.close();
      else socket.terminate();
    }
    await closedPromise;
    return outcome;
  } finally {
    clearTimeout(guard);
  }
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

    // Nothing leaked: sequences, queue, requests, sessions and the open-connection count (each
    // wait fails naming what is still held).
    await waitForIdle(service, 15_000);
    await waitFor(() => service.sessions.size === 0, 15_000, () => `no session; still ${service.sessions.size}`);
    expect(await metricTotal(service, 'llm_connections_open')).toBe(0);
    expect(await metricTotal(service, 'llm_connections_closed_total')).toBe(await metricTotal(service, 'llm_connections_opened_total'));
    expect(await metricTotal(service, 'llm_connections_opened_total')).toBeGreaterThanOrEqual(summary.opened);

    // The per-address connection count went back to zero too: a full batch can connect again.
    const fresh = await Promise.all(Array.from({ length: 2 * BATCH }, () => RawSocket.open(service.streamUrl)));
    fresh[0]!.send({ t: 'gen', id: 'after', prompt: PROMPTS[0]!, maxTokens: 8, temperature: 0 });
    expect((await fresh[0]!.request('after')).at(-1)).toMatchObject({ t: 'end', reason: 'length', usage: { completionTokens: 8 } });
    for (const socket of fresh) socket.close();
    await waitFor(() => service.sessions.size === 0, 5000, 'the fresh sessions closed');
  });
});
