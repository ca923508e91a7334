/// <reference types="svelte" />
import {
  ConnectError,
  ConnectErrorCode,
  LlmError,
  type ChatMessage,
  type ChatRequest,
  type EndFrame,
  type GenerateRequest,
  type GenParams,
  type LimitsInfo,
  type ModelInfo,
} from '../../../../protocol/index.js';

/** The slice of the protocol's GenerationStream the playground drives. */
export interface PlaygroundStream extends AsyncIterable<string> {
  readonly end: Promise<EndFrame>;
  cancel(): void;
}

/** The slice of the protocol's LlmClient the playground drives. */
export interface PlaygroundClient {
  readonly hello: { models: ModelInfo[]; limits?: Pick<LimitsInfo, 'maxTokensCeiling' | 'maxTokensDefault'> };
  generate(request: GenerateRequest): PlaygroundStream;
  /** Needed for the chat mode only. */
  chat?(request: ChatRequest): PlaygroundStream;
  close(): void;
}

/** Raw prompt completion, or a conversation rendered with the model's chat template. */
export type PlaygroundMode = 'prompt' | 'chat';

/** A turn of the playground's conversation. */
export interface ChatTurn {
  role: 'user' | 'assistant';
  content: string;
}

export type Connector = (apiKey: string | undefined) => Promise<PlaygroundClient>;

export interface PlaygroundOptions {
  connect: Connector;
  /** Clock for the timings. Default: performance.now. */
  now?: () => number;
  /** Batches text into the page once per frame. Default: requestAnimationFrame, else a 16 ms timer. */
  schedule?: (flush: () => void) => void;
}

export const DEFAULT_PROMPT = 'Alice was beginning to get very tired of sitting by her sister on the bank';
export const DEFAULT_SYSTEM_PROMPT = 'You are a helpful assistant.';

/**
 * The JSON schema box's text as a response format: empty is free text; anything else must be a
 * JSON object (the server checks what it can turn into a grammar).
 */
export function responseFormatOf(schemaText: string): ChatRequest['responseFormat'] | { error: string } {
  if (!schemaText.trim()) return undefined;
  let schema: unknown;
  try {
    schema = JSON.parse(schemaText);
  } catch (error) {
    return { error: `The JSON schema is not valid JSON: ${(error as Error).message}` };
  }
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) return { error: 'The JSON schema must be a JSON object, like {"type": "object", ...}' };
  return { type: 'json_schema', schema: schema as Record<string, unknown> };
}

/**
 * What to tell the user about a failed connect: the error's own message, and for a ConnectError
 * what to do about its code. (Browsers hide why an upgrade was refused, so there it is mostly
 * `unreachable`; the other codes come from clients that can read the refusal.)
 */
export function connectFailureText(error: unknown): string {
  if (!(error instanceof ConnectError)) return error instanceof Error ? error.message : String(error);
  switch (error.code) {
    case ConnectErrorCode.unauthorized:
      return `${error.message}. The server requires an API key: enter a valid one under "API key"`;
    case ConnectErrorCode.forbidden:
      return `${error.message}. The server does not accept this page's origin or host: check ALLOWED_ORIGINS and ALLOWED_HOSTS`;
    case ConnectErrorCode.tooManyConnections:
    case ConnectErrorCode.shuttingDown:
      return `${error.message}. Try again in ${Math.max(1, Math.ceil((error.retryAfterMs ?? 1000) / 1000))} s`;
    case ConnectErrorCode.unreachable:
      return `${error.message}. If the server is up: enter an API key under "API key" if it requires keys, or check ALLOWED_ORIGINS`;
    default:
      return error.message;
  }
}

function defaultSchedule(flush: () => void): void {
  if (typeof requestAnimationFrame === 'function') requestAnimationFrame(() => flush());
  else setTimeout(flush, 16);
}

/**
 * The Playground: one generation at a time through the same protocol client users have, with
 * the text streaming in, a cancel, and time to first token, tokens/s and the end reason. In chat
 * mode it keeps a conversation (a system prompt, an optional JSON schema for the replies) that the
 * server renders with the model's chat template; the last reply can be generated again.
 */
