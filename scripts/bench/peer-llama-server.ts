import { spawn } from 'node:child_process';
import http from 'node:http';
import { OutputTail, PieceClock, SAMPLING, ServerDiedError, type LiveStream, type PeerOutcome, type PeerRequest, type PeerServer } from './peer-side.js';

/** How llama-server is started for the peer benchmark. */
export interface LlamaServerOptions {
  binary: string;
  modelFile: string;
  /** `-np`: slots decoded together (continuous batching). */
  slots: number;
  threads: number;
  /** Tokens of context per slot (llama-server's `-c` is shared by all slots: slots × this). */
  contextSize: number;
  /** Tokens every request bans (logit_bias false): see invalidUtf8Tokens. */
  bannedTokens?: readonly number[];
  /** Longest wait for the model to load. */
  timeoutMs?: number;
}

/** A llama-server process and its base URL, with its HTTP API driven like a client would. */
export interface LlamaServer extends PeerServer {
  readonly url: string;
  /** The command line it was started with. */
  readonly command: string;
  /** Token ids of `text` (POST /tokenize, no BOS), to size prompts. */
  tokenize(text: string): Promise<number[]>;
}

/**
 * Starts llama-server on loopback (port 0: it picks one and logs it) and resolves once it has
 * loaded the model and answers /health. The RAM prompt cache is off (`--cache-ram 0`), as the
 * service's response cache is; each slot still reuses its own prompt prefix, as the service's
 * sequences do.
 */
export async function startLlamaServer(options: LlamaServerOptions): Promise<LlamaServer> {
  const args = [
    '--model', options.modelFile, '--host', '127.0.0.1', '--port', '0',
    '--threads', String(options.threads), '--threads-batch', String(options.threads),
    '--parallel', String(options.slots), '--ctx-size', String(options.slots * options.contextSize),
    '--cache-ram', '0', '--no-webui',
  ];
  const command = `llama-server ${args.join(' ')}`;
  const child = spawn(options.binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const killChild = (): void => void child.kill('SIGKILL');
  process.once('exit', killChild);
  const tail = new OutputTail();
  let stopping = false;
  const exited = new Promise<string>((resolve) => {
    child.once('error', (error) => resolve(`could not start: ${error.message}`));
    child.once('exit', (code, signal) => {
      process.removeListener('exit', killChild);
      resolve(`exit ${code ?? signal}`);
    });
  });
  const died = exited.then((how) => {
    if (stopping) return new Promise<never>(() => undefined);
    throw new ServerDiedError('theirs', how, tail.toString());
  });
  died.catch(() => undefined); // raced by the measurements

  const url = new Promise<string>((resolve) => {
    let seen = '';
    const scan = (chunk: Buffer): void => {
      tail.push(chunk);
      seen = (seen + chunk.toString()).slice(-4096);
      const match = /listening on (http:\/\/[\d.]+:\d+)/.exec(seen);
      if (match) resolve(match[1]!);
    };
    child.stdout.on('data', scan);
    child.stderr.on('data', scan);
  });
  const timeoutMs = options.timeoutMs ?? 120_000;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`llama-server did not load the model within ${timeoutMs} ms; its last output:\n${tail.toString()}`)), timeoutMs);
  });
  let base: string;
  try {
    base = await Promise.race([url, died, timeout]);
    await Promise.race([waitHealthy(base), died, timeout]);
  } catch (error) {
    killChild();
    throw error;
  } finally {
    clearTimeout(timer);
  }

  const logitBias = (options.bannedTokens ?? []).map((id) => [id, false] as const);
  return {
    side: 'theirs',
    pid: child.pid!,
    url: base,
    command,
    died,
    outputTail: () => tail.toString(),
    prepare: async () => undefined, // every request opens its own HTTP connection
    start: (request) => streamCompletion(base, request, logitBias),
    async tokenize(text) {
      const body = JSON.parse(await postJson(base, '/tokenize', { content: text, add_special: false })) as { tokens?: number[] };
      if (!Array.isArray(body.tokens)) throw new Error(`llama-server /tokenize answered without tokens: ${JSON.stringify(body).slice(0, 200)}`);
      return body.tokens;
    },
    async stop() {
      stopping = true;
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const force = setTimeout(killChild, 10_000);
      await exited;
      clearTimeout(force);
    },
  };
}

