import uWS from 'uWebSockets.js';
import type {
  Connection,
  ConnectionHandler,
  FaultSite,
  HttpExchange,
  HttpReply,
  HttpRequestInfo,
  HttpRoute,
  HttpServer,
  HttpStream,
  HttpStreamOptions,
  ListenOptions,
  SocketEndpoint,
  UpgradeDecision,
  UpgradeRequest,
} from './types.js';

/*
 * The only file that knows uWebSockets.js. Everything a request carries is copied out of `req`
 * synchronously: uWS invalidates `req` when the handler returns, and `res` once aborted.
 *
 * A throw out of any uWS callback ends the Node process, so every callback runs inside `guard`:
 * a fault is reported, and the one request or connection it happened in gets an answer (500, a
 * 1011 close) while everything else goes on.
 */

const STATUS_TEXT: Record<number, string> = {
  200: 'OK', 201: 'Created', 202: 'Accepted', 204: 'No Content', 304: 'Not Modified', 400: 'Bad Request', 401: 'Unauthorized',
  403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed', 408: 'Request Timeout', 409: 'Conflict', 413: 'Payload Too Large',
  426: 'Upgrade Required', 429: 'Too Many Requests', 500: 'Internal Server Error', 503: 'Service Unavailable',
};

const JSON_TYPE = { 'content-type': 'application/json' };
const INTERNAL_ERROR: HttpReply = { status: 500, headers: JSON_TYPE, body: '{"error":"internal","message":"the server failed to answer this request"}' };
const BAD_PATH: HttpReply = { status: 400, headers: JSON_TYPE, body: '{"error":"bad_request","message":"malformed percent-encoding in the path"}' };
const PAYLOAD_TOO_LARGE: HttpReply = { status: 413, headers: JSON_TYPE, body: '{"error":"payload_too_large","message":"request body too large"}' };
const UPGRADE_FAILED = { accept: false, status: 500, headers: JSON_TYPE, body: '{"error":"internal","message":"upgrade failed"}' } as const satisfies UpgradeDecision;

interface SocketData {
  handler: ConnectionHandler | undefined;
  open: ((connection: Connection) => ConnectionHandler) | undefined;
  remoteAddress: string;
  path: string;
  closed: boolean;
}

type Guard = (site: FaultSite, context: () => Record<string, string>, body: () => void, recover?: () => void) => void;

/** Starts the HTTP and WebSocket server; resolves once it listens. */
export function listen(options: ListenOptions): Promise<HttpServer> {
  const app = uWS.App();
  const sockets = new Set<uWS.WebSocket<SocketData>>();
  const guard = makeGuard(options);
  for (const endpoint of options.sockets) addSocketEndpoint(app, endpoint, sockets, guard);
  for (const route of options.routes) addRoute(app, route, options.maxBodyBytes, guard);
  addMethodNotAllowed(app, options, guard);
  return new Promise((resolve, reject) => {
    app.listen(options.host, options.port, (listenSocket) => {
      if (!listenSocket) return reject(new Error(`cannot listen on ${options.host}:${options.port}`));
      let listening = true;
      resolve({
        port: uWS.us_socket_local_port(listenSocket as unknown as uWS.us_socket),
        stopListening() {
          if (listening) uWS.us_listen_socket_close(listenSocket);
          listening = false;
        },
        closeAll() {
          for (const socket of [...sockets]) socket.close();
          app.close?.();
        },
        publish(topic, message, isBinary) {
          app.publish(topic, message, isBinary);
        },
      });
    });
  });
}

function makeGuard(options: ListenOptions): Guard {
  const report = (site: FaultSite, error: unknown, context: () => Record<string, string>): void => {
    try {
      options.faults.report({ site, error, context: safeContext(context) });
    } catch (reportError) {
      // The fault handler itself failed: stderr is all that is left, and the process must go on.
      console.error('fault handler failed', reportError, 'while reporting', error);
    }
  };
  return (site, context, body, recover) => {
    try {
      options.faults.inject?.(site, safeContext(context));
      body();
    } catch (error) {
      report(site, error, context);
      try {
        recover?.();
      } catch (recoverError) {
        report(site, recoverError, context);
      }
    }
  };
}

function safeContext(context: () => Record<string, string>): Record<string, string> {
  try {
    return context();
  } catch {
    return {};
  }
}

