import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { connect, type HelloFrame, type ServerFrame, type WebSocketConstructor } from '../../protocol/index.js';
import { resumeUrl } from '../../protocol/reconnect.js';
import { generateKey, type ApiKeyLimits } from '../../server/auth/api-keys.js';
import { NginxBalancer } from '../helpers/nginx.js';
import { RawSocket } from '../helpers/raw-socket.js';
import { RedisServer } from '../helpers/redis-server.js';
import { Replica } from '../helpers/replica.js';
import { tempDir } from '../helpers/service.js';
import { missingBinaries } from '../helpers/system-binary.js';
import { waitFor } from '../helpers/wait.js';

/*
 * Three replicas (processes) behind the shipped nginx config, per-key limits shared in a real
 * redis-server, all on loopback with ephemeral ports and temp folders. Streams are throttled by
 * each connection's own token limit (40 tokens/s after a burst of 40), so a stream of 120 tokens
 * runs for about two seconds whatever the machine's speed.
 *
 * The drain and failover figures it measures are printed ("scale-out figures") and recorded in
 * docs/deployment.md.
 */

const skipReason = missingBinaries(['nginx', 'redis-server']);
if (skipReason) console.warn(`scale-out tests skipped: ${skipReason}`);
const suite = skipReason ? describe.skip : describe;

const PROMPT = 'Alice was beginning to get very tired of sitting by her sister on the bank';
const STREAM_TOKENS = 120;
const SHUTDOWN_GRACE_MS = 20_000;

