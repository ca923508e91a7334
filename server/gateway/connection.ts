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
  /** The socket is gone; nothing can be sent any more. */
  closed(code: number): void;
}
