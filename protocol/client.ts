import { ConnectErrorCode, ErrorCode, Subprotocol } from './constants.js';
import { decodeMessage, encodeFrame, type WireFormat } from './codec.js';
import { ConnectError, connectErrorFromRefusal } from './connect-error.js';
import type { ErrFrame, HelloFrame, LimitsInfo, ModelInfo, ServerFrame } from './frames.js';
import { RECONNECT_DEFAULTS, isDrop, replicaGone, resumeUrl, retryWithBackoff, type ReconnectOptions } from './reconnect.js';
import { ChatStream, GenerationStream, LlmError, type ChatRequest, type GenerateRequest } from './streams.js';

export { ChatStream, GenerationStream, LlmError, type ChatEvent, type ChatRequest, type GenerateRequest } from './streams.js';

/**
 * An event handler whose parameter is checked both ways, so the DOM's and `ws`'s own handler types
 * (`(event: MessageEvent) => void`...) fit it.
 */
type Handler<E> = { bivarianceHack(event: E): void }['bivarianceHack'];

/**
 * The subset of the browser WebSocket API the client needs; `ws` in Node provides it too, so both
 * the global `WebSocket` and `ws`'s default export can be passed as is.
 */
export interface WebSocketLike {
  binaryType: string;
  readonly protocol: string;
  readonly readyState: number;
  send(data: Uint8Array | string): void;
  close(code?: number, reason?: string): void;
  onopen: Handler<unknown> | null;
  onmessage: Handler<{ data: unknown }> | null;
  onclose: Handler<{ code: number; reason: string }> | null;
  onerror: Handler<unknown> | null;
  /**
   * Node's `ws` event API, when there is one: the client listens for `'unexpected-response'` to
   * read the status and body of a refused upgrade. Browsers have none and hide both.
   */
  on?(event: string, listener: (...args: any[]) => void): unknown;
}

export type WebSocketConstructor = new (url: string, protocols?: string[], options?: { headers?: Record<string, string> }) => WebSocketLike;

export interface ConnectOptions {
  /** Wire format to ask for. Default: `msgpack`. */
  format?: WireFormat;
  /** API key; sent as a `bearer.<key>` subprotocol entry, which browsers allow. Default: none. */
  apiKey?: string;
  /** WebSocket implementation. Default: `globalThis.WebSocket` (pass `ws` on Node 20). */
  WebSocket?: WebSocketConstructor;
  /** Extra upgrade headers (Node implementations only; browsers ignore them). Default: none. */
  headers?: Record<string, string>;
  /** How long to wait for the server's `hello` before giving up with `unreachable`. Default: 10000 ms. */
  timeoutMs?: number;
  /**
   * After the connection drops (closed without a close handshake), reconnect with backoff and
   * resume the running streams where they stopped: no text is lost or repeated. Needs a server that
   * hands out resume tokens; `false` fails the streams with `connection_lost` at once. Default: on.
   */
  reconnect?: boolean | ReconnectOptions;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/** How long to try reconnecting when the server's `hello` gave a token but no window. */
const DEFAULT_RESUME_WINDOW_MS = 30_000;

/** The reply type of each request frame whose refusal the client can match to its caller. */
const REPLY_TO: Record<string, 'pong' | 'models'> = { ping: 'pong', models: 'models' };

/** Where a connected socket's frames and close go. */
interface SocketListener {
  receive(frame: ServerFrame): void;
  lost(code: number, reason: string): void;
}

/** How a client opens its next connection after a drop. */
interface Redial {
  options: Required<ReconnectOptions>;
  /**
   * Opens a connection, asking the balancer for `replica` when given; after its `hello`, its frames
   * and close go to what `onHello` returns.
   */
  open(onHello: (socket: WebSocketLike, hello: HelloFrame) => SocketListener, replica?: string): Promise<void>;
}

/**
 * A connection to the streaming endpoint. Create it with {@link connect}. When the connection
 * drops, the client reconnects and resumes its streams (see `ConnectOptions.reconnect`); calls made
 * meanwhile go out once it is back.
 */
export class LlmClient {
  /** Latest limits announced by the server. */
  limits: LimitsInfo;
  /** Times the connection dropped and the client got it back (its streams resumed). */
  reconnects = 0;
  private socket: WebSocketLike;
  private greeting: HelloFrame;
  private readonly streams = new Map<string, GenerationStream>();
  private readonly waiters: { type: 'pong' | 'models'; resolve: (frame: ServerFrame) => void; reject: (error: LlmError) => void }[] = [];
  private nextId = 0;
  /** Set once the connection is closed or lost: what every later call fails with. */
  private closedError: LlmError | undefined;
  /** While reconnecting: what to send once the connection is back, in order. */
  private outbox: (() => void)[] | undefined;