suite('replicas behind nginx with limits shared in Redis', () => {
  let redis: RedisServer;
  let nginx: NginxBalancer;
  let replicas: Replica[] = [];
  const sockets: RawSocket[] = [];
  const keys: Record<string, string> = {};
  const figures: Record<string, number | string> = {};

  beforeAll(async () => {
    redis = await RedisServer.start();
    const dir = tempDir('llm-scale-out');
    const keysFile = path.join(dir, 'keys.json');
    const limits: Record<string, ApiKeyLimits> = {
      open: {},
      rate: { requestsPerSecond: 0.2, requestBurst: 6 },
      streams: { maxStreams: 2 },
      connections: { maxConnections: 2 },
    };
    const entries = Object.entries(limits).map(([name, keyLimits]) => {
      const { key, entry } = generateKey(name, keyLimits);
      keys[name] = key;
      return entry;
    });
    writeFileSync(keysFile, JSON.stringify({ keys: entries }));
    const env = {
      KEYS_FILE: keysFile,
      REDIS_URL: redis.url,
      // Behind one proxy every client has the proxy's address.
      MAX_CONNECTIONS_PER_IP: '1000',
      RATE_LIMIT_RPS: '1000',
      RATE_LIMIT_BURST: '1000',
      MAX_FRAMES_PER_SECOND: '1000',
      TOKEN_LIMIT_TPS: '40',
      TOKEN_LIMIT_BURST: '40',
      PARALLEL_SEQUENCES: '4',
      RESPONSE_CACHE_ENTRIES: '0',
      SHUTDOWN_GRACE_MS: String(SHUTDOWN_GRACE_MS),
    };
    // Whatever started is stopped in afterAll, even when another failed to.
    const started = await Promise.allSettled(['replica-1', 'replica-2', 'replica-3'].map((name) => Replica.start(name, env)));
    replicas = started.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
    const failed = started.find((result) => result.status === 'rejected');
    if (failed) throw failed.reason;
    nginx = await NginxBalancer.start(
      replicas.map((replica) => replica.port),
      undefined,
      replicas.map((replica) => replica.name),
    );
  });

  afterAll(async () => {
    for (const socket of sockets) socket.close();
    await nginx?.close();
    await Promise.all(replicas.map((replica) => replica.stop()));
    await redis?.close();
    if (Object.keys(figures).length > 0) console.info(`scale-out figures: ${JSON.stringify(figures)}`);
  });

  /** A connection through nginx with the named key (to `url`: the stream URL with a query). */
  async function open(key: string, url = nginx.streamUrl): Promise<RawSocket> {
    const socket = await RawSocket.open(url, { headers: { authorization: `Bearer ${keys[key]}` } });
    sockets.push(socket);
    return socket;
  }

  const sessionOf = (socket: RawSocket): string => (socket.frames.find((frame) => frame.t === 'hello') as Extract<ServerFrame, { t: 'hello' }>).session;

  /** The replica a connection landed on, asked of the replicas themselves. */
  async function replicaOf(socket: RawSocket, among = replicas): Promise<Replica | undefined> {
    const session = sessionOf(socket);
    for (const replica of among) if ((await replica.connectionIds()).includes(session)) return replica;
    return undefined;
  }

  async function closeAll(): Promise<void> {
    for (const socket of sockets.splice(0)) socket.close();
    await waitFor(async () => (await Promise.all(replicas.filter((replica) => replica.daemon.running).map((replica) => replica.connectionIds()))).every((ids) => ids.length === 0), 10_000, 'no connection left on any replica');
  }

  const isTerminal = (id: string) => (frame: ServerFrame): boolean => (frame.t === 'end' || frame.t === 'err') && 'id' in frame && frame.id === id;
  const startStream = (socket: RawSocket, id: string, maxTokens = STREAM_TOKENS): void => socket.send({ t: 'gen', id, prompt: PROMPT, maxTokens, temperature: 0.8 });

  it('spreads streams over the replicas (least_conn) and says in /readyz that limits are shared', async () => {
    for (const replica of replicas) expect(await replica.readyz()).toMatchObject({ status: 'ready', sharedLimits: { limits: 'shared', redis: 'up' } });
    const opened = [];
    for (let i = 0; i < 6; i++) opened.push(await open('open'));
    opened.forEach((socket, i) => startStream(socket, `spread-${i}`, 8));
    const counts = await Promise.all(replicas.map(async (replica) => (await replica.connectionIds()).length));
    expect(counts).toEqual([2, 2, 2]);
    for (const [i, socket] of opened.entries()) expect((await socket.request(`spread-${i}`)).at(-1)).toMatchObject({ t: 'end', reason: 'length' });
    await closeAll();
  });

  it("holds a key's request limit across the replicas: a burst of 6 admits 6 of 12, wherever they land", async () => {
    const opened = [await open('rate'), await open('rate'), await open('rate')];
    const landed = await Promise.all(opened.map((socket) => replicaOf(socket)));
    expect(new Set(landed.map((replica) => replica?.name)).size).toBe(3);
    const startedAt = performance.now();
    for (let i = 0; i < 12; i++) opened[i % 3]!.send({ t: 'gen', id: `rate-${i}`, prompt: PROMPT, maxTokens: 1 });
    const terminals: ServerFrame[] = [];
    for (let i = 0; i < 12; i++) terminals.push((await opened[i % 3]!.request(`rate-${i}`)).find(isTerminal(`rate-${i}`))!);
    const elapsedS = (performance.now() - startedAt) / 1000;
    const admitted = terminals.filter((frame) => frame.t === 'end').length;
    const refused = terminals.filter((frame) => frame.t === 'err' && frame.code === 'rate_limited');
    // Each replica alone would have admitted 6 (18 in all); the shared bucket refills 0.2 a second.
    expect(admitted).toBeGreaterThanOrEqual(6);
    expect(admitted).toBeLessThanOrEqual(6 + Math.floor(elapsedS * 0.2));
    expect(refused).toHaveLength(12 - admitted);
    for (const frame of refused) expect((frame as Extract<ServerFrame, { t: 'err' }>).retryAfterMs).toBeGreaterThan(0);
    await closeAll();
  });

  it("holds a key's stream and connection caps across the replicas", async () => {
    const opened = [await open('streams'), await open('streams'), await open('streams')];
    expect(new Set((await Promise.all(opened.map((socket) => replicaOf(socket)))).map((replica) => replica?.name)).size).toBe(3);
    for (let i = 0; i < 2; i++) {
      startStream(opened[i]!, `cap-${i}`);
      await opened[i]!.next((frame) => frame.t === 'start' && frame.id === `cap-${i}`);
    }
    startStream(opened[2]!, 'cap-2');
    expect(await opened[2]!.next(isTerminal('cap-2'))).toMatchObject({ t: 'err', code: 'too_many_streams' });
    for (let i = 0; i < 2; i++) opened[i]!.send({ t: 'cancel', id: `cap-${i}` });
    // A place is free again once a stream ended: on any replica.
    await opened[0]!.next(isTerminal('cap-0'));
    await waitFor(async () => {
      const id = `cap-again-${Math.random()}`;
      startStream(opened[2]!, id, 1);
      return (await opened[2]!.next(isTerminal(id))).t === 'end';
    }, 5000, 'a stream admitted again after one ended');
    await closeAll();

    await open('connections');
    await open('connections');
    // The third lands on a replica that holds none of the key's connections: only Redis knows.
    await expect(RawSocket.open(nginx.streamUrl, { headers: { authorization: `Bearer ${keys.connections}` } })).rejects.toThrow('upgrade refused: 429');
    await closeAll();
  });

  const helloOf = (socket: RawSocket): HelloFrame => socket.frames.find((frame) => frame.t === 'hello') as HelloFrame;
  const ofRequest = (socket: RawSocket, id: string): ServerFrame[] => socket.frames.filter((frame) => 'id' in frame && frame.id === id);
  const textOf = (frames: ServerFrame[]): string => frames.map((frame) => (frame.t === 'tok' ? frame.text : '')).join('');
  /** Sampled, so only the seed makes two runs alike. */
  const SEEDED = { prompt: PROMPT, maxTokens: STREAM_TOKENS, temperature: 0.8, seed: 11 };

  /** The text of an uninterrupted run of SEEDED, wherever it lands. */
  async function referenceText(): Promise<string> {
    const socket = await open('open');
    socket.send({ t: 'gen', id: 'reference', ...SEEDED });
    const frames = await socket.request('reference');
    expect(frames.at(-1)).toMatchObject({ t: 'end', reason: 'length', usage: { completionTokens: STREAM_TOKENS } });
    await closeAll();
    return textOf(frames);
  }

  /**
   * Starts SEEDED on a new connection, cuts it (no close handshake) once a few tokens arrived, and
   * loads its replica with two idle connections, so that least_conn alone would send the next
   * connection elsewhere.
   */
  async function cutMidStream(id: string): Promise<{ first: RawSocket; hello: HelloFrame; origin: Replica }> {
    const first = await open('open');
    const hello = helloOf(first);
    const origin = (await replicaOf(first))!;
    expect(hello.replica).toBe(origin.name);
    first.send({ t: 'gen', id, ...SEEDED });
    await first.until(() => ofRequest(first, id).filter((frame) => frame.t === 'tok').length >= 3, 10_000, 'three tok frames');
    first.socket.terminate();
    await first.closed;
    for (let i = 0; i < 2; i++) expect(await replicaOf(await open('open', resumeUrl(nginx.streamUrl, origin.name)))).toBe(origin);
    return { first, hello, origin };
  }

  it('resumes a resumable stream through the balancer: the reconnect names its replica and lands there', async () => {
    const reference = await referenceText();
    const { first, hello, origin } = await cutMidStream('resumed');
    const fromSeq = Math.max(...ofRequest(first, 'resumed').map((frame) => ('seq' in frame ? frame.seq ?? 0 : 0))) + 1;

    // The URL the typed client redials: the stream URL with ?replica=<hello.replica>.
    const again = await open('open', resumeUrl(nginx.streamUrl, hello.replica));
    expect(await replicaOf(again)).toBe(origin);
    again.send({ t: 'resume', id: 'resumed', session: hello.session, token: hello.resumeToken!, fromSeq });
    await again.request('resumed');

    const frames = [...ofRequest(first, 'resumed'), ...ofRequest(again, 'resumed')];
    expect(textOf(frames)).toBe(reference);
    const seqs = frames.map((frame) => ('seq' in frame ? frame.seq : undefined));
    expect(seqs).toEqual(Array.from({ length: frames.length }, (_, index) => index + 1));
    const terminal = frames.filter((frame) => frame.t === 'end' || frame.t === 'err');
    expect(terminal).toHaveLength(1);
    expect(terminal[0]).toMatchObject({ t: 'end', reason: 'length', usage: { completionTokens: STREAM_TOKENS } });
    await closeAll();
  });

  it("lets the typed client's for-await run through a dropped connection behind the balancer", async () => {
    const reference = await referenceText();
    const opened: WebSocket[] = [];
    class TrackedWebSocket extends WebSocket {
      constructor(...args: ConstructorParameters<typeof WebSocket>) {
        super(...args);
        opened.push(this);
      }
    }
    const client = await connect(nginx.streamUrl, { WebSocket: TrackedWebSocket as unknown as WebSocketConstructor, apiKey: keys.open, reconnect: { initialDelayMs: 20, maxDelayMs: 200 } });
    const origin = replicas.find((replica) => replica.name === client.hello.replica)!;
    expect(await origin.connectionIds()).toContain(client.hello.session);
    const stream = client.generate(SEEDED);
    let text = '';
    let pieces = 0;
    for await (const piece of stream) {
      text += piece;
      if (++pieces === 3) {
        // Two idle connections on its replica first: least_conn alone would send the redial elsewhere.
        for (let i = 0; i < 2; i++) expect(await replicaOf(await open('open', resumeUrl(nginx.streamUrl, origin.name)))).toBe(origin);
        opened[0]!.terminate();
      }
    }
    expect(text).toBe(reference);
    expect(await stream.end).toMatchObject({ reason: 'length', usage: { completionTokens: STREAM_TOKENS } });
    expect(client.reconnects).toBe(1);
    expect(opened).toHaveLength(2);
    expect(new URL(opened[0]!.url).searchParams.has('replica')).toBe(false);
    expect(new URL(opened[1]!.url).searchParams.get('replica')).toBe(origin.name);
    expect(client.hello.replica).toBe(origin.name);
    expect(await origin.connectionIds()).toContain(client.hello.session);
    client.close();
    await closeAll();
  });

  it('sends a connection naming no replica, or one not in the map, to the pool (least_conn), where a resume fails', async () => {
    const { first, hello, origin } = await cutMidStream('stranded');
    const unknown = await open('open', resumeUrl(nginx.streamUrl, 'no-such-replica'));
    const unknownOn = await replicaOf(unknown);
    expect(unknownOn).toBeDefined();
    expect(unknownOn).not.toBe(origin);
    const plain = await open('open');
    const plainOn = await replicaOf(plain);
    expect(plainOn).toBeDefined();
    expect([origin, unknownOn]).not.toContain(plainOn);

    const fromSeq = ofRequest(first, 'stranded').length + 1;
    unknown.send({ t: 'resume', id: 'stranded', session: hello.session, token: hello.resumeToken!, fromSeq });
    expect(await unknown.next((frame) => frame.t === 'err')).toMatchObject({ t: 'err', code: 'resume_failed', details: { t: 'resume', id: 'stranded' } });

    // Its replica still has it: take it back there and end it, leaving nothing behind.
    const home = await open('open', resumeUrl(nginx.streamUrl, origin.name));
    home.send({ t: 'resume', id: 'stranded', session: hello.session, token: hello.resumeToken!, fromSeq });
    await home.next((frame) => 'id' in frame && frame.id === 'stranded');
    home.send({ t: 'cancel', id: 'stranded' });
    expect((await home.request('stranded')).at(-1)).toMatchObject({ t: 'end' });
    await closeAll();
  });

  it('drains a replica on SIGTERM: /readyz 503 first, nginx steers new connections away, its running stream finishes', async () => {
    const victim = replicas[2]!;
    const opened = [await open('open'), await open('open'), await open('open')];
    const onVictim = await (async () => {
      for (const socket of opened) if ((await replicaOf(socket)) === victim) return socket;
      throw new Error('no connection landed on the replica to drain');
    })();
    opened.forEach((socket, i) => startStream(socket, `drain-${i}`));
    const victimStream = `drain-${opened.indexOf(onVictim)}`;
    await onVictim.next((frame) => frame.t === 'tok' && frame.id === victimStream);

    const signalledAt = performance.now();
    const signalledAtEpoch = Date.now();
    victim.signal('SIGTERM');
    await waitFor(async () => (await victim.readyzStatus()) === 503, 10_000, 'the drained replica answering /readyz 503');
    const readyz503Ms = performance.now() - signalledAt;
    expect(await victim.readyz()).toEqual({ status: 'shutting_down' });

    // New connections keep coming: every one is served, none by the draining replica. Each is
    // closed at once so nginx logs it, until the log shows nginx met the drain (503; 502 once the
    // replica is gone) and moved on.
    const victimTried = (): { startedAtMs: number } | undefined =>
      nginx.accessLog().find((entry) => entry.startedAtMs >= signalledAtEpoch - 5 && entry.tries.some((tried) => tried.port === victim.port && ['503', '502'].includes(tried.status)));
    let newConnections = 0;
    while (!victimTried() && newConnections < 20) {
      const socket = await open('open');
      newConnections++;
      expect(await replicaOf(socket, replicas.filter((replica) => replica !== victim))).toBeDefined();
      socket.close();
      await waitFor(() => socket.isClosed, 5000, 'the new connection closed');
    }
    const steered = await waitFor(victimTried, 5000, "nginx's log of a new connection moved off the draining replica");
    for (const entry of nginx.accessLog().filter((line) => line.startedAtMs >= signalledAtEpoch - 5)) expect(entry.status).toBe(101);

    const end = await onVictim.next(isTerminal(victimStream), SHUTDOWN_GRACE_MS);
    const streamDoneMs = performance.now() - signalledAt;
    expect(end).toMatchObject({ t: 'end', reason: 'length', usage: { completionTokens: STREAM_TOKENS } });
    const closed = await onVictim.closed;
    expect(closed.code).toBe(1001);
    const exit = await victim.daemon.exited;
    const exitMs = performance.now() - signalledAt;
    expect(exit.code).toBe(0);
    expect(readyz503Ms).toBeLessThan(streamDoneMs);
    for (const socket of opened.filter((socket) => socket !== onVictim)) {
      const id = `drain-${opened.indexOf(socket)}`;
      expect((await socket.request(id)).at(-1)).toMatchObject({ t: 'end', reason: 'length' });
    }
    Object.assign(figures, {
      sigtermToReadyz503Ms: Math.round(readyz503Ms),
      sigtermToNginxSteeredMs: Math.round(steered.startedAtMs - signalledAtEpoch),
      newConnectionsDuringDrain: newConnections,
      sigtermToRunningStreamDoneMs: Math.round(streamDoneMs),
      sigtermToExitMs: Math.round(exitMs),
    });
    await closeAll();
  });

  it('kills a replica with SIGKILL mid-stream: its client gets a close at once, the others keep serving', async () => {
    const alive = replicas.filter((replica) => replica.daemon.running);
    const [survivor, victim] = [alive[0]!, alive[1]!];
    const opened = [await open('open'), await open('open')];
    const landed = await Promise.all(opened.map((socket) => replicaOf(socket, alive)));
    const onVictim = opened[landed.indexOf(victim)]!;
    const onSurvivor = opened[landed.indexOf(survivor)]!;
    startStream(onVictim, 'killed', 400);
    startStream(onSurvivor, 'survives');
    await onVictim.next((frame) => frame.t === 'tok' && frame.id === 'killed');

    const killedAt = performance.now();
    victim.signal('SIGKILL');
    const closed = await onVictim.closed;
    const closeMs = performance.now() - killedAt;
    // No close frame can come from a dead process: the client sees an abnormal close (1006),
    // its cue to reconnect, which nginx sends to a live replica.
    expect(closed.code).toBe(1006);
    expect(onVictim.frames.some(isTerminal('killed'))).toBe(false);
    expect((await onSurvivor.request('survives')).at(-1)).toMatchObject({ t: 'end', reason: 'length' });

    const reconnected = await open('open');
    expect(await replicaOf(reconnected, [survivor])).toBe(survivor);
    startStream(reconnected, 'after-kill', 8);
    expect((await reconnected.request('after-kill')).at(-1)).toMatchObject({ t: 'end', reason: 'length' });
    Object.assign(figures, { sigkillToClientCloseMs: Math.round(closeMs), sigkillCloseCode: closed.code });
  });
});
