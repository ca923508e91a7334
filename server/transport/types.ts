/*
 * The boundary between the server library and the rest of the service: what a request, a reply and
 * a WebSocket are to the gateway and the HTTP routes. Only transport/uws-server.ts implements it.
 */

/** An HTTP request, copied out of the server library's short-lived objects. */
export interface HttpRequestInfo {
  method: string;
  path: string;
  query: string;
  headers: Record<string, string>;
  remoteAddress: string;
  /** Route parameters by name (`:name` in the pattern), percent-decoded. */
  params: Record<string, string>;
  body: Uint8Array;
}

export interface HttpReply {
  status: number;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
}

export interface HttpRoute {
  /**
   * `get` routes answer `HEAD` too, without a body. `any` takes every method no other route of the
   * pattern takes (in place of the automatic `405`).
   */
  method: 'get' | 'post' | 'del' | 'options' | 'any';
  /** uWS-style pattern: `/api/models/:name/load`, or `/*`. */
  pattern: string;
  /** How much request body this route reads, and how long it waits for it; absent: the server's size limit and no deadline. */
  body?: BodyLimits;
  /**
   * The whole reply, or undefined when the route answers through `exchange.stream()` itself (which
   * it must then end).
   */
  handle(request: HttpRequestInfo, exchange: HttpExchange): HttpReply | undefined | Promise<HttpReply | undefined>;
}

/** Bounds on a route's request body: past them the connection gets the route's refusal and is closed. */
export interface BodyLimits {
  maxBytes: number;
  /** From the request's head to the body's last byte. */
  timeoutMs: number;
  /** The answer to a body over `maxBytes` (declared or sent), or one that did not arrive within `timeoutMs`. */
  refuse(reason: 'too_large' | 'timeout', request: HttpRequestInfo): HttpReply;
}

/** The live side of one HTTP request: whether its client is still there, and a streamed reply. */
export interface HttpExchange {
  /** True once the client closed the connection before the reply was complete. */
  readonly aborted: boolean;
  /** Runs once when the client closes the connection before the reply is complete. */
  onAborted(listener: () => void): void;
  /** Takes over the reply: its status and headers now, the body piece by piece (chunked). Once only. */
  stream(status: number, headers: Record<string, string>, options: HttpStreamOptions): HttpStream;
}

export interface HttpStreamOptions {
  /**
   * Bytes that may be sent between two chunks without changing what the client reads (an SSE
   * comment). The server library holds back what the socket could not take until something more is
   * written: this is written when the socket becomes writable again, so its buffer empties.
   */
  filler: string;
  /** The socket took everything written so far: `bufferedAmount()` is 0 again. */
  onDrain(): void;
}

/** A reply body written over time, never dropping a byte. */
export interface HttpStream {
  /** Appends to the body (corked); what the socket cannot take now is buffered. */
  write(chunk: string): void;
  /** Bytes written since the socket last could not take a write at once; 0 while it keeps up. */
  bufferedAmount(): number;
  /** Ends the body; nothing may be written after. */
  end(chunk?: string): void;
  /** Drops the connection without ending the body (the client sees it cut). */
  close(): void;
}

/** A WebSocket upgrade request, copied out before any await. */
export interface UpgradeRequest {
  path: string;
  query: string;
  headers: Record<string, string>;
  remoteAddress: string;
  /** Entries of Sec-WebSocket-Protocol, in order. */
  protocols: string[];
}

export type UpgradeDecision =
  | { accept: true; protocol: string | undefined; open(connection: Connection): ConnectionHandler }
  | { accept: false; status: number; body: string; headers?: Record<string, string> };

/** What the gateway needs of one WebSocket, whatever server library carries it. */
export interface Connection {
  readonly remoteAddress: string;
  /** Sends one message (corked); returns false when the socket is already closed. */
  send(message: Uint8Array | string, isBinary: boolean): boolean;
  /** Bytes queued in the socket that the peer has not taken yet. */
  bufferedAmount(): number;
  /** Closes gracefully with a close frame. */
  close(code: number, reason: string): void;
  /** Drops the connection at once, without a close handshake. */
  terminate(): void;
  /** Receives every message later published to `topic` (see HttpServer.publish). */
  subscribe(topic: string): void;
}

/** What the transport calls on the gateway for one open socket. */
export interface ConnectionHandler {
  message(data: ArrayBuffer, isBinary: boolean): void;
  /** The socket's send buffer shrank. */
  drain(): void;
  /** The socket is gone; nothing can be sent any more. `message` is the library's reason, if any. */
  closed(code: number, message: string): void;
  /** Who this connection is, for the error log when one of its callbacks fails. */
  describe?(): Record<string, string>;
}

export interface SocketEndpoint {
  pattern: string;
  /** Largest message accepted; a larger one closes the socket with 1009. */
  maxPayloadLength: number;
  /** Seconds without traffic before the socket is closed; pings are sent before that. */
  idleTimeoutS: number;
  /** Buffered bytes past which the library would drop sends; the gateway pauses well before. */
  maxBackpressure: number;
  upgrade(request: UpgradeRequest): UpgradeDecision | Promise<UpgradeDecision>;
}

/** Which kind of library callback a fault happened in. */
export type FaultSite = 'http' | 'upgrade' | 'open' | 'message' | 'drain' | 'close' | 'timer';

/** A throw or rejection caught at the transport edge (or in a timer the gateway started). */
export interface Fault {
  site: FaultSite;
  error: unknown;
  /** What the log needs to find the request: method and path, remote address, session id. */
  context: Record<string, string>;
}

/** Where contained faults go: the error log and a metric. */
export interface FaultSink {
  /** Told of every fault caught at the edge, after the request or connection got its answer. */
  report(fault: Fault): void;
  /** Test-only: runs first inside every guarded callback; a throw from it is handled as a fault. */
  inject?: ((site: FaultSite, context: Record<string, string>) => void) | undefined;
}

export interface ListenOptions {
  host: string;
  port: number;
  /** Most request-body bytes read for any HTTP route. */
  maxBodyBytes: number;
  routes: HttpRoute[];
  sockets: SocketEndpoint[];
  faults: FaultSink;
}

/** A listening server. */
export interface HttpServer {
  readonly port: number;
  /** Stops accepting connections; open ones stay. */
  stopListening(): void;
  /** Closes every remaining socket at once. */
  closeAll(): void;
  /** Sends one message to every socket subscribed to `topic`; encoded once, whatever the count. */
  publish(topic: string, message: Uint8Array | string, isBinary: boolean): void;
}
