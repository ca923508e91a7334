/**
 * The attacker of the stall benchmark: WebSockets that send `gen` frames whose prompts sit at the
 * character limit, far over any context, each as fast as its request bucket allows: the whole burst
 * at once, then the refill rate, both read from the server's `hello` and `limits` frames. Whatever
 * comes back is counted and otherwise ignored; a request that gets a slot is cancelled.
 */
import WebSocket from 'ws';
import { decodeMessage, encodeFrame, Subprotocol, type LimitsInfo, type ServerFrame } from '../../protocol/index.js';

/** What all hostile connections together did and got. */
export interface HostileStats {
  /** Connections that got their `hello`. */
  opened: number;
  /** `gen` frames sent. */
  sent: number;
  /** Terminal answers to them: the err code, or `end:<reason>` for one that started. */
  answers: Record<string, number>;
  /** Anything else: err frames without an id, refused upgrades, closes by the server. */
  other: Record<string, number>;
}

export const newHostileStats = (): HostileStats => ({ opened: 0, sent: 0, answers: {}, other: {} });

const count = (counts: Record<string, number>, key: string): void => void (counts[key] = (counts[key] ?? 0) + 1);

/** Prose repeated to `chars` characters, one byte each. */
export function asciiPrompt(chars: number): string {
  const prose = 'Alice was beginning to get very tired of sitting by her sister on the bank, and of having nothing to do. ';
  return prose.repeat(Math.ceil(chars / prose.length)).slice(0, chars);
}

/**
 * Emoji, CJK and spaces at `chars` UTF-16 characters (what the server's limit counts) in at most
 * `maxBytes` of UTF-8: an emoji is 2 characters and 4 bytes, a CJK character 1 and 3, a space 1
 * and 1, so the mix averages 2 bytes a character; ASCII fills in wherever the bytes would not fit.
 */
export function mixedPrompt(chars: number, maxBytes: number): string {
  const pattern = ['🙂', '漢', ' ', '🚀', '字', ' ', '🎉', '語', ' '];
  const pieces: string[] = [];
  let length = 0;
  let bytes = 0;
  for (let i = 0; length < chars; i++) {
    const piece = pattern[i % pattern.length]!;
    const size = Buffer.byteLength(piece);
    // Take the piece only if the rest could still be filled with 1-byte characters.
    const fits = length + piece.length <= chars && bytes + size + (chars - length - piece.length) <= maxBytes;
    const chosen = fits ? piece : 'a';
    pieces.push(chosen);
    length += chosen.length;
    bytes += fits ? size : 1;
  }
  return pieces.join('');
}

/** An encoded `gen` frame whose id is patched in place for each send. */
export interface GenTemplate {
  bytes: Buffer;
  idOffset: number;
}

const ID_PLACEHOLDER = 'h000000';

export function genTemplate(prompt: string, maxFrameBytes: number): GenTemplate {
  const bytes = Buffer.from(encodeFrame({ t: 'gen', id: ID_PLACEHOLDER, prompt }, 'msgpack'));
  if (bytes.length > maxFrameBytes) throw new Error(`gen frame of ${bytes.length} bytes exceeds ${maxFrameBytes}`);
  return { bytes, idOffset: bytes.indexOf(ID_PLACEHOLDER) };
}

/** The two prompts the hostiles alternate, at the character limit, and their encoded frames. */
export function hostileTemplates(chars: number, maxFrameBytes: number): { prompts: { ascii: string; mixed: string }; templates: GenTemplate[] } {
  const prompts = { ascii: asciiPrompt(chars), mixed: mixedPrompt(chars, maxFrameBytes - 64) };
  return { prompts, templates: [genTemplate(prompts.ascii, maxFrameBytes), genTemplate(prompts.mixed, maxFrameBytes)] };
}

export interface HostileOptions {
  streamUrl: string;
  apiKey: string | undefined;
  /** Request refill per second; undefined: learned from the server's `limits` frames. */
  rps: number | undefined;
}