  /** @internal */
  constructor(socket: WebSocketLike, private readonly format: WireFormat, hello: HelloFrame, private readonly redial?: Redial) {
    this.socket = socket;
    this.greeting = hello;
    this.limits = hello.limits;
  }

  /** The server's `hello` frame (of the current connection, after a reconnect). */
  get hello(): HelloFrame {
    return this.greeting;
  }

  /** True while the client reconnects after a drop. */
  get reconnecting(): boolean {
    return this.outbox !== undefined;
  }

  /** Starts a generation; several may run at once on one connection. */
  generate(request: GenerateRequest): GenerationStream {
    const id = request.id ?? `r${++this.nextId}`;
    return this.open(new GenerationStream(id, (streamId) => this.send({ t: 'cancel', id: streamId })), { ...request, t: 'gen', id });
  }

  /**
   * Starts the model's reply to a conversation, rendered with the model's own chat template; it may
   * call the `tools` given (see ChatStream). Several may run at once on one connection.
   */
  chat(request: ChatRequest): ChatStream {
    const id = request.id ?? `r${++this.nextId}`;
    return this.open(new ChatStream(id, (streamId) => this.send({ t: 'cancel', id: streamId })), { ...request, t: 'chat', id });
  }

  /** Sends the frame that starts `stream`, unless it must fail at once. */
  private open<S extends GenerationStream>(stream: S, frame: { t: string; id: string }): S {
    const id = frame.id;
    if (this.closedError) {
      stream.fail(this.closedError);
      return stream;
    }
    // The server would refuse it without an id (so as not to end the running one): refuse here, where it is known.
    if (this.streams.has(id)) {
      stream.fail(new LlmError({ code: 'duplicate_id', message: `request "${id}" is already in flight`, details: { id } }));
      return stream;
    }
    // The server closes a connection (1009) on a frame over its limit, failing every stream on it:
    // refuse the one request here instead.
    const encoded = encodeFrame(frame, this.format);
    const bytes = typeof encoded === 'string' ? new TextEncoder().encode(encoded).byteLength : encoded.byteLength;
    if (bytes > this.limits.maxFrameBytes) {
      stream.fail(
        new LlmError({
          code: 'invalid_params',
          message: `request "${id}" encodes to ${bytes} bytes, over the server's maxFrameBytes (${this.limits.maxFrameBytes})`,
          details: { id, bytes, maxFrameBytes: this.limits.maxFrameBytes },
        }),
      );
      return stream;
    }
    this.streams.set(id, stream);
    this.begin(stream, frame);
    return stream;
  }

  /** Round-trip time to the server in milliseconds; rejects with `connection_lost` once the connection is gone. */
  async ping(): Promise<number> {
    const sent = Date.now();
    await this.request('pong', { t: 'ping', ts: sent });
    return Date.now() - sent;
  }

  /** Lists the server's models; rejects with `connection_lost` once the connection is gone. */
  async models(): Promise<ModelInfo[]> {
    const frame = await this.request('models', { t: 'models' });
    return frame.t === 'models' ? frame.models : [];
  }

  /** True once the connection is closed or lost; every call then fails with `connection_lost`. */
  get closed(): boolean {
    return this.closedError !== undefined;
  }

  /**
   * Closes the connection; the server cancels whatever is still running. Streams and calls still
   * pending fail at once with `connection_lost`, and so does every later call.
   */
  close(code = 1000, reason = ''): void {
    this.end(`connection closed by the client (${code}${reason ? ` ${reason}` : ''})`, code, reason);
    this.socket.close(code, reason);
  }

