import net from 'node:net';

/*
 * HTTP/1.1 on a bare TCP socket, for what fetch never does: send a body slowly or never, lie about
 * its size, pipeline requests, or stop reading a reply. Responses are parsed from the bytes as
 * they came (Content-Length or chunked bodies).
 */

export interface WireResponse {
  status: number;
  /** Lower-case names. */
  headers: Record<string, string>;
  body: string;
}

export class WireClient {
  private chunks: Buffer[] = [];
  private waiters: (() => void)[] = [];
  /** True once the server closed the connection (or it failed). */
  ended = false;

  /** Bytes received so far. */
  length = 0;
  /** The last bytes received (up to 256), cheap to look at on every chunk. */
  tail = Buffer.alloc(0);

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.length += chunk.length;
      this.tail = Buffer.concat([this.tail, chunk]).subarray(-256);
      this.wake();
    });
    const end = (): void => {
      this.ended = true;
      this.wake();
    };
    socket.on('close', end);
    socket.on('error', end);
  }

  static connect(httpUrl: string): Promise<WireClient> {
    const { hostname, port } = new URL(httpUrl);
    return new Promise((resolve, reject) => {
      const socket = net.connect(Number(port), hostname, () => resolve(new WireClient(socket)));
      socket.once('error', reject);
    });
  }

  /** Every byte received so far (joined on each call: look at `length` or `tail` while many are coming). */
  get received(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Resolves once `check` holds, tried on each chunk received and on the close (or rejects at the deadline, naming `what`). */
  async until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${what} within ${timeoutMs} ms; received ${this.length} bytes, ending ${JSON.stringify(this.tail.toString())}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Waits for `count` complete responses and returns them. */
  async responses(count: number, timeoutMs = 10_000): Promise<WireResponse[]> {
    await this.until(() => parseResponses(this.received).length >= count, timeoutMs, `${count} complete responses`);
    return parseResponses(this.received).slice(0, count);
  }

  close(): void {
    this.socket.destroy();
  }

  private wake(): void {
    for (const wake of this.waiters.splice(0)) wake();
  }
}

/** The complete responses at the start of `bytes`, in order. */
export function parseResponses(bytes: Buffer): WireResponse[] {
  const responses: WireResponse[] = [];
  let at = 0;
  for (;;) {
    const headEnd = bytes.indexOf('\r\n\r\n', at);
    if (headEnd < 0) return responses;
    const [statusLine = '', ...lines] = bytes.subarray(at, headEnd).toString('latin1').split('\r\n');
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const status = Number(statusLine.split(' ')[1]);
    let bodyStart = headEnd + 4;
    if (headers['transfer-encoding'] === 'chunked') {
      const parts: Buffer[] = [];
      for (;;) {
        const sizeEnd = bytes.indexOf('\r\n', bodyStart);
        if (sizeEnd < 0) return responses;
        const size = parseInt(bytes.subarray(bodyStart, sizeEnd).toString('latin1'), 16);
        if (bytes.length < sizeEnd + 2 + size + 2) return responses;
        parts.push(bytes.subarray(sizeEnd + 2, sizeEnd + 2 + size));
        bodyStart = sizeEnd + 2 + size + 2;
        if (size === 0) break;
      }
      responses.push({ status, headers, body: Buffer.concat(parts).toString('utf8') });
    } else {
      const length = Number(headers['content-length'] ?? 0);
      if (bytes.length < bodyStart + length) return responses;
      responses.push({ status, headers, body: bytes.subarray(bodyStart, bodyStart + length).toString('utf8') });
      bodyStart += length;
    }
    at = bodyStart;
  }
}

/** The request head (and body) of one HTTP/1.1 request. */
export function requestBytes(method: string, path: string, headers: Record<string, string>, body = ''): string {
  const head = Object.entries({ host: 'localhost', ...headers }).map(([name, value]) => `${name}: ${value}\r\n`).join('');
  return `${method} ${path} HTTP/1.1\r\n${head}\r\n${body}`;
}

/**
 * The `data:` payloads of a text/event-stream body, event by event; comment lines (`:`) are
 * skipped. Throws when a line is neither, or an event is not terminated by a blank line.
 */
export function sseData(body: string): string[] {
  const events: string[] = [];
  let data: string[] = [];
  const lines = body.split('\n');
  if (lines.at(-1) !== '') throw new Error(`the stream does not end with a newline: ${JSON.stringify(body.slice(-40))}`);
  for (const line of lines.slice(0, -1)) {
    if (line === '') {
      if (data.length > 0) events.push(data.join('\n'));
      data = [];
    } else if (line.startsWith('data: ')) {
      data.push(line.slice('data: '.length));
    } else if (!line.startsWith(':')) {
      throw new Error(`not an SSE line: ${JSON.stringify(line)}`);
    }
  }
  if (data.length > 0) throw new Error('the last event is not terminated by a blank line');
  return events;
}
