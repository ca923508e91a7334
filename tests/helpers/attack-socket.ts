import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import v8 from 'node:v8';
import vm from 'node:vm';
import WebSocket from 'ws';
import { decodeMessage, type ServerFrame } from '../../protocol/index.js';

/** The socket under a `ws` client, for tests that stop reading it. */
export function tcpOf(socket: WebSocket): net.Socket {
  return (socket as unknown as { _socket: net.Socket })._socket;
}

/** A forced full GC, or undefined where it cannot be had (then callers use looser bounds). */
export function fullGc(): (() => void) | undefined {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (exposed) return exposed;
  try {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as unknown;
    return typeof gc === 'function' ? (gc as () => void) : undefined;
  } catch {
    return undefined;
  }
}

/** heapUsed after a few full collections (or as it is, without gc). */
export async function settledHeap(gc: (() => void) | undefined): Promise<number> {
  for (let i = 0; i < 3; i++) {
    await new Promise((resolve) => setImmediate(resolve));
    gc?.();
  }
  return process.memoryUsage().heapUsed;
}

/**
 * A msgpack client that keeps nothing: it counts `err` frames and resolves pongs by `ts`, so
 * sending thousands of frames does not grow the heap that the memory check measures.
 */
export class CountingSocket {
  errors = 0;
  others = 0;
  private pongs = new Map<number, () => void>();

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data: Buffer, isBinary) => {
      const decoded = decodeMessage(new Uint8Array(data), isBinary, 'msgpack');
      if (!decoded.ok) throw new Error(`server sent an undecodable frame: ${decoded.reason}`);
      const frame = decoded.value as ServerFrame;
      if (frame.t === 'err') this.errors++;
      else if (frame.t === 'pong') this.pongs.get(frame.ts)?.();
      else this.others++;
    });
  }

  static async open(url: string): Promise<CountingSocket> {
    const socket = new WebSocket(url);
    const counting = new CountingSocket(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    return counting;
  }

  send(data: Uint8Array): void {
    this.socket.send(data, { binary: true });
  }

  /** Sends a ping after everything sent so far and resolves with its pong. */
  ping(ts: number, encoded: Uint8Array, timeoutMs = 10_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no pong ${ts} within ${timeoutMs} ms`)), timeoutMs);
      this.pongs.set(ts, () => {
        clearTimeout(timer);
        this.pongs.delete(ts);
        resolve();
      });
      this.send(encoded);
    });
  }

  close(): void {
    this.socket.close();
  }
}

/** A WebSocket over a bare TCP socket: the upgrade and the frames are written by hand. */
export interface HandRolledSocket {
  tcp: net.Socket;
  /** The server's HTTP response head. */
  head: string;
  /** Writes one masked frame, as every client must. */
  sendFrame(payload: Uint8Array, opcode?: number): void;
}

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** Performs the WebSocket upgrade by hand and checks Sec-WebSocket-Accept. */
export async function handRolledUpgrade(streamUrl: string, protocol = 'llm.v1.msgpack', timeoutMs = 5000): Promise<HandRolledSocket> {
  const url = new URL(streamUrl);
  const tcp = net.connect(Number(url.port), url.hostname);
  await new Promise<void>((resolve, reject) => {
    tcp.once('connect', () => resolve());
    tcp.once('error', reject);
  });
  const key = randomBytes(16).toString('base64');
  tcp.write(
    [
      `GET ${url.pathname} HTTP/1.1`,
      `Host: ${url.host}`,
      'Upgrade: websocket',
      'Connection: Upgrade',
      `Sec-WebSocket-Key: ${key}`,
      'Sec-WebSocket-Version: 13',
      `Sec-WebSocket-Protocol: ${protocol}`,
      '',
      '',
    ].join('\r\n'),
  );
  const head = await new Promise<string>((resolve, reject) => {
    let received = Buffer.alloc(0);
    const timer = setTimeout(() => reject(new Error('no upgrade response')), timeoutMs);
    const onData = (chunk: Buffer): void => {
      received = Buffer.concat([received, chunk]);
      const end = received.indexOf('\r\n\r\n');
      if (end < 0) return;
      clearTimeout(timer);
      tcp.off('data', onData);
      // Anything after the head (the hello frame) is left unread on purpose.
      tcp.pause();
      resolve(received.subarray(0, end).toString('latin1'));
    };
    tcp.on('data', onData);
  });
  const accept = createHash('sha1').update(key + WS_GUID).digest('base64');
  if (!head.startsWith('HTTP/1.1 101') || !head.includes(`Sec-WebSocket-Accept: ${accept}`)) {
    tcp.destroy();
    throw new Error(`upgrade refused or malformed: ${head.split('\r\n')[0]}`);
  }
  return {
    tcp,
    head,
    sendFrame(payload, opcode = 0x2) {
      const mask = randomBytes(4);
      const length = payload.length;
      const header =
        length < 126
          ? Buffer.from([0x80 | opcode, 0x80 | length])
          : length <= 0xffff
            ? Buffer.from([0x80 | opcode, 0x80 | 126, length >> 8, length & 0xff])
            : Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | 127]), Buffer.from(new BigUint64Array([BigInt(length)]).buffer).reverse()]);
      const body = Buffer.from(payload.map((byte, index) => byte ^ mask[index % 4]!));
      tcp.write(Buffer.concat([header, mask, body]));
    },
  };
}

/**
 * Checks the frames of one connection against what was sent: for every request id, its frames
 * follow `(queued* start tok*)? terminal` runs, nothing arrives for it after its last terminal,
 * and terminals plus duplicate_id refusals add up to the gens sent with that id.
 * Returns the violations found (empty when all is well).
 */
export function requestFrameViolations(frames: readonly ServerFrame[], gensSent: ReadonlyMap<string, number>): string[] {
  const problems: string[] = [];
  const state = new Map<string, 'idle' | 'queued' | 'running'>();
  const terminals = new Map<string, number>();
  const duplicates = new Map<string, number>();
  for (const frame of frames) {
    if (frame.t === 'err' && frame.code === 'duplicate_id') {
      if (frame.id !== undefined) problems.push(`duplicate_id err carries id "${frame.id}" (it would read as a terminal frame)`);
      const id = String(frame.details?.id);
      duplicates.set(id, (duplicates.get(id) ?? 0) + 1);
      continue;
    }
    if (!('id' in frame) || frame.id === undefined) continue;
    const id = frame.id;
    if (!gensSent.has(id)) {
      problems.push(`frame ${frame.t} for id "${id}" that no gen used`);
      continue;
    }
    const current = state.get(id) ?? 'idle';
    switch (frame.t) {
      case 'queued':
        if (current === 'running') problems.push(`"${id}": queued after start`);
        state.set(id, 'queued');
        break;
      case 'start':
        if (current === 'running') problems.push(`"${id}": second start in one run`);
        state.set(id, 'running');
        break;
      case 'tok':
        if (current !== 'running') problems.push(`"${id}": tok while ${current}${current === 'idle' ? ' (after its terminal frame?)' : ''}`);
        break;
      case 'end':
      case 'err':
        terminals.set(id, (terminals.get(id) ?? 0) + 1);
        state.set(id, 'idle');
        break;
      default:
        problems.push(`"${id}": unexpected ${(frame as ServerFrame).t} frame with an id`);
    }
  }
  for (const [id, sent] of gensSent) {
    const ended = (terminals.get(id) ?? 0) + (duplicates.get(id) ?? 0);
    if (ended !== sent) problems.push(`"${id}": ${sent} gen(s) sent but ${terminals.get(id) ?? 0} terminal frame(s) and ${duplicates.get(id) ?? 0} duplicate_id refusal(s)`);
    if ((state.get(id) ?? 'idle') !== 'idle') problems.push(`"${id}": left ${state.get(id)} with no terminal frame`);
  }
  return problems;
}