/** Polls GET /health until it answers 200 (503 while the model loads). */
async function waitHealthy(base: string): Promise<void> {
  for (;;) {
    const status = await new Promise<number>((resolve) => {
      http.get(`${base}/health`, (response) => {
        response.resume();
        resolve(response.statusCode ?? 0);
      }).once('error', () => resolve(0));
    });
    if (status === 200) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function postJson(base: string, route: string, body: unknown): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = http.request(`${base}${route}`, { method: 'POST', headers: { 'content-type': 'application/json' } }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        if (response.statusCode === 200) resolve(text);
        else reject(new Error(`llama-server ${route} answered ${response.statusCode}: ${text.slice(0, 300)}`));
      });
      response.on('error', reject);
    });
    request.on('error', reject);
    request.end(JSON.stringify(body));
  });
}

/** One event of llama-server's /completion stream (non-OpenAI format). */
interface CompletionEvent {
  content?: string;
  stop?: boolean;
  tokens_predicted?: number;
  tokens_evaluated?: number;
  stop_type?: string;
  error?: { message?: string };
}

/**
 * POST /completion with `stream: true`, read as server-sent events; a piece is an event with
 * text. `ignore_eos` makes it generate exactly maxTokens. Cancelling destroys the request, as a
 * browser's or SDK's abort does: llama-server frees the slot when its next write fails.
 */
function streamCompletion(base: string, request: PeerRequest, logitBias: readonly (readonly [number, false])[]): LiveStream {
  const clock = new PieceClock();
  let tokens = 0;
  let promptTokens: number | undefined;
  let cancelled = false;
  let settle!: { resolve: (outcome: PeerOutcome) => void; reject: (error: Error) => void };
  const done = new Promise<PeerOutcome>((resolve, reject) => (settle = { resolve, reject }));
  done.catch(() => undefined); // awaited by the measurement that started it
  let finished = false;
  const finish = (outcome: PeerOutcome | Error): void => {
    if (finished) return; // the final event, then 'end', then 'close'
    finished = true;
    if (outcome instanceof Error) {
      clock.finish(outcome);
      settle.reject(outcome);
    } else {
      clock.finish();
      settle.resolve(outcome);
    }
  };
  const body = JSON.stringify({
    prompt: request.prompt,
    n_predict: request.maxTokens,
    seed: request.seed,
    temperature: SAMPLING.temperature,
    top_k: SAMPLING.topK,
    top_p: SAMPLING.topP,
    min_p: SAMPLING.minP,
    ignore_eos: true,
    logit_bias: logitBias,
    stream: true,
  });
  const onEvent = (event: CompletionEvent): void => {
    if (event.error) {
      finish(new Error(`llama-server stream error: ${event.error.message ?? JSON.stringify(event.error)}`));
      return;
    }
    if (typeof event.tokens_predicted === 'number') tokens = event.tokens_predicted;
    if (typeof event.tokens_evaluated === 'number') promptTokens = event.tokens_evaluated;
    if (event.content) clock.piece();
    if (event.stop) finish({ tokens, promptTokens, reason: event.stop_type ?? 'stop' });
  };
  // A connection per request (`agent: false`): a kept-alive one can be closed by the server just
  // as the next request goes out on it.
  const call = http.request(`${base}/completion`, { method: 'POST', agent: false, headers: { 'content-type': 'application/json' } }, (response) => {
    response.setEncoding('utf8');
    if (response.statusCode !== 200) {
      let text = '';
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => finish(new Error(`llama-server /completion answered ${response.statusCode}: ${text.slice(0, 300)}`)));
      return;
    }
    let buffered = '';
    response.on('data', (chunk: string) => {
      buffered += chunk;
      for (let end = buffered.indexOf('\n\n'); end >= 0; end = buffered.indexOf('\n\n')) {
        const block = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        for (const line of block.split('\n')) {
          if (!line.startsWith('data: ')) continue;
          try {
            onEvent(JSON.parse(line.slice(6)) as CompletionEvent);
          } catch (error) {
            finish(new Error(`llama-server sent an event that is not JSON: ${line.slice(0, 200)} (${(error as Error).message})`));
          }
        }
      }
    });
    response.on('end', () => finish(cancelled ? { tokens, promptTokens, reason: 'cancelled' } : new Error('llama-server ended the stream without a final event')));
    response.on('error', () => undefined); // reported through 'close' / the request
  });
  call.on('error', (error) => finish(cancelled ? { tokens, promptTokens, reason: 'cancelled' } : error));
  call.on('close', () => finish(cancelled ? { tokens, promptTokens, reason: 'cancelled' } : new Error('llama-server closed the connection mid-stream')));
  call.end(body);
  return {
    sentAt: clock.sentAt,
    pieceTimes: clock.pieceTimes,
    firstPiece: clock.firstPiece,
    done,
    cancel() {
      const at = performance.now();
      cancelled = true;
      call.destroy();
      return at;
    },
  };
}
