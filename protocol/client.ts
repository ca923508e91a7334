import { Subprotocol } from './constants.js';
import { decodeMessage, encodeFrame, type WireFormat } from './codec.js';
import type { EndFrame, ErrFrame, GenParams, HelloFrame, LimitsInfo, ModelInfo, ServerFrame } from './frames.js';

/** The subset of the browser WebSocket API the client needs; `ws` in Node provides it too. */
export interface WebSocketLike {
  binaryType: string;
  readonly protocol: string;
  readonly readyState: number;
  send(data: Uint8Array | string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

export type WebSocketConstructor = new (url: string, protocols?: string[], options?: unknown) => WebSocketLike;

export interface ConnectOptions {
  /** Wire format to ask for. Default: `msgpack`. */
  format?: WireFormat;
  /** API key; sent as a `bearer.<key>` subprotocol entry, which browsers allow. Default: none. */
  apiKey?: string;
  /** WebSocket implementation. Default: `globalThis.WebSocket` (pass `ws` on Node 20). */
  WebSocket?: WebSocketConstructor;
  /** Extra upgrade headers (Node implementations only; browsers ignore them). Default: none. */
  headers?: Record<string, string>;
}

/** What a generation asks for; `id` defaults to a fresh one. */
export interface GenerateRequest extends GenParams {
  prompt: string;
  model?: string;
  id?: string;
}

/** An `err` frame surfaced as an exception. */
export class LlmError extends Error {
  readonly code: string;
  readonly retryAfterMs: number | undefined;
  readonly details: Record<string, number | string> | undefined;
  constructor(frame: Pick<ErrFrame, 'code' | 'message' | 'retryAfterMs' | 'details'>) {
    super(`${frame.code}: ${frame.message}`);
    this.name = 'LlmError';
    this.code = frame.code;
    this.retryAfterMs = frame.retryAfterMs;
    this.details = frame.details;
  }
}

/** One generation: iterate it for text pieces; `end` resolves with the final frame. */
export class GenerationStream implements AsyncIterable<string> {
  readonly id: string;
  /** Resolves with the `end` frame; rejects with LlmError on an `err` frame or a lost connection. */
  readonly end: Promise<EndFrame>;
  /** Model that serves the request, once `start` arrived. */
  model: string | undefined;
  /** Last queue position reported, while queued. */
  queuePosition: number | undefined;
  private readonly pieces: string[] = [];
  private wake: (() => void) | undefined;
  private finished = false;
  private failure: LlmError | undefined;
  private settle!: { resolve: (frame: EndFrame) => void; reject: (error: LlmError) => void };

  constructor(id: string, private readonly sendCancel: (id: string) => void) {
    this.id = id;
    this.end = new Promise<EndFrame>((resolve, reject) => {
      this.settle = { resolve, reject };
    });
    // Callers that only iterate must not see an unhandled rejection from `end`.
    this.end.catch(() => undefined);
  }

  /** Asks the server to stop this generation; the stream then ends with reason `cancelled`. */
  cancel(): void {
    if (!this.finished) this.sendCancel(this.id);
  }

  /** @internal */
  handle(frame: ServerFrame): void {
    switch (frame.t) {
      case 'tok': this.pieces.push(frame.text); break;
      case 'queued': this.queuePosition = frame.position; break;
      case 'start': this.model = frame.model; this.queuePosition = undefined; break;
      case 'end': this.finished = true; this.settle.resolve(frame); break;
      case 'err': this.fail(new LlmError(frame)); break;
      default: return;
    }
    this.wake?.();
  }

  /** @internal */
  fail(error: LlmError): void {
    if (this.finished) return;
    this.finished = true;
    this.failure = error;
    this.settle.reject(error);
    this.wake?.();
  }

  /** Collects the whole text and the end frame. */
  async text(): Promise<{ text: string; end: EndFrame }> {
    let text = '';
    for await (const piece of this) text += piece;
    return { text, end: await this.end };
  }

  async *[Symbol.asyncIterator](): AsyncIterator<string> {
    for (;;) {
      if (this.pieces.length > 0) {
        yield this.pieces.shift()!;
        continue;
      }
      if (this.finished) {
        if (this.failure) throw this.failure;
        return;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }
}

/** A connection to the streaming endpoint. Create it with {@link connect}. */
export class LlmClient {
  /** The server's `hello` frame. */
  readonly hello: HelloFrame;
  /** Latest limits announced by the server. */
  limits: LimitsInfo;
  private readonly streams = new Map<string, GenerationStream>();
  private readonly waiters: { type: 'pong' | 'models'; resolve: (frame: ServerFrame) => void }[] = [];
  private nextId = 0;
  private closed = false;

  /** @internal */
  constructor(private readonly socket: WebSocketLike, private readonly format: WireFormat, hello: HelloFrame) {
    this.hello = hello;
    this.limits = hello.limits;
  }

  /** Starts a generation; several may run at once on one connection. */
  generate(request: GenerateRequest): GenerationStream {
    const id = request.id ?? `r${++this.nextId}`;
    const stream = new GenerationStream(id, (streamId) => this.send({ t: 'cancel', id: streamId }));
    if (this.closed) {
      stream.fail(new LlmError({ code: 'internal', message: 'connection closed' }));
      return stream;
    }
    this.streams.set(id, stream);
    this.send({ ...request, t: 'gen', id });
    return stream;
  }

  /** Round-trip time to the server in milliseconds. */
  async ping(): Promise<number> {
    const sent = Date.now();
    const reply = this.waitFor('pong');
    this.send({ t: 'ping', ts: sent });
    await reply;
    return Date.now() - sent;
  }

  /** Lists the server's models. */
  async models(): Promise<ModelInfo[]> {
    const reply = this.waitFor('models');
    this.send({ t: 'models' });
    const frame = await reply;
    return frame.t === 'models' ? frame.models : [];
  }

  /** Closes the connection; the server cancels whatever is still running. */
  close(code = 1000, reason = ''): void {
    this.socket.close(code, reason);
  }

  /** @internal */
  receive(frame: ServerFrame): void {
    if ('id' in frame && typeof frame.id === 'string') {
      const stream = this.streams.get(frame.id);
      if (stream) {
        stream.handle(frame);
        if (frame.t === 'end' || frame.t === 'err') this.streams.delete(frame.id);
        return;
      }
    }
    if (frame.t === 'limits') this.limits = frame;
    const index = this.waiters.findIndex((waiter) => waiter.type === frame.t);
    if (index >= 0) this.waiters.splice(index, 1)[0]!.resolve(frame);
  }

  /** @internal */
  lost(code: number, reason: string): void {
    this.closed = true;
    const error = new LlmError({ code: 'internal', message: `connection closed (${code}${reason ? ` ${reason}` : ''})` });
    for (const stream of this.streams.values()) stream.fail(error);
    this.streams.clear();
  }

  private waitFor(type: 'pong' | 'models'): Promise<ServerFrame> {
    return new Promise((resolve) => this.waiters.push({ type, resolve }));
  }

  private send(frame: object): void {
    this.socket.send(encodeFrame(frame, this.format));
  }
}

/** Opens a connection and resolves once the server's `hello` arrived. */
export function connect(url: string, options: ConnectOptions = {}): Promise<LlmClient> {
  const format = options.format ?? 'msgpack';
  const Socket = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (!Socket) return Promise.reject(new Error('no WebSocket implementation: pass options.WebSocket'));
  const protocols: string[] = [format === 'json' ? Subprotocol.json : Subprotocol.msgpack];
  if (options.apiKey) protocols.push(`bearer.${options.apiKey}`);
  const socket = options.headers ? new Socket(url, protocols, { headers: options.headers }) : new Socket(url, protocols);
  socket.binaryType = 'arraybuffer';
  return new Promise((resolve, reject) => {
    let client: LlmClient | undefined;
    socket.onmessage = (event) => {
      const data = event.data as ArrayBuffer | Uint8Array | string;
      const decoded = decodeMessage(data, typeof data !== 'string', format);
      if (!decoded.ok) return;
      const frame = decoded.value as ServerFrame;
      if (client) client.receive(frame);
      else if (frame.t === 'hello') resolve((client = new LlmClient(socket, format, frame)));
    };
    socket.onerror = () => {
      if (!client) reject(new Error(`could not connect to ${url}`));
    };
    socket.onclose = (event) => {
      if (client) client.lost(event.code, event.reason);
      else reject(new Error(`connection closed before hello (${event.code}${event.reason ? ` ${event.reason}` : ''})`));
    };
  });
}
