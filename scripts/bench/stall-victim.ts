/**
 * The victim of the stall benchmark: one ordinary client streaming long generations back to back
 * through protocol/'s client, timing every `tok` frame as it arrives.
 */
import WebSocket from 'ws';
import { connect, LlmError, type GenerationStream, type LlmClient, type WebSocketConstructor } from '../../protocol/index.js';

/** What the victim records into (the current phase's figures). */
export interface VictimSamples {
  /** Time between consecutive `tok` frames of one generation, as received. */
  gapsMs: number[];
  /** From sending `gen` to its first `tok` frame. */
  ttftMs: number[];
  /** `tok` frames received (one per token on a server with STREAM_COALESCE_MS=0). */
  tokFrames: number;
  /** Generations that failed, by err code. */
  errors: Record<string, number>;
}

export interface VictimOptions {
  streamUrl: string;
  apiKey: string | undefined;
  /** Local address to connect from: a second loopback address keeps the victim out of the hostiles' per-address cap. */
  localAddress: string | undefined;
  /** Asked for per generation; lowered to what the context holds when the server says it is too much. */
  maxTokens: number;
}

/** `ws`, connecting from a given local address. */
function socketFrom(localAddress: string | undefined): WebSocketConstructor {
  if (localAddress === undefined) return WebSocket as unknown as WebSocketConstructor;
  return class extends WebSocket {
    constructor(url: string, protocols?: string[], options?: WebSocket.ClientOptions) {
      super(url, protocols, { ...options, localAddress });
    }
  } as unknown as WebSocketConstructor;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export class Victim {
  private stopped = false;
  private current: GenerationStream | undefined;
  /** When the generation in flight was sent, and when its last `tok` frame came (0: none yet). */
  private sentAt = 0;
  private lastTokAt = 0;
  private readonly done: Promise<void>;

  private constructor(private client: LlmClient, private readonly options: VictimOptions, private readonly sink: () => VictimSamples | undefined) {
    this.done = this.loop();
  }

  static async start(options: VictimOptions, sink: () => VictimSamples | undefined): Promise<Victim> {
    return new Victim(await Victim.open(options), options, sink);
  }

  /** The server's limits as the victim's `hello` announced them. */
  get limits(): LlmClient['limits'] {
    return this.client.hello.limits;
  }

  /**
   * Counts the wait still open at the end of a phase, up to now: the gap since the last `tok`
   * frame, or the time to a first one that has not come yet. A frozen stream thus shows.
   */
  closePhase(samples: VictimSamples): void {
    const now = performance.now();
    // The next phase counts the rest of the wait from here.
    if (this.lastTokAt > 0) {
      samples.gapsMs.push(now - this.lastTokAt);
      this.lastTokAt = now;
    } else if (this.sentAt > 0) {
      samples.ttftMs.push(now - this.sentAt);
      this.sentAt = now;
    }
  }

  /** Cancels the generation in flight; a server that does not answer within 5 s is hung up on. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.current?.cancel();
    await Promise.race([this.done, sleep(5000)]);
    this.client.close();
    await this.done;
  }

  private static open(options: VictimOptions): Promise<LlmClient> {
    return connect(options.streamUrl, { WebSocket: socketFrom(options.localAddress), apiKey: options.apiKey });
  }

  private async loop(): Promise<void> {
    let maxTokens = Math.min(this.options.maxTokens, this.client.hello.limits.maxTokensCeiling);
    for (let round = 0; !this.stopped; round++) {
      this.sentAt = performance.now();
      this.lastTokAt = 0;
      const stream = (this.current = this.client.generate({ prompt: `${round}. Alice was beginning to get very tired of sitting by her sister on the bank`, maxTokens, temperature: 0.8 }));
      try {
        for await (const _piece of stream) {
          const now = performance.now();
          const samples = this.sink();
          if (samples) {
            samples.tokFrames++;
            if (this.lastTokAt === 0) samples.ttftMs.push(now - this.sentAt);
            else samples.gapsMs.push(now - this.lastTokAt);
          }
          this.lastTokAt = now;
        }
        this.sentAt = this.lastTokAt = 0;
        await stream.end;
      } catch (error) {
        this.sentAt = this.lastTokAt = 0;
        if (!(error instanceof LlmError)) throw error;
        const { contextSize, promptTokens } = error.details ?? {};
        if (error.code === 'prompt_too_long' && typeof contextSize === 'number' && typeof promptTokens === 'number' && contextSize - promptTokens < maxTokens) {
          maxTokens = contextSize - promptTokens; // as long as the context allows
          continue;
        }
        const samples = this.sink();
        if (samples) samples.errors[error.code] = (samples.errors[error.code] ?? 0) + 1;
        await sleep(error.retryAfterMs ?? 100);
        if (error.message.includes('connection closed') && !this.stopped) {
          this.client = await Victim.open(this.options).catch(() => this.client); // still closed: the next round fails and retries
        }
      }
    }
  }
}