function addSocketEndpoint(app: uWS.TemplatedApp, endpoint: SocketEndpoint, sockets: Set<uWS.WebSocket<SocketData>>, guard: Guard): void {
  const socketContext = (ws: uWS.WebSocket<SocketData>) => (): Record<string, string> => {
    const data = ws.getUserData();
    return { path: data.path, remoteAddress: data.remoteAddress, ...data.handler?.describe?.() };
  };
  // A failed handler closes its own socket only; `end` on a closed socket is a no-op.
  const closeForFault = (ws: uWS.WebSocket<SocketData>) => (): void => {
    if (!ws.getUserData().closed) ws.end(1011, 'internal error');
  };
  app.ws<SocketData>(endpoint.pattern, {
    compression: uWS.DISABLED,
    maxPayloadLength: endpoint.maxPayloadLength,
    idleTimeout: endpoint.idleTimeoutS,
    maxBackpressure: endpoint.maxBackpressure,
    closeOnBackpressureLimit: false,
    sendPingsAutomatically: true,
    upgrade: (res, req, context) => {
      let aborted = false;
      res.onAborted(() => {
        aborted = true;
      });
      let answered = false;
      const finish = (decision: UpgradeDecision, request: UpgradeRequest, key: string, extensions: string): void => {
        // One answer only: after upgrade() the response object is gone, even if open() threw.
        if (aborted || answered) return;
        answered = true;
        res.cork(() => {
          if (!decision.accept) return writeReply(res, { status: decision.status, body: decision.body, headers: decision.headers ?? {} }, false);
          const data: SocketData = { handler: undefined, open: decision.open, remoteAddress: request.remoteAddress, path: request.path, closed: false };
          res.upgrade(data, key, decision.protocol ?? '', extensions, context);
        });
      };
      let request: UpgradeRequest | undefined;
      const describe = (): Record<string, string> => (request ? { path: request.path, remoteAddress: request.remoteAddress } : {});
      guard(
        'upgrade',
        describe,
        () => {
          const copied = copyUpgrade(res, req);
          request = copied;
          const key = req.getHeader('sec-websocket-key');
          const extensions = req.getHeader('sec-websocket-extensions');
          const decision = endpoint.upgrade(copied);
          if (!(decision instanceof Promise)) return finish(decision, copied, key, extensions);
          decision.then(
            (settled) => guard('upgrade', describe, () => finish(settled, copied, key, extensions), () => finish(UPGRADE_FAILED, copied, key, extensions)),
            (error: unknown) => guard('upgrade', describe, () => { throw error; }, () => finish(UPGRADE_FAILED, copied, key, extensions)),
          );
        },
        () => {
          if (aborted || answered) return;
          answered = true;
          res.cork(() => writeReply(res, UPGRADE_FAILED, false));
        },
      );
    },
    open: (ws) => {
      sockets.add(ws);
      const data = ws.getUserData();
      guard('open', socketContext(ws), () => {
        const open = data.open!;
        data.open = undefined;
        data.handler = open(wrapSocket(ws, data));
      }, closeForFault(ws));
    },
    message: (ws, message, isBinary) => guard('message', socketContext(ws), () => ws.getUserData().handler?.message(message, isBinary), closeForFault(ws)),
    drain: (ws) => guard('drain', socketContext(ws), () => ws.getUserData().handler?.drain(), closeForFault(ws)),
    close: (ws, code, message) => {
      sockets.delete(ws);
      const data = ws.getUserData();
      data.closed = true;
      guard('close', socketContext(ws), () => data.handler?.closed(code, Buffer.from(message).toString()));
    },
  });
}

function addRoute(app: uWS.TemplatedApp, route: HttpRoute, maxBodyBytes: number, guard: Guard): void {
  const paramNames = route.pattern.split('/').filter((part) => part.startsWith(':')).map((part) => part.slice(1));
  const handler = (headOnly: boolean) => (res: uWS.HttpResponse, req: uWS.HttpRequest): void => {
    const head = headOnly || (route.method === 'any' && req.getCaseSensitiveMethod() === 'HEAD');
    // Copied on first use, which is inside this callback: `req` is valid only until it returns.
    let described: Record<string, string> | undefined;
    const describe = (): Record<string, string> => (described ??= { method: req.getCaseSensitiveMethod(), path: req.getUrl(), remoteAddress: remoteAddressOf(res) });
    const exchange = new Exchange(res, guard, describe);
    const respond = (reply: HttpReply, closeConnection = false): void => {
      if (!exchange.claim()) return;
      res.cork(() => writeReply(res, reply, head, closeConnection));
    };
    // A failure after a streamed reply began cannot change its status: the connection is cut instead.
    const failed = (): void => (exchange.streaming ? exchange.cut() : respond(INTERNAL_ERROR));
    guard(
      'http',
      describe,
      () => {
        const { method, path, remoteAddress } = describe() as { method: string; path: string; remoteAddress: string };
        const params = decodeParams(req, paramNames);
        const request: HttpRequestInfo = {
          method,
          path,
          query: req.getQuery() ?? '',
          headers: copyHeaders(req),
          remoteAddress,
          params: params ?? {},
          body: new Uint8Array(0),
        };
        if (params === undefined) return respond(BAD_PATH);
        const run = (): void => {
          Promise.resolve()
            .then(() => route.handle(request, exchange))
            .then((reply) => {
              if (reply) return respond(reply);
              // Undefined promises a streamed reply; a route that neither streamed nor answered is a fault.
              if (!exchange.streaming) throw new Error(`route ${route.pattern} gave no reply`);
            })
            .catch((error: unknown) => guard('http', describe, () => { throw error; }, failed));
        };
        if (route.method === 'get' || route.method === 'options') return run();
        const limits = route.body;
        const tooLarge = (): void => respond(limits ? limits.refuse('too_large', request) : PAYLOAD_TOO_LARGE, true);
        const maxBytes = limits?.maxBytes ?? maxBodyBytes;
        // A declared length over the limit is refused before a byte of the body is read.
        if (Number(request.headers['content-length']) > maxBytes) return tooLarge();
        const timer = limits && setTimeout(() => guard('http', describe, () => respond(limits.refuse('timeout', request), true), failed), limits.timeoutMs);
        const stopTimer = (): void => clearTimeout(timer);
        exchange.onAborted(stopTimer);
        readBody(res, maxBytes, guard, describe, (body) => {
          stopTimer();
          if (body === undefined) return tooLarge();
          // Refused for its deadline already: the rest of the body arrived too late.
          if (exchange.answered) return;
          request.body = body;
          run();
        }, failed);
      },
      failed,
    );
  };
  const register = route.method === 'options' ? app.options.bind(app) : app[route.method].bind(app);
  register(route.pattern, handler(false));
  if (route.method === 'get') app.head(route.pattern, handler(true));
}

