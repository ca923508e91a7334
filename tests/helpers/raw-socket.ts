import WebSocket from 'ws';
import { decodeMessage, encodeFrame, type ServerFrame, type WireFormat } from '../../protocol/index.js';

/**
 * A WebSocket that speaks bytes, for tests that send what a well-behaved client never would
 * and read every frame the server sends back, in order.
 */
export class RawSocket {
  readonly frames: ServerFrame[] = [];
  /** performance.now() at which each frame arrived, parallel to `frames`. */
  readonly arrivals: number[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  /** True once the socket closed (no frame comes any more). */
  isClosed = false;
  private waiters: (() => void)[] = [];
  private readIndex = 0;

  private constructor(readonly socket: WebSocket, readonly format: WireFormat) {
    this.closed = new Promise((resolve) =>
      socket.on('close', (code, reason) => {
        this.isClosed = true;
        for (const wake of this.waiters.splice(0)) wake();
        resolve({ code, reason: reason.toString() });
      }),
    );
    socket.on('message', (data: Buffer, isBinary) => {
      const decoded = decodeMessage(isBinary ? new Uint8Array(data) : data.toString(), isBinary, format);
      if (!decoded.ok) throw new Error(`server sent an undecodable frame: ${decoded.reason}`);
      this.frames.push(decoded.value as ServerFrame);
      this.arrivals.push(performance.now());
      for (const wake of this.waiters.splice(0)) wake();
    });
  }

  /** Opens a socket and waits for `hello`. */
  static async open(url: string, options: { protocols?: string[]; format?: WireFormat; headers?: Record<string, string> } = {}): Promise<RawSocket> {
    const format = options.format ?? (options.protocols?.includes('llm.v1.json') ? 'json' : 'msgpack');
    const socket = new WebSocket(url, options.protocols ?? [], { headers: options.headers ?? {} });
    const raw = new RawSocket(socket, format);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
      socket.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
    });
    await raw.next((frame) => frame.t === 'hello');
    return raw;
  }

  send(frame: object): void {
    const encoded = encodeFrame(frame, this.format);
    this.socket.send(encoded, { binary: typeof encoded !== 'string' });
  }

  sendBytes(bytes: Uint8Array): void {
    this.socket.send(bytes, { binary: true });
  }

  sendText(text: string): void {
    this.socket.send(text, { binary: false });
  }

  /** The next frame (after those already read) that matches, waiting up to `timeoutMs`. */
  async next(match: (frame: ServerFrame) => boolean = () => true, timeoutMs = 10_000): Promise<ServerFrame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.readIndex < this.frames.length) {
        const frame = this.frames[this.readIndex++]!;
        if (match(frame)) return frame;
      }
      if (!(await this.nextEvent(deadline))) throw new Error(`no matching frame within ${timeoutMs} ms; got ${JSON.stringify(this.frames.slice(-5))}`);
    }
  }

  /** Every frame received for one request id, once its terminal frame arrived (whatever was read before). */
  async request(id: string, timeoutMs = 30_000): Promise<ServerFrame[]> {
    const isTerminal = (frame: ServerFrame): boolean => (frame.t === 'end' || frame.t === 'err') && 'id' in frame && frame.id === id;
    const deadline = Date.now() + timeoutMs;
    while (!this.frames.some(isTerminal)) {
      if (!(await this.nextEvent(deadline))) {
        throw new Error(`request ${id} got no terminal frame within ${timeoutMs} ms; its frames: ${JSON.stringify(this.frames.filter((frame) => 'id' in frame && frame.id === id).slice(-3))}`);
      }
    }
    return this.frames.filter((frame) => 'id' in frame && frame.id === id);
  }

  /**
   * Resolves once `check` holds, checked again as each frame arrives and when the socket closes;
   * reads nothing (`next` is not moved). Fails naming `what` after `timeoutMs`.
   */
  async until(check: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      if (!(await this.nextEvent(deadline))) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last frames ${JSON.stringify(this.frames.slice(-3)).slice(0, 400)}`);
    }
  }

  /** Waits for the next frame or the close: true, or false when the deadline came first (or had passed). */
  private nextEvent(deadline: number): Promise<boolean> {
    const left = deadline - Date.now();
    if (left <= 0) return Promise.resolve(false);
    // A closed socket sends nothing more: let the caller look once more, then time out.
    if (this.isClosed) return new Promise((resolve) => setTimeout(() => resolve(false), left));
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), left);
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  /** Arrival time of the first frame of type `t` for request `id`. */
  arrivalOf(t: ServerFrame['t'], id: string): number {
    const index = this.frames.findIndex((frame) => frame.t === t && 'id' in frame && frame.id === id);
    if (index < 0) throw new Error(`no ${t} frame for ${id}`);
    return this.arrivals[index]!;
  }

  close(): void {
    this.socket.close();
  }
}
