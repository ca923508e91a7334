import { LlamaText, SpecialTokensText, type Llama, type LlamaContext, type LlamaContextSequence, type LlamaModel, type Token } from 'node-llama-cpp';
import { ErrorCode, type ChatParams } from '../../protocol/index.js';
import { callPromptTokens, planChat, type ChatPlan } from '../chat/chat-plan.js';
import { ChatTemplate } from '../chat/chat-template.js';
import { GrammarBook } from '../chat/grammar-book.js';
import { ServiceError } from '../errors.js';
import type { PromptTokenizer } from '../tokenize/prompt-tokenizer.js';
import { maxTokenBytes, minTokenCount } from '../tokenize/vocab-bound.js';
import type { SamplingDefaults } from './manifest.js';
import { generate, type GenerationOutcome, type SamplingParams, type TextSink } from '../engine/generate.js';
import { DecodeActivity } from '../engine/decode-activity.js';
import { SlotScheduler, type AcquireOptions, type SchedulerOptions } from '../scheduling/slot-scheduler.js';

export interface LoadOptions extends SchedulerOptions {
  /** Tokens per sequence; capped at the model's training context. */
  contextSize: number;
  /** Sequences that generate at once (slots). */
  sequences: number;
  threads: number;
  /** Prompt tokens per chunk while other sequences generate (see DecodeActivity). */
  prefillChunkTokens: number;
  /** Lock the weights in RAM so they are never paged out. */
  mlock: boolean;
  sampling: SamplingDefaults;
  tokenizer: PromptTokenizer;
}

/** How long dispose() waits for leased sequences to come back before freeing the context anyway. */
const RELEASE_WAIT_MS = 5000;

/** How a prompt is tokenized: the room it must leave, whose turn it waits in, and its abort. */
export interface TokenizeOptions {
  /** Tokens that must stay free in the context for the reply. */
  reserve: number;
  owner: string;
  signal: AbortSignal;
}

/** A chat rendered with the model's template and tokenized, with what its reply needs. */
export interface RenderedChatRequest extends Omit<ChatPlan, 'prompt'> {
  tokens: number[];
  /** The prompt of the call phase of an `auto` tool reply: the prompt, the reply so far and the call prefix. */
  continueTokens(promptTokens: readonly number[], reply: string): number[];
}

/** A sequence leased to one request: generate on it once, then release it exactly once. */
export interface SlotLease {
  generate(promptTokens: readonly number[], params: SamplingParams, sink: TextSink, signal: AbortSignal): Promise<GenerationOutcome>;
  release(): void;
}

/**
 * One loaded version of a model file: weights, one context and its sequences, leased through a
 * fair scheduler. A version that is replaced or unloaded retires: it takes no new requests,
 * finishes those it has, then frees its memory.
 */
export class LoadedModel {
  /** Requests between resolving this version and leasing a slot (they keep it from retiring). */
  private holds = 0;
  private retiring: { resolve: () => void; promise: Promise<void> } | undefined;
  private disposed = false;
  /** Told when the last leased sequence comes back. */
  private readonly releaseWaiters: (() => void)[] = [];
  /** Most UTF-8 bytes one token stands for: a prompt's length bounds its token count from below. */
  private readonly bytesPerToken: number;
  private readonly activity: DecodeActivity;
  /** The chat template, resolved on the first chat (it takes a worker's time), and its grammars. */
  private chat: { template: Promise<ChatTemplate>; grammars: GrammarBook } | undefined;

  private constructor(
    readonly name: string,
    readonly path: string,
    readonly fingerprint: string,
    readonly model: LlamaModel,
    readonly context: LlamaContext,
    readonly scheduler: SlotScheduler<LlamaContextSequence>,
    readonly sampling: SamplingDefaults,
    readonly estimatedBytes: number,
    readonly loadMs: number,
    private readonly tokenizer: PromptTokenizer,
    prefillChunkTokens: number,
  ) {
    this.activity = new DecodeActivity({ chunkTokens: Math.min(prefillChunkTokens, context.batchSize), soloChunkTokens: context.batchSize });
    const pieces = model.fileInfo.metadata.tokenizer?.ggml?.tokens;
    this.bytesPerToken = Array.isArray(pieces) ? maxTokenBytes(pieces as string[]) : Number.POSITIVE_INFINITY;
    scheduler.onIdle = () => {
      for (const wake of this.releaseWaiters.splice(0)) wake();
      this.disposeIfRetiredAndIdle();
    };
  }

  /** Loads the weights (memory-mapped) and creates the context and its sequences. */
  static async load(
    llama: Llama,
    source: { name: string; path: string; fingerprint: string; estimatedBytes: number },
    options: LoadOptions,
  ): Promise<LoadedModel> {
    const started = performance.now();
    const model = await llama.loadModel({ modelPath: source.path, useMmap: true, useMlock: options.mlock });
    try {
      const contextSize = Math.min(options.contextSize, model.trainContextSize);
      const context = await model.createContext({ contextSize, sequences: options.sequences, threads: options.threads });
      const sequences = Array.from({ length: options.sequences }, () => context.getSequence());
      const scheduler = new SlotScheduler(sequences, options);
      return new LoadedModel(source.name, source.path, source.fingerprint, model, context, scheduler, options.sampling, source.estimatedBytes, performance.now() - started, options.tokenizer, options.prefillChunkTokens);
    } catch (error) {
      await model.dispose();
      throw error;
    }
  }

  /** Tokens per sequence: prompt and generated text together must fit. */
  get contextSize(): number {
    return this.context.contextSize;
  }

  /** True once retiring began: new requests go elsewhere. */
  get isRetiring(): boolean {
    return this.retiring !== undefined;
  }