/**
 * One request's response: answered once, whole or streamed; abort listeners run once, guarded, when
 * the client leaves first. uWS invalidates `res` once aborted, so nothing touches it after.
 */
class Exchange implements HttpExchange {
  aborted = false;
  /** A whole reply was written or a stream began. */
  answered = false;
  streaming = false;
  private ended = false;
  private readonly listeners: (() => void)[] = [];

  constructor(private readonly res: uWS.HttpResponse, private readonly guard: Guard, private readonly describe: () => Record<string, string>) {
    res.onAborted(() => {
      this.aborted = true;
      for (const listener of this.listeners.splice(0)) guard('http', describe, listener);
    });
  }

  /** True (once) when the reply may be written now. */
  claim(): boolean {
    if (this.aborted || this.answered) return false;
    this.answered = true;
    return true;
  }

  onAborted(listener: () => void): void {
    if (this.aborted) this.guard('http', this.describe, listener);
    else if (!this.ended) this.listeners.push(listener);
  }

  /** Drops the connection of a streamed reply that cannot go on. */
  cut(): void {
    if (this.aborted || this.ended) return;
    this.ended = true;
    this.res.close();
  }

  stream(status: number, headers: Record<string, string>, options: HttpStreamOptions): HttpStream {
    if (!this.claim()) throw new Error(this.aborted ? 'the client is gone' : 'the reply was already written');
    this.streaming = true;
    const { res } = this;
    /** Bytes handed to uWS since a write could not go out at once. */
    let backlog = 0;
    const write = (chunk: string): boolean => {
      let ok = true;
      res.cork(() => {
        ok = res.write(chunk);
      });
      return ok;
    };
    res.onWritable(() => {
      this.guard('http', this.describe, () => {
        if (this.aborted || this.ended) return;
        // uWS sends what it buffered only when more is written: the filler flushes it.
        if (!write(options.filler)) return;
        backlog = 0;
        options.onDrain();
      });
      return true;
    });
    res.cork(() => {
      res.writeStatus(statusLine(status));
      for (const [name, value] of Object.entries(headers)) res.writeHeader(name, value);
    });
    return {
      write: (chunk) => {
        if (this.aborted || this.ended) return;
        // uWS buffers what the socket cannot take (it never drops). A write that went through
        // found that buffer empty first: whatever was behind is out, so the backlog is too.
        if (!write(chunk)) {
          backlog += Buffer.byteLength(chunk);
        } else if (backlog > 0) {
          backlog = 0;
          options.onDrain();
        }
      },
      bufferedAmount: () => (this.aborted || this.ended ? 0 : backlog),
      end: (chunk) => {
        if (this.aborted || this.ended) return;
        this.ended = true;
        this.listeners.length = 0;
        res.cork(() => res.end(chunk ?? ''));
      },
      close: () => this.cut(),
    };
  }
}

