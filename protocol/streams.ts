import type { ConnectErrorCode } from './constants.js';
import type { ChatParams, EndFrame, ErrFrame, GenParams, HelloFrame, ServerFrame, ToolCall } from './frames.js';

/** What a generation asks for; `id` defaults to a fresh one. */
export interface GenerateRequest extends GenParams {
  prompt: string;
  model?: string;
  id?: string;
}

/** What a chat asks for; `id` defaults to a fresh one. */
export interface ChatRequest extends ChatParams {
  model?: string;
  id?: string;
}

/** What a chat stream yields from `events()`: text as it streams, and each tool call once complete. */
export type ChatEvent = { type: 'text'; text: string } | { type: 'toolCall'; call: ToolCall };

/**
 * An `err` frame surfaced as an exception; also a connection lost after `hello` (code
 * `connection_lost`, `details` `{closeCode, closeReason}`), which fails every stream and pending call.
 */
export class LlmError extends Error {
  readonly code: string;
  readonly retryAfterMs: number | undefined;
  readonly details: Record<string, number | string> | undefined;
  constructor(frame: Pick<ErrFrame, 'message' | 'retryAfterMs' | 'details'> & { code: ErrFrame['code'] | typeof ConnectErrorCode.connectionLost }) {
    super(`${frame.code}: ${frame.message}`);
    this.name = 'LlmError';
    this.code = frame.code;
    this.retryAfterMs = frame.retryAfterMs;
    this.details = frame.details;
  }
}

/** One generation: iterate it for text pieces; `end` resolves with the final frame. */
export class GenerationStream implements AsyncIterable<string> {
  readonly id: string;
  /** Resolves with the `end` frame; rejects with LlmError on an `err` frame or a lost connection (`connection_lost`). */
  readonly end: Promise<EndFrame>;
  /** Model that serves the request, once `start` arrived. */
  model: string | undefined;
  /** Last queue position reported, while queued. */
  queuePosition: number | undefined;
  /** @internal Seq of the newest frame of this stream received (0 before the first); older ones are replays. */
  lastSeq = 0;
  /** @internal The frame that started the stream and the `hello` of the connection it went out on: what a resume names. */
  started: { frame: object; hello: HelloFrame } | undefined;
  /** Text pieces and a chat's tool calls, in arrival order, not iterated yet. */
  private readonly items: (string | ToolCall)[] = [];
  private wake: (() => void) | undefined;
  private finished = false;
  private failure: LlmError | undefined;
  private settle!: { resolve: (frame: EndFrame) => void; reject: (error: LlmError) => void };

  constructor(id: string, private readonly sendCancel: (id: string) => void) {
    this.id = id;
    this.end = new Promise<EndFrame>((resolve, reject) => {
      this.settle = { resolve, reject };
    });
    // Callers that only iterate must not see an unhandled rejection from `end`.
    this.end.catch(() => undefined);
  }

  /** Asks the server to stop this generation; the stream then ends with reason `cancelled`. */
  cancel(): void {
    if (!this.finished) this.sendCancel(this.id);
  }

  /** @internal Returns true once the stream has ended. */
  handle(frame: ServerFrame): boolean {
    // A frame seen before (replayed by a resume) is dropped: nothing arrives twice.
    if ('seq' in frame && typeof frame.seq === 'number') {
      if (frame.seq <= this.lastSeq) return this.finished;
      this.lastSeq = frame.seq;
    }
    switch (frame.t) {
      case 'tok': this.items.push(frame.text); break;
      case 'tool': this.addToolCall({ id: frame.callId, name: frame.name, arguments: frame.arguments }); break;
      case 'queued': this.queuePosition = frame.position; break;
      case 'start': this.model = frame.model; this.queuePosition = undefined; break;
      case 'end': this.finished = true; this.settle.resolve(frame); break;
      case 'err': this.fail(new LlmError(frame)); break;
      default: return this.finished;
    }
    this.wake?.();
    return this.finished;
  }

  /** @internal */
  fail(error: LlmError): void {
    if (this.finished) return;
    this.finished = true;
    this.failure = error;
    this.settle.reject(error);
    this.wake?.();
  }

  /** Collects the whole text and the end frame. */
  async text(): Promise<{ text: string; end: EndFrame }> {
    let text = '';
    for await (const piece of this) text += piece;
    return { text, end: await this.end };
  }

  async *[Symbol.asyncIterator](): AsyncIterator<string> {
    for await (const item of this.drain()) if (typeof item === 'string') yield item;
  }

  /** @internal A tool call arrived (only a chat gets them). */
  protected addToolCall(call: ToolCall): void {
    this.items.push(call);
  }

  /** @internal Yields what arrives, in order, until the end; throws the stream's failure. */
  protected async *drain(): AsyncGenerator<string | ToolCall> {
    for (;;) {
      if (this.items.length > 0) {
        yield this.items.shift()!;
        continue;
      }
      if (this.finished) {
        if (this.failure) throw this.failure;
        return;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }
}

/**
 * A chat's reply: iterate it for text pieces like a generation, or iterate `events()` for text and
 * tool calls in order. When the model calls tools, the stream ends with reason `tool_calls`; send
 * the calls back in an assistant message's `toolCalls` with one `tool` message per result.
 */
export class ChatStream extends GenerationStream {
  /** The tool calls of the reply, as they arrived. */
  readonly toolCalls: ToolCall[] = [];

  /** Text and tool calls, in order, as they arrive. */
  async *events(): AsyncGenerator<ChatEvent> {
    for await (const item of this.drain()) yield typeof item === 'string' ? { type: 'text', text: item } : { type: 'toolCall', call: item };
  }

  /** Collects the whole reply: its text, its tool calls and the end frame. */
  async reply(): Promise<{ text: string; toolCalls: ToolCall[]; end: EndFrame }> {
    const { text, end } = await this.text();
    return { text, toolCalls: this.toolCalls, end };
  }

  protected override addToolCall(call: ToolCall): void {
    this.toolCalls.push(call);
    super.addToolCall(call);
  }
}