  /** No request holds, uses or waits for this version. */
  get isIdle(): boolean {
    return this.holds === 0 && this.scheduler.busy === 0 && this.scheduler.queued === 0;
  }

  /** Keeps this version from retiring until the returned function is called. */
  hold(): () => void {
    this.holds++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.holds--;
      this.disposeIfRetiredAndIdle();
    };
  }

  /**
   * Tokenizes a prompt the way generation sees it, with the BOS token the model expects. A long
   * prompt that cannot leave `reserve` tokens free in the context is refused from its length alone,
   * before any tokenizer runs; the others are tokenized off the event loop, waiting fairly by `owner`.
   */
  async tokenizePrompt(prompt: string, options: TokenizeOptions): Promise<number[]> {
    const tokens = await this.tokenizeBounded(prompt, options);
    const bos = this.model.tokens.bos;
    if (bos !== null && this.model.tokens.shouldPrependBosToken && tokens[0] !== bos) tokens.unshift(bos);
    return tokens;
  }

  /** The model's chat template; resolved once, in the tokenizer's worker. */
  chatTemplate(): Promise<ChatTemplate> {
    this.chat ??= { template: this.resolveTemplate(), grammars: new GrammarBook(this.model.llama) };
    return this.chat.template;
  }

  private resolveTemplate(): Promise<ChatTemplate> {
    const template = this.tokenizer.chatWrapperOf(this).then((type) => ChatTemplate.of(this.model, type as Parameters<typeof ChatTemplate.of>[1]));
    // A failed resolution is tried again by the next chat.
    template.catch(() => (this.chat = undefined));
    return template;
  }

  /**
   * Renders a validated chat with the model's template (its tools and response format included)
   * and tokenizes it with the template's special tokens, bounded like `tokenizePrompt`.
   */
  async renderChat(params: ChatParams, options: TokenizeOptions): Promise<RenderedChatRequest> {
    const template = await this.chatTemplate();
    const { prompt, ...plan } = await planChat(params, template, this.chat!.grammars);
    const tokens = await this.tokenizeBounded(prompt, options);
    const prefix = plan.tools?.prefix ?? LlamaText([]);
    const tokenizer = this.model.tokenizer;
    return { ...plan, tokens, continueTokens: (promptTokens, reply) => callPromptTokens(tokenizer, promptTokens, reply, prefix) };
  }

  private tokenizeBounded(text: string | LlamaText, options: TokenizeOptions): Promise<number[]> {
    // A short prompt is tokenized at once, for the exact count; a long one is bounded first.
    const atLeast = this.tokenizer.isInline(text) ? undefined : minTokenCount(typeof text === 'string' ? text : characters(text), this.bytesPerToken);
    if (atLeast !== undefined && atLeast + options.reserve > this.contextSize) {
      throw new ServiceError(
        ErrorCode.promptTooLong,
        `prompt (at least ${atLeast} tokens) + maxTokens (${options.reserve}) exceed the context of ${this.contextSize} tokens`,
        { details: { promptTokensAtLeast: atLeast, maxTokens: options.reserve, contextSize: this.contextSize } },
      );
    }
    const model = this.model;
    return this.tokenizer.tokenize(
      {
        path: this.path,
        fingerprint: this.fingerprint,
        tokenizeInline: (input) => model.tokenize(input),
        tokenizeChatInline: (input) => input.tokenize(model.tokenizer),
      },
      text,
      options.owner,
      options.signal,
    );
  }

  /** Sequences generating tokens right now (not waiting, not evaluating a prompt). */
  get generating(): number {
    return this.activity.active;
  }

  /**
   * Waits for a free sequence (fair across owners, bounded, abortable) and leases it. Of the free
   * sequences, the one whose cached tokens share the longest prefix with `promptTokens` is taken, so
   * a conversation's next turn evaluates only what is new.
   */
  async acquire(options: Omit<AcquireOptions<LlamaContextSequence>, 'affinity'> & { promptTokens: readonly number[] }): Promise<SlotLease> {
    const { promptTokens, ...rest } = options;
    const lease = await this.scheduler.acquire({
      ...rest,
      affinity: (sequence) => sequence.compareContextTokens(promptTokens as Token[]).firstDifferentIndex,
    });
    const slot = { sequence: lease.slot, activity: this.activity };
    return {
      generate: (tokens, params, sink, signal) => generate(slot, tokens as Token[], params, sink, signal),
      release: () => lease.release(),
    };
  }

  /** Stops taking requests once current ones are done, then frees memory; resolves when freed. */
  retire(): Promise<void> {
    if (!this.retiring) {
      let resolve!: () => void;
      const promise = new Promise<void>((done) => (resolve = done));
      this.retiring = { resolve, promise };
      this.disposeIfRetiredAndIdle();
    }
    return this.retiring.promise;
  }

  /**
   * Frees memory now; waiting requests are refused with `error`. Sequences still leased (a
   * cancelled request's decode step in flight) get up to `RELEASE_WAIT_MS` to come back first: a
   * context disposed under a running step fails it from inside the engine.
   */
  async dispose(error: ServiceError): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.scheduler.close(error);
    if (this.scheduler.busy > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, RELEASE_WAIT_MS);
        this.releaseWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    await this.context.dispose();
    await this.model.dispose();
    this.retiring?.resolve();
  }

  private disposeIfRetiredAndIdle(): void {
    if (!this.retiring || this.disposed || !this.isIdle) return;
    this.disposed = true;
    void (async () => {
      await this.context.dispose();
      await this.model.dispose();
      this.retiring!.resolve();
    })();
  }
}

/** The text of a rendered chat for the length bound; a special token counts by its text, others as one character. */
function characters(text: LlamaText): string {
  return text.values.map((value) => (typeof value === 'string' ? value : value instanceof SpecialTokensText ? value.value : ' ')).join('');
}