/** A known path asked with a method it does not serve: `405` with the methods it does. */
function addMethodNotAllowed(app: uWS.TemplatedApp, options: ListenOptions, guard: Guard): void {
  const allowed = new Map<string, Set<string>>();
  const allow = (pattern: string, ...methods: string[]): void => {
    const set = allowed.get(pattern) ?? new Set<string>();
    for (const method of methods) set.add(method);
    allowed.set(pattern, set);
  };
  for (const endpoint of options.sockets) allow(endpoint.pattern, 'GET');
  const ownAny = new Set(options.routes.filter((route) => route.method === 'any').map((route) => route.pattern));
  for (const route of options.routes) {
    if (route.method === 'get') allow(route.pattern, 'GET', 'HEAD');
    else if (route.method !== 'any') allow(route.pattern, route.method === 'del' ? 'DELETE' : route.method === 'options' ? 'OPTIONS' : 'POST');
  }
  for (const [pattern, methods] of allowed) {
    if (ownAny.has(pattern)) continue;
    // A GET route on `/*` (the dashboard) would answer GET for every path: a path that has routes
    // but no GET route gets explicit GET and HEAD handlers, which outrank the wildcard.
    const ownGet = !methods.has('GET');
    const reply: HttpReply = {
      status: 405,
      headers: { ...JSON_TYPE, allow: [...methods].join(', ') },
      body: JSON.stringify({ error: 'method_not_allowed', message: `use ${[...methods].join(' or ')}` }),
    };
    const refuse = (res: uWS.HttpResponse, req: uWS.HttpRequest): void => {
      let aborted = false;
      res.onAborted(() => {
        aborted = true;
      });
      const head = req.getCaseSensitiveMethod() === 'HEAD';
      guard('http', () => ({ method: 'any', path: pattern }), () => {
        if (!aborted) res.cork(() => writeReply(res, reply, head));
      });
    };
    app.any(pattern, refuse);
    if (ownGet) app.get(pattern, refuse).head(pattern, refuse);
  }
}

function decodeParams(req: uWS.HttpRequest, names: readonly string[]): Record<string, string> | undefined {
  const params: Record<string, string> = {};
  for (const [index, name] of names.entries()) {
    try {
      params[name] = decodeURIComponent(req.getParameter(index) ?? '');
    } catch {
      return undefined;
    }
  }
  return params;
}

function readBody(
  res: uWS.HttpResponse,
  maxBytes: number,
  guard: Guard,
  describe: () => Record<string, string>,
  done: (body: Uint8Array | undefined) => void,
  fail: () => void,
): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let over = false;
  res.onData((chunk, isLast) => {
    guard('http', describe, () => {
      if (over) return;
      size += chunk.byteLength;
      if (size > maxBytes) {
        over = true;
        return done(undefined);
      }
      // uWS reuses the chunk's memory after this callback: copy it.
      chunks.push(Buffer.from(chunk.slice(0)));
      if (isLast) done(Buffer.concat(chunks));
    }, fail);
  });
}

function statusLine(status: number): string {
  return `${status} ${STATUS_TEXT[status] ?? 'Status'}`;
}

function writeReply(res: uWS.HttpResponse, reply: HttpReply, head: boolean, closeConnection = false): void {
  res.writeStatus(statusLine(reply.status));
  for (const [name, value] of Object.entries(reply.headers ?? {})) res.writeHeader(name, value);
  const body = reply.body ?? '';
  if (head) res.endWithoutBody(typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength, closeConnection);
  else res.end(body, closeConnection);
}

function copyUpgrade(res: uWS.HttpResponse, req: uWS.HttpRequest): UpgradeRequest {
  const protocolHeader = req.getHeader('sec-websocket-protocol');
  return {
    path: req.getUrl(),
    query: req.getQuery() ?? '',
    headers: copyHeaders(req),
    remoteAddress: remoteAddressOf(res),
    protocols: protocolHeader ? protocolHeader.split(',').map((entry) => entry.trim()).filter(Boolean) : [],
  };
}

function copyHeaders(req: uWS.HttpRequest): Record<string, string> {
  const headers: Record<string, string> = {};
  req.forEach((name, value) => {
    headers[name] = value;
  });
  return headers;
}

function remoteAddressOf(res: uWS.HttpResponse): string {
  return Buffer.from(res.getRemoteAddressAsText()).toString();
}

/** Wraps a uWS socket as the gateway's Connection. */
function wrapSocket(ws: uWS.WebSocket<SocketData>, data: SocketData): Connection {
  return {
    remoteAddress: data.remoteAddress,
    send(message, isBinary) {
      if (data.closed) return false;
      let status = 0;
      ws.cork(() => {
        status = ws.send(message, isBinary);
      });
      return status !== 2;
    },
    bufferedAmount: () => (data.closed ? 0 : ws.getBufferedAmount()),
    close(code, reason) {
      if (!data.closed) ws.end(code, reason);
    },
    terminate() {
      if (!data.closed) ws.close();
    },
    subscribe(topic) {
      if (!data.closed) ws.subscribe(topic);
    },
  };
}