  /** @internal Where `socket`'s frames and close go; a socket the client has left says nothing more. */
  listen(socket: WebSocketLike): SocketListener {
    return {
      receive: (frame) => {
        if (socket === this.socket) this.receive(frame);
      },
      lost: (code, reason) => {
        if (socket === this.socket) this.lost(code, reason);
      },
    };
  }

  private receive(frame: ServerFrame): void {
    if (frame.t === 'err' && frame.details?.t === 'resume' && typeof frame.details.id === 'string') return this.resumeRefused(frame, frame.details.id);
    if ('id' in frame && typeof frame.id === 'string') {
      const stream = this.streams.get(frame.id);
      if (stream) {
        if (stream.handle(frame)) this.streams.delete(frame.id);
        return;
      }
    }
    if (frame.t === 'limits') this.limits = frame;
    // A refused ping or models frame is answered by an err naming the frame's type.
    const refused = frame.t === 'err' ? REPLY_TO[String(frame.details?.t)] : undefined;
    const index = this.waiters.findIndex((waiter) => waiter.type === (refused ?? frame.t));
    if (index < 0) return;
    const waiter = this.waiters.splice(index, 1)[0]!;
    if (frame.t === 'err') waiter.reject(new LlmError(frame));
    else waiter.resolve(frame);
  }

  /** The socket closed: a drop is reconnected; anything else fails what is pending with `connection_lost`. */
  private lost(code: number, reason: string): void {
    if (this.closedError) return;
    // The message keeps "connection closed": callers match it (the dashboard's playground does).
    const message = `connection closed (${code}${reason ? ` ${reason}` : ''})`;
    if (this.redial && this.greeting.resumeToken !== undefined && isDrop(code)) return this.reconnect(this.redial, message, code, reason);
    this.end(message, code, reason);
  }

  /** Tries to get a connection back within the server's resume window; gives up with `connection_lost`. */
  private reconnect(redial: Redial, message: string, code: number, reason: string): void {
    this.outbox ??= [];
    // Answers to pings and model lists sent on the dropped connection will not come.
    const error = lostError(message, code, reason);
    for (const waiter of this.waiters.splice(0)) waiter.reject(error);
    // The streams live on the replica of the last connection: ask the balancer for it, until it
    // turns out to be gone (then any replica answers, and a resume there fails as documented).
    let replica = this.greeting.replica;
    const attempt = (): Promise<void> =>
      redial.open((socket, hello) => this.reconnected(socket, hello), replica).catch((failure: unknown) => {
        if (replicaGone(failure)) replica = undefined;
        throw failure;
      });
    retryWithBackoff(attempt, {
      options: redial.options,
      deadline: Date.now() + (this.greeting.resumeWindowMs ?? DEFAULT_RESUME_WINDOW_MS),
      abandoned: () => this.closedError !== undefined,
    }).catch((failure: unknown) => this.end(`${message}; reconnecting failed: ${failure instanceof Error ? failure.message : String(failure)}`, code, reason));
  }

  /** A new connection said hello: resume every stream on it, then send what waited. */
  private reconnected(socket: WebSocketLike, hello: HelloFrame): SocketListener {
    const listener = this.listen(socket);
    if (this.closedError) {
      socket.close();
      return listener;
    }
    this.socket = socket;
    this.greeting = hello;
    this.limits = hello.limits;
    this.reconnects++;
    const waiting = this.outbox ?? [];
    this.outbox = undefined;
    for (const stream of this.streams.values()) {
      // Not started yet: its frame waits in the outbox.
      if (!stream.started) continue;
      const { session, resumeToken } = stream.started.hello;
      if (resumeToken === undefined) {
        this.streams.delete(stream.id);
        stream.fail(lostError('connection closed, and the server it ran on gave no resume token', 1006, ''));
        continue;
      }
      this.write({ t: 'resume', id: stream.id, session, token: resumeToken, fromSeq: stream.lastSeq + 1 });
    }
    for (const send of waiting) send();
    return listener;
  }

