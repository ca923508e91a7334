import WebSocket from 'ws';
import { decodeMessage, encodeFrame, type ServerFrame, type WireFormat } from '../../protocol/index.js';

/**
 * A WebSocket that speaks bytes, for tests that send what a well-behaved client never would
 * and read every frame the server sends back, in order.
 */
export class RawSocket {
  readonly frames: ServerFrame[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private waiters: (() => void)[] = [];
  private readIndex = 0;

  private constructor(readonly socket: WebSocket, readonly format: WireFormat) {
    this.closed = new Promise((resolve) => socket.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    socket.on('message', (data: Buffer, isBinary) => {
      const decoded = decodeMessage(isBinary ? new Uint8Array(data) : data.toString(), isBinary, format);
      if (!decoded.ok) throw new Error(`server sent an undecodable frame: ${decoded.reason}`);
      this.frames.push(decoded.value as ServerFrame);
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
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching frame within ${timeoutMs} ms; got ${JSON.stringify(this.frames.slice(-5))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Every frame received for one request id, once its terminal frame arrived. */
  async request(id: string, timeoutMs = 30_000): Promise<ServerFrame[]> {
    await this.next((frame) => (frame.t === 'end' || frame.t === 'err') && 'id' in frame && frame.id === id, timeoutMs);
    return this.frames.filter((frame) => 'id' in frame && frame.id === id);
  }

  close(): void {
    this.socket.close();
  }
}