export class PlaygroundStore {
  models = $state.raw<ModelInfo[]>([]);
  /** Largest maxTokens the server accepts, from its hello. */
  maxTokensCeiling = $state<number | undefined>();
  model = $state('');
  prompt = $state(DEFAULT_PROMPT);
  maxTokens = $state(200);
  temperature = $state(0.8);
  /** Empty: a random seed each run. */
  seed = $state<number | undefined>();
  /** Needed only when the server requires API keys. */
  apiKey = $state('');
  mode = $state<PlaygroundMode>('prompt');
  /** Chat mode: the system message (empty: none). */
  systemPrompt = $state(DEFAULT_SYSTEM_PROMPT);
  /** Chat mode: an optional JSON schema the replies must follow. */
  schema = $state('');
  /** Chat mode: the user's next message. */
  draft = $state('');
  /** Chat mode: the conversation so far; the reply being streamed is in `output` until it ends. */
  conversation = $state<ChatTurn[]>([]);

  output = $state('');
  /** Text pieces received (one `tok` frame each; on a fast model a frame may carry several tokens). */
  pieces = $state(0);
  running = $state(false);
  cancelling = $state(false);
  startedAt = $state<number | undefined>();
  firstAt = $state<number | undefined>();
  lastAt = $state<number | undefined>();
  end = $state.raw<EndFrame | undefined>();
  error = $state<string | undefined>();
  /** Why the last connect failed, in words (see connectFailureText). */
  connectionError = $state<string | undefined>();
  /** The last connect's failure itself, to branch on its `code`; undefined once connected. */
  connectFailure = $state.raw<ConnectError | undefined>();

  /** Time to first token: the server's figure once the run ended, the page's own until then. */
  ttftMs = $derived(
    this.end && this.end.timings.ttftMs >= 0
      ? this.end.timings.ttftMs
      : this.firstAt !== undefined && this.startedAt !== undefined
        ? this.firstAt - this.startedAt
        : undefined,
  );
  /** Generation speed after the first token: from usage at the end, from pieces (a lower bound) while running. */
  tokensPerSecond = $derived.by(() => {
    if (this.end) {
      const generatingMs = this.end.timings.totalMs - Math.max(0, this.end.timings.ttftMs);
      const after = this.end.usage.completionTokens - 1;
      if (after > 0 && generatingMs > 0) return (after * 1000) / generatingMs;
      return undefined;
    }
    if (this.firstAt === undefined || this.lastAt === undefined || this.pieces < 2) return undefined;
    const ms = this.lastAt - this.firstAt;
    return ms > 0 ? ((this.pieces - 1) * 1000) / ms : undefined;
  });

  private client: PlaygroundClient | undefined;
  private clientKey: string | undefined;
  private current: PlaygroundStream | undefined;
  private readonly now: () => number;
  private readonly schedule: (flush: () => void) => void;
  private buffer = '';
  private bufferedPieces = 0;
  private flushQueued = false;

  constructor(private readonly options: PlaygroundOptions) {
    this.now = options.now ?? (() => performance.now());
    this.schedule = options.schedule ?? defaultSchedule;
  }

  /** Connects (if needed) and fills the model list from the server's hello. */
  async prepare(): Promise<void> {
    try {
      const client = await this.ensureClient();
      this.models = client.hello.models;
      this.maxTokensCeiling = client.hello.limits?.maxTokensCeiling;
      if (!this.model || !this.models.some((model) => model.name === this.model)) {
        this.model = (this.models.find((model) => model.default) ?? this.models[0])?.name ?? '';
      }
      this.connectionError = undefined;
    } catch (error) {
      this.connectionError = `Cannot connect to the streaming endpoint: ${connectFailureText(error)}.`;
    }
  }

  /** Streams one generation of the prompt into `output`. Resolves when it ended, however it ended. */
  async run(): Promise<void> {
    await this.stream(() => this.startStream());
  }

  /** Chat mode: adds the draft as the user's message and streams the reply. */
  async send(): Promise<void> {
    const text = this.draft.trim();
    if (this.running || !text) return;
    this.conversation = [...this.conversation, { role: 'user', content: text }];
    this.draft = '';
    await this.reply();
  }

  /** Chat mode: replaces the last reply with a new one. */
  async regenerate(): Promise<void> {
    if (this.running || this.conversation.length === 0) return;
    if (this.conversation.at(-1)!.role === 'assistant') this.conversation = this.conversation.slice(0, -1);
    await this.reply();
  }