  /** A resume was refused: a stream of which nothing arrived is sent again; any other fails with the refusal. */
  private resumeRefused(frame: ErrFrame, id: string): void {
    const stream = this.streams.get(id);
    if (!stream) return;
    if (frame.code === ErrorCode.resumeFailed && stream.lastSeq === 0 && stream.started) {
      // The server does not have it (it never arrived, or was dropped) and the caller has nothing of it: no loss, no repeat.
      return this.begin(stream, stream.started.frame);
    }
    this.streams.delete(id);
    stream.fail(new LlmError(frame));
  }

  private end(message: string, closeCode: number, closeReason: string): void {
    if (this.closedError) return;
    const error = lostError(message, closeCode, closeReason);
    this.closedError = error;
    this.outbox = undefined;
    for (const stream of this.streams.values()) stream.fail(error);
    this.streams.clear();
    for (const waiter of this.waiters.splice(0)) waiter.reject(error);
  }

  /** Sends `frame` and waits for the next frame of `type`; rejects at once when closed. */
  private request(type: 'pong' | 'models', frame: object): Promise<ServerFrame> {
    if (this.closedError) return Promise.reject(this.closedError);
    const reply = new Promise<ServerFrame>((resolve, reject) => this.waiters.push({ type, resolve, reject }));
    this.send(frame);
    return reply;
  }

  /** Sends the frame that starts `stream`, noting the connection it goes out on: a resume names that one. */
  private begin(stream: GenerationStream, frame: object): void {
    this.send(frame, () => (stream.started = { frame, hello: this.greeting }));
  }

  /** Sends now, or once reconnected when the connection dropped; `sent` runs as it goes out. */
  private send(frame: object, sent?: () => void): void {
    const go = (): void => {
      this.write(frame);
      sent?.();
    };
    if (this.outbox) this.outbox.push(go);
    else go();
  }

