import path from 'node:path';
import WebSocket from 'ws';
import { connect, type LlmClient, type WebSocketConstructor } from '../../protocol/index.js';
import { startServerProcess } from './server-process.js';
import { OutputTail, PieceClock, SAMPLING, ServerDiedError, type LiveStream, type PeerRequest, type PeerServer } from './peer-side.js';

/** How the service is started for the peer benchmark. */
export interface OurServerOptions {
  modelFile: string;
  slots: number;
  threads: number;
  /** Tokens of context per slot. */
  contextSize: number;
}

/** This service in a child process, driven over WebSocket. */
export interface OurServer extends PeerServer {
  /** Which node-llama-cpp engine it runs, from its `engine ready` log line, e.g. `native build, native CPU library`. */
  readonly engine: string;
}

/**
 * Starts this service (server/main.ts of this tree, in a child process) on one model file, and
 * drives it over WebSocket with the protocol's client, one connection per concurrent stream.
 * Limits that would refuse a benchmark's burst are lifted; the response cache is off (llama-server's
 * RAM prompt cache is off too); each piece of text gets a frame of its own (STREAM_COALESCE_MS=0),
 * as llama-server sends one event per piece.
 */
export async function startOurServer(options: OurServerOptions): Promise<OurServer> {
  const server = await startServerProcess(
    {
      MODELS_DIR: path.dirname(options.modelFile),
      DEFAULT_MODEL: path.basename(options.modelFile, '.gguf'),
      WATCH_MODELS: 'false',
      GPU: 'false',
      THREADS: String(options.threads),
      PARALLEL_SEQUENCES: String(options.slots),
      CONTEXT_SIZE: String(options.contextSize),
      STREAM_COALESCE_MS: '0',
      RESPONSE_CACHE_ENTRIES: '0',
      MAX_TOKENS_CEILING: String(options.contextSize),
      QUEUE_MAX: '1000',
      RATE_LIMIT_RPS: '1000',
      RATE_LIMIT_BURST: '10000',
      MAX_FRAMES_PER_SECOND: '10000',
      MAX_CONNECTIONS_PER_IP: '1000',
      LOG_TO_FILES: 'false',
      LOG_ACCESS: 'false',
      ADMIN_TOKEN: 'bench',
    },
    // The young generation `npm start` runs with (package.json), so memory compares as deployed.
    { stderr: 'capture', nodeFlags: ['--max-semi-space-size=1'] },
  );
  const tail = new OutputTail();
  server.child.stderr?.on('data', (chunk: Buffer) => tail.push(chunk));
  // Its warnings and errors say why a request failed; stderr says why the process died.
  const outputTail = (): string => [tail.toString(), ...server.logs.filter((record) => Number(record.level) >= 40).slice(-5).map((record) => JSON.stringify(record))].filter(Boolean).join('\n');
  let stopping = false;
  const died = server.exited.then(({ code, signal }) => {
    if (stopping) return new Promise<never>(() => undefined);
    throw new ServerDiedError('ours', `exit ${code ?? signal}`, outputTail());
  });
  died.catch(() => undefined); // raced by the measurements

  const clients: LlmClient[] = [];
  return {
    side: 'ours',
    pid: server.child.pid!,
    engine: describeEngine(server.logs.find((record) => record.msg === 'engine ready')?.engine),
    died,
    outputTail,
    async prepare(lanes) {
      while (clients.length < lanes) clients.push(await connect(server.streamUrl, { WebSocket: WebSocket as unknown as WebSocketConstructor }));
    },
    start(request, lane) {
      const client = clients[lane];
      if (!client) throw new Error(`no connection ${lane}: prepare() first`);
      return streamOn(client, request);
    },
    async stop() {
      stopping = true;
      for (const client of clients.splice(0)) client.close();
      await server.stop();
    },
  };
}

function describeEngine(engine: unknown): string {
  const { build, cpuVariant } = (engine ?? {}) as { build?: unknown; cpuVariant?: unknown };
  return typeof build === 'string' ? `${build} build${typeof cpuVariant === 'string' ? `, ${cpuVariant} CPU library` : ''}` : 'engine not reported';
}

function streamOn(client: LlmClient, request: PeerRequest): LiveStream {
  const clock = new PieceClock();
  const stream = client.generate({ prompt: request.prompt, maxTokens: request.maxTokens, seed: request.seed, ...SAMPLING });
  const done = (async () => {
    try {
      for await (const _piece of stream) clock.piece();
      const end = await stream.end;
      clock.finish();
      return { tokens: end.usage.completionTokens, promptTokens: end.usage.promptTokens, reason: end.reason };
    } catch (error) {
      clock.finish(error as Error);
      throw error;
    }
  })();
  done.catch(() => undefined); // awaited by the measurement that started it
  return {
    sentAt: clock.sentAt,
    pieceTimes: clock.pieceTimes,
    firstPiece: clock.firstPiece,
    done,
    cancel() {
      const at = performance.now();
      stream.cancel();
      return at;
    },
  };
}
