import type { Connection, ConnectionHandler } from '../gateway/connection.js';

/** An HTTP request, copied out of the server library's short-lived objects. */
export interface HttpRequestInfo {
  method: string;
  path: string;
  query: string;
  headers: Record<string, string>;
  remoteAddress: string;
  /** Route parameters by name (`:name` in the pattern). */
  params: Record<string, string>;
  body: Uint8Array;
}

export interface HttpReply {
  status: number;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
}

export interface HttpRoute {
  method: 'get' | 'post' | 'del' | 'any';
  /** uWS-style pattern: `/api/models/:name/load`, or `/*`. */
  pattern: string;
  handle(request: HttpRequestInfo): HttpReply | Promise<HttpReply>;
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

export interface ListenOptions {
  host: string;
  port: number;
  /** Most request-body bytes read for any HTTP route. */
  maxBodyBytes: number;
  routes: HttpRoute[];
  sockets: SocketEndpoint[];
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