  private write(frame: object): void {
    this.socket.send(encodeFrame(frame, this.format));
  }
}

function lostError(message: string, closeCode: number, closeReason: string): LlmError {
  return new LlmError({ code: ConnectErrorCode.connectionLost, message, details: { closeCode, closeReason } });
}

/** The slice of Node's `http.IncomingMessage` the client reads from a refused upgrade. */
interface RefusalResponse {
  statusCode?: number;
  statusMessage?: string;
  headers: Record<string, string | string[] | undefined>;
  on(event: string, listener: (chunk?: unknown) => void): unknown;
}

/** Most bytes of a refusal's body read; a longer one is cut there. */
const MAX_REFUSAL_BODY = 16 * 1024;

/** Reads a refused upgrade's status, `Retry-After` and body, then calls `done` once. */
function readRefusal(response: RefusalResponse, done: (error: ConnectError) => void): void {
  const decoder = new TextDecoder();
  let body = '';
  let size = 0;
  let finished = false;
  const finish = (): void => {
    if (finished) return;
    finished = true;
    const retryAfter = response.headers['retry-after'];
    done(connectErrorFromRefusal({
      status: response.statusCode ?? 0,
      statusText: response.statusMessage,
      body: body + decoder.decode(),
      retryAfter: Array.isArray(retryAfter) ? retryAfter[0] : retryAfter,
    }));
  };
  response.on('data', (chunk) => {
    if (size >= MAX_REFUSAL_BODY) return;
    const bytes = typeof chunk === 'string' ? new TextEncoder().encode(chunk) : (chunk as Uint8Array);
    const part = bytes.subarray(0, MAX_REFUSAL_BODY - size);
    size += part.byteLength;
    body += decoder.decode(part, { stream: true });
  });
  for (const event of ['end', 'close', 'error', 'aborted']) response.on(event, finish);
}

/** Why a socket failed before it opened, in words; `hidden`: the implementation cannot tell a refusal from no answer. */
function unreachableError(url: string, event: unknown, hidden: boolean): ConnectError {
  const detail = (event as { message?: unknown } | null)?.message;
  const why = typeof detail === 'string' && detail ? detail : 'no answer';
  const message = hidden
    ? `could not connect to ${url}: ${why}. This WebSocket implementation (like every browser's) does not expose the reason: ` +
      'the server may be down, or it refused the upgrade (API key, allowed origins, connection limit, shutting down)'
    : `could not connect to ${url}: ${why}`;
  return new ConnectError({ code: ConnectErrorCode.unreachable, message });
}

/**
 * Opens a connection and resolves once the server's `hello` arrived. Rejects with a
 * {@link ConnectError}: the code and status of a refused upgrade (read through `ws`'s
 * `'unexpected-response'`; browsers hide them and report `unreachable`), `unreachable` when no
 * server answered, `connection_lost` when the connection dropped before `hello`.
 */
export function connect(url: string, options: ConnectOptions = {}): Promise<LlmClient> {
  const format = options.format ?? 'msgpack';
  const reconnect = options.reconnect ?? true;
  const redial: Redial | undefined =
    reconnect === false
      ? undefined
      : { options: { ...RECONNECT_DEFAULTS, ...(reconnect === true ? {} : reconnect) }, open: (onHello, replica) => openSocket(resumeUrl(url, replica), options, onHello) };
  let client: LlmClient | undefined;
  return openSocket(url, options, (socket, hello) => {
    client = new LlmClient(socket, format, hello, redial);
    return client.listen(socket);
  }).then(() => client!);
}

/** Opens a socket and completes the handshake; after `hello`, its frames and close go to what `onHello` returns. */
function openSocket(url: string, options: ConnectOptions, onHello: (socket: WebSocketLike, hello: HelloFrame) => SocketListener): Promise<void> {
  const format = options.format ?? 'msgpack';
  const Socket = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (!Socket) return Promise.reject(new Error('no WebSocket implementation: pass options.WebSocket'));
  const protocols: string[] = [format === 'json' ? Subprotocol.json : Subprotocol.msgpack];
  if (options.apiKey) protocols.push(`bearer.${options.apiKey}`);
  let socket: WebSocketLike;
  try {
    socket = options.headers ? new Socket(url, protocols, { headers: options.headers }) : new Socket(url, protocols);
  } catch (error) {
    // A malformed URL or a refused scheme: nothing was sent.
    return Promise.reject(new ConnectError({ code: ConnectErrorCode.unreachable, message: `could not connect to ${url}: ${(error as Error).message}` }));
  }
  socket.binaryType = 'arraybuffer';
  const canReadRefusals = typeof socket.on === 'function';
  return new Promise((resolve, reject) => {
    let listener: SocketListener | undefined;
    let opened = false;
    /** A refused upgrade is being read: the error and close that aborting it causes say nothing new. */
    let refused = false;
    let settled = false;
    const fail = (error: ConnectError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(error);
    };
    const timeoutMs = options.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const timer = setTimeout(() => {
      fail(new ConnectError({ code: ConnectErrorCode.unreachable, message: `no hello from ${url} within ${timeoutMs} ms` }));
      socket.close();
    }, timeoutMs);
    if (canReadRefusals) {
      socket.on!('unexpected-response', (_request: unknown, response: RefusalResponse) => {
        refused = true;
        readRefusal(response, (error) => {
          fail(error);
          // Aborts the handshake (ws keeps it open while a listener reads the response).
          socket.close();
        });
      });
    }
    socket.onopen = () => {
      opened = true;
    };
    socket.onmessage = (event) => {
      const data = event.data as ArrayBuffer | Uint8Array | string;
      const decoded = decodeMessage(data, typeof data !== 'string', format);
      if (!decoded.ok) return;
      const frame = decoded.value as ServerFrame;
      if (listener) listener.receive(frame);
      else if (frame.t === 'hello' && !settled) {
        settled = true;
        clearTimeout(timer);
        listener = onHello(socket, frame);
        resolve();
      }
    };
    socket.onerror = (event) => {
      // After `open`, the close that follows says what happened.
      if (listener || opened || refused) return;
      fail(unreachableError(url, event, !canReadRefusals));
    };
    socket.onclose = (event) => {
      if (listener) return listener.lost(event.code, event.reason);
      if (refused) return;
      if (opened) {
        return fail(new ConnectError({
          code: ConnectErrorCode.connectionLost,
          message: `connection closed before hello (${event.code}${event.reason ? ` ${event.reason}` : ''})`,
        }));
      }
      fail(unreachableError(url, event, !canReadRefusals));
    };
  });
}