/** One hostile connection. */
export class Hostile {
  private readonly socket: WebSocket;
  private timer: NodeJS.Timeout | undefined;
  private stopping = false;
  private greeted = false;
  private capacity = 0;
  private credits = 0;
  /** Credits per millisecond; 0 until known. */
  private rate: number;
  /** resetMs of the `limits` frame the rate was learned from (the longest is the most precise). */
  private learnedFromMs = 0;
  private refilledAt = 0;
  private pausedUntil = 0;
  private nextId = 0;

  constructor(private readonly options: HostileOptions, private readonly templates: GenTemplate[], private readonly stats: HostileStats) {
    this.rate = (options.rps ?? 0) / 1000;
    const protocols = [Subprotocol.msgpack, ...(options.apiKey ? [`bearer.${options.apiKey}`] : [])];
    this.socket = new WebSocket(options.streamUrl, protocols, { perMessageDeflate: false });
    this.socket.on('message', (data, isBinary) => this.receive(data as Buffer, isBinary));
    this.socket.on('error', (error) => count(stats.other, `socket error: ${error.message}`));
    this.socket.on('close', (code, reason) => {
      if (this.greeted && !this.stopping) count(stats.other, `closed by the server: ${code} ${reason.toString()}`.trim());
      clearInterval(this.timer);
    });
  }

  /** Hangs up at once (a reset: the server drops what it has not read yet). */
  stop(): void {
    this.stopping = true;
    clearInterval(this.timer);
    this.socket.terminate();
  }

  private receive(data: Buffer, isBinary: boolean): void {
    const decoded = decodeMessage(data, isBinary, 'msgpack');
    if (!decoded.ok) return;
    const frame = decoded.value as ServerFrame;
    switch (frame.t) {
      case 'hello':
        this.greeted = true;
        this.stats.opened++;
        this.capacity = this.credits = frame.limits.requestsRemaining ?? 20; // no request bucket: a burst like the default's
        if (frame.limits.requestsRemaining === undefined && this.rate === 0) this.rate = 5 / 1000;
        this.refilledAt = performance.now();
        this.timer = setInterval(() => this.send(), 10);
        return this.send();
      case 'limits':
        return this.learn(frame);
      case 'queued':
      case 'start':
        return void this.socket.send(encodeFrame({ t: 'cancel', id: frame.id }, 'msgpack'));
      case 'end':
        return count(this.stats.answers, `end:${frame.reason}`);
      case 'err':
        if (frame.code === 'rate_limited') {
          this.credits = 0;
          this.pausedUntil = performance.now() + (frame.retryAfterMs ?? 1000);
        }
        return count(frame.id === undefined ? this.stats.other : this.stats.answers, frame.id === undefined ? `err without id: ${frame.code}` : frame.code);
    }
  }

  /** The refill rate from the bucket's deficit and the time until it is full again. */
  private learn(limits: LimitsInfo): void {
    if (this.options.rps !== undefined || limits.requestsRemaining === undefined || !limits.resetMs) return;
    const deficit = this.capacity - limits.requestsRemaining;
    if (deficit > 0 && limits.resetMs > this.learnedFromMs) {
      this.rate = deficit / limits.resetMs;
      this.learnedFromMs = limits.resetMs;
    }
  }

  /** Sends while credits last, keeping at most about one frame queued in the client. */
  private send(): void {
    const now = performance.now();
    this.credits = Math.min(this.capacity, this.credits + (now - this.refilledAt) * this.rate);
    this.refilledAt = now;
    while (this.credits >= 1 && now >= this.pausedUntil && this.socket.bufferedAmount < this.templates[0]!.bytes.length) {
      const template = this.templates[this.nextId % this.templates.length]!;
      const frame = Buffer.from(template.bytes);
      frame.write(`h${(this.nextId++).toString(36).padStart(ID_PLACEHOLDER.length - 1, '0')}`, template.idOffset, 'latin1');
      this.socket.send(frame, { binary: true });
      this.credits--;
      this.stats.sent++;
    }
  }
}
