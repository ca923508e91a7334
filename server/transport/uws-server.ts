import uWS from 'uWebSockets.js';
import type { ConnectionHandler } from '../gateway/connection.js';
import type { HttpReply, HttpRequestInfo, HttpRoute, HttpServer, ListenOptions, SocketEndpoint, UpgradeDecision, UpgradeRequest } from './types.js';

/*
 * The only file that knows uWebSockets.js. Everything a request carries is copied out of `req`
 * synchronously: uWS invalidates `req` when the handler returns, and `res` once aborted.
 */

const STATUS_TEXT: Record<number, string> = {
  200: 'OK', 201: 'Created', 202: 'Accepted', 204: 'No Content', 304: 'Not Modified', 400: 'Bad Request', 401: 'Unauthorized',
  403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed', 409: 'Conflict', 413: 'Payload Too Large',
  426: 'Upgrade Required', 429: 'Too Many Requests', 500: 'Internal Server Error', 503: 'Service Unavailable',
};

interface SocketData {
  handler: ConnectionHandler | undefined;
  open: ((connection: import('../gateway/connection.js').Connection) => ConnectionHandler) | undefined;
  remoteAddress: string;
  closed: boolean;
}

/** Starts the HTTP and WebSocket server; resolves once it listens. */
export function listen(options: ListenOptions): Promise<HttpServer> {
  const app = uWS.App();
  const sockets = new Set<uWS.WebSocket<SocketData>>();
  for (const endpoint of options.sockets) addSocketEndpoint(app, endpoint, sockets);
  for (const route of options.routes) addRoute(app, route, options.maxBodyBytes);
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

function addSocketEndpoint(app: uWS.TemplatedApp, endpoint: SocketEndpoint, sockets: Set<uWS.WebSocket<SocketData>>): void {
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
      const request = copyUpgrade(res, req);
      const key = req.getHeader('sec-websocket-key');
      const extensions = req.getHeader('sec-websocket-extensions');
      let answered = false;
      const finish = (decision: UpgradeDecision): void => {
        // One answer only: after upgrade() the response object is gone, even if open() threw.
        if (aborted || answered) return;
        answered = true;
        res.cork(() => {
          if (!decision.accept) return writeReply(res, { status: decision.status, body: decision.body, headers: decision.headers ?? {} });
          const data: SocketData = { handler: undefined, open: decision.open, remoteAddress: request.remoteAddress, closed: false };
          res.upgrade(data, key, decision.protocol ?? '', extensions, context);
        });
      };
      try {
        const decision = endpoint.upgrade(request);
        if (decision instanceof Promise) decision.then(finish, () => finish({ accept: false, status: 500, body: 'upgrade failed' }));
        else finish(decision);
      } catch {
        finish({ accept: false, status: 500, body: 'upgrade failed' });
      }
    },
    open: (ws) => {
      sockets.add(ws);
      const data = ws.getUserData();
      try {
        data.handler = openHandler(ws, data);
      } catch {
        // A handler that cannot start must not take the process down: close this socket only.
        ws.end(1011, 'internal error');
      }
      data.open = undefined;
    },
    message: (ws, message, isBinary) => ws.getUserData().handler?.message(message, isBinary),
    drain: (ws) => ws.getUserData().handler?.drain(),
    close: (ws, code) => {
      sockets.delete(ws);
      const data = ws.getUserData();
      data.closed = true;
      data.handler?.closed(code);
    },
  });
}

function addRoute(app: uWS.TemplatedApp, route: HttpRoute, maxBodyBytes: number): void {
  const paramNames = route.pattern.split('/').filter((part) => part.startsWith(':')).map((part) => part.slice(1));
  app[route.method](route.pattern, (res, req) => {
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
    });
    const request: HttpRequestInfo = {
      method: req.getCaseSensitiveMethod(),
      path: req.getUrl(),
      query: req.getQuery() ?? '',
      headers: copyHeaders(req),
      remoteAddress: remoteAddressOf(res),
      params: Object.fromEntries(paramNames.map((name, index) => [name, decodeURIComponent(req.getParameter(index) ?? '')])),
      body: new Uint8Array(0),
    };
    const respond = (reply: HttpReply): void => {
      if (!aborted) res.cork(() => writeReply(res, reply));
    };
    const run = (): void => {
      Promise.resolve()
        .then(() => route.handle(request))
        .then(respond, () => respond({ status: 500, headers: { 'content-type': 'application/json' }, body: '{"error":"internal"}' }));
    };
    if (request.method === 'GET' || request.method === 'HEAD') return run();
    readBody(res, maxBodyBytes, (body) => {
      if (body === undefined) return respond({ status: 413, body: 'request body too large' });
      request.body = body;
      run();
    });
  });
}

function readBody(res: uWS.HttpResponse, maxBytes: number, done: (body: Uint8Array | undefined) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let tooLarge = false;
  res.onData((chunk, isLast) => {
    if (tooLarge) return;
    size += chunk.byteLength;
    if (size > maxBytes) {
      tooLarge = true;
      return done(undefined);
    }
    // uWS reuses the chunk's memory after this callback: copy it.
    chunks.push(Buffer.from(chunk.slice(0)));
    if (isLast) done(Buffer.concat(chunks));
  });
}

function writeReply(res: uWS.HttpResponse, reply: HttpReply): void {
  res.writeStatus(`${reply.status} ${STATUS_TEXT[reply.status] ?? 'Status'}`);
  for (const [name, value] of Object.entries(reply.headers ?? {})) res.writeHeader(name, value);
  res.end(reply.body ?? '');
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

/** Wraps a uWS socket as the gateway's Connection and opens the endpoint's handler on it. */
function openHandler(ws: uWS.WebSocket<SocketData>, data: SocketData): ConnectionHandler {
  return data.open!({
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
  });
}