  /** Chat mode: starts a new conversation. */
  clearConversation(): void {
    if (this.running) return;
    this.conversation = [];
    this.output = '';
    this.end = undefined;
    this.error = undefined;
  }

  /** Streams the assistant's reply to the conversation; what came of it (even cut short) joins the conversation. */
  private async reply(): Promise<void> {
    const format = responseFormatOf(this.schema);
    if (format && 'error' in format) {
      this.error = format.error;
      return;
    }
    const messages: ChatMessage[] = [...(this.systemPrompt.trim() ? [{ role: 'system' as const, content: this.systemPrompt }] : []), ...this.conversation];
    await this.stream(async () => {
      const client = await this.ensureClient();
      if (!client.chat) throw new Error('this client cannot chat');
      return client.chat({ messages, ...this.sampling(), ...(format && { responseFormat: format }) });
    });
    if (this.output) this.conversation = [...this.conversation, { role: 'assistant', content: this.output }];
  }

  /** Streams what `start` opens into `output`. Resolves when it ended, however it ended. */
  private async stream(start: () => Promise<PlaygroundStream>): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.cancelling = false;
    this.output = '';
    this.pieces = 0;
    this.buffer = '';
    this.bufferedPieces = 0;
    this.end = undefined;
    this.error = undefined;
    this.firstAt = this.lastAt = undefined;
    this.startedAt = this.now();
    try {
      const stream = await start();
      this.current = stream;
      for await (const piece of stream) {
        const at = this.now();
        this.firstAt ??= at;
        this.lastAt = at;
        this.buffer += piece;
        this.bufferedPieces++;
        this.queueFlush();
      }
      this.flush();
      this.end = await stream.end;
    } catch (error) {
      this.flush();
      this.error = connectFailureText(error);
      // A lost connection is not reused: the next run connects again. An error frame for this
      // request alone (invalid_params, overloaded...) leaves the connection usable.
      if (!(error instanceof LlmError) || error.code === ConnectErrorCode.connectionLost) this.dropClient();
    } finally {
      this.current = undefined;
      this.running = false;
      this.cancelling = false;
    }
  }

  /** Stops the running generation; it ends with reason `cancelled`. */
  cancel(): void {
    if (!this.current || this.cancelling) return;
    this.cancelling = true;
    this.current.cancel();
  }

  /** Closes the connection (leaving the page). */
  dispose(): void {
    this.cancel();
    this.dropClient();
  }

  private async startStream(): Promise<PlaygroundStream> {
    const request: GenerateRequest = { prompt: this.prompt, ...this.sampling() };
    const client = await this.ensureClient();
    return client.generate(request);
  }

  /** The model and sampling fields both modes send. */
  private sampling(): GenParams & { model?: string } {
    return {
      ...(this.model && { model: this.model }),
      // Number inputs give null when emptied: leave such a field to the server's default.
      ...(Number.isFinite(this.maxTokens) && { maxTokens: this.maxTokens }),
      ...(Number.isFinite(this.temperature) && { temperature: this.temperature }),
      ...(this.seed !== undefined && Number.isFinite(this.seed) && { seed: this.seed }),
    };
  }

  private async ensureClient(): Promise<PlaygroundClient> {
    const key = this.apiKey.trim() || undefined;
    if (this.client && this.clientKey === key) return this.client;
    this.dropClient();
    let client: PlaygroundClient;
    try {
      client = await this.options.connect(key);
    } catch (error) {
      // Thrown on as it is (a ConnectError keeps its code); the callers word it with connectFailureText.
      this.connectFailure = error instanceof ConnectError ? error : undefined;
      throw error;
    }
    this.connectFailure = undefined;
    this.client = client;
    this.clientKey = key;
    return client;
  }

  private dropClient(): void {
    const client = this.client;
    this.client = undefined;
    try {
      client?.close();
    } catch {
      // already closed
    }
  }

  private queueFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    this.schedule(() => this.flush());
  }

  private flush(): void {
    this.flushQueued = false;
    if (!this.buffer && this.bufferedPieces === 0) return;
    this.output += this.buffer;
    this.pieces += this.bufferedPieces;
    this.buffer = '';
    this.bufferedPieces = 0;
  }
}
