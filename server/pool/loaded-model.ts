import type { Llama, LlamaContext, LlamaContextSequence, LlamaModel, Token } from 'node-llama-cpp';
import { SlotScheduler, type SchedulerOptions } from './slot-scheduler.js';

export interface LoadOptions extends SchedulerOptions {
  /** Tokens per sequence; capped at the model's training context. */
  contextSize: number;
  /** Sequences that generate at once (slots). */
  sequences: number;
  threads: number;
}

/** A model in memory with one context whose sequences are leased through a fair scheduler. */
export class LoadedModel {
  private constructor(
    readonly name: string,
    readonly model: LlamaModel,
    readonly context: LlamaContext,
    readonly scheduler: SlotScheduler<LlamaContextSequence>,
    readonly loadMs: number,
  ) {}

  /** Loads the weights (memory-mapped) and creates the context and its sequences. */
  static async load(llama: Llama, name: string, modelPath: string, options: LoadOptions): Promise<LoadedModel> {
    const started = performance.now();
    const model = await llama.loadModel({ modelPath, useMmap: true });
    try {
      const contextSize = Math.min(options.contextSize, model.trainContextSize);
      const context = await model.createContext({ contextSize, sequences: options.sequences, threads: options.threads });
      const sequences = Array.from({ length: options.sequences }, () => context.getSequence());
      const scheduler = new SlotScheduler(sequences, options);
      return new LoadedModel(name, model, context, scheduler, performance.now() - started);
    } catch (error) {
      await model.dispose();
      throw error;
    }
  }

  /** Tokens per sequence: prompt and generated text together must fit. */
  get contextSize(): number {
    return this.context.contextSize;
  }

  /** Tokenizes a prompt the way generation sees it, with the BOS token the model expects. */
  tokenizePrompt(prompt: string): Token[] {
    const tokens = this.model.tokenize(prompt);
    const bos = this.model.tokens.bos;
    if (bos !== null && this.model.tokens.shouldPrependBosToken && tokens[0] !== bos) tokens.unshift(bos);
    return tokens;
  }

  /** Refuses waiting requests and frees the context and weights. */
  async dispose(error: Parameters<SlotScheduler<LlamaContextSequence>['close']>[0]): Promise<void> {
    this.scheduler.close(error);
    await this.context.dispose();
    await this.model.dispose();
  }
}
