import { LlamaGrammarEvaluationState, type LlamaContextSequence, type LlamaGrammar, type Token } from 'node-llama-cpp';
import type { DecodeActivity } from './decode-activity.js';
import { StopMatcher } from './stop-matcher.js';
import { TokenTextDecoder } from './token-text.js';

/** Sampling and length parameters of one generation, with server defaults applied. */
export interface SamplingParams {
  maxTokens: number;
  temperature: number;
  topK?: number;
  topP?: number;
  minP?: number;
  seed?: number;
  stop: readonly string[];
  /** Penalties for tokens already in the prompt's tail or the reply; absent means none. */
  penalties?: PenaltyParams;
  /** Constrains the reply to a grammar (JSON schema output, tool calls). */
  grammar?: LlamaGrammar;
}

/** llama.cpp's repetition penalties over the last `lastTokens` tokens of prompt and reply. */
export interface PenaltyParams {
  /** Divides the logit of a recent token (1 = off). */
  repeat: number;
  /** Subtracted once per occurrence of a recent token (0 = off). */
  frequency: number;
  /** Subtracted once from every recent token (0 = off). */
  presence: number;
  /** How many recent tokens are penalised. */
  lastTokens: number;
}

/** The sequence a request generates on and the activity of the context it belongs to. */
export interface EngineSlot {
  sequence: LlamaContextSequence;
  activity: DecodeActivity;
}

/** Where generated text goes. */
export interface TextSink {
  /** Receives each piece of text, in order; pieces never split a UTF-8 character. */
  write(piece: string): void;
  /**
   * Returns a promise while the consumer cannot take more text (backpressure); the engine
   * asks for no further token until it settles. Returns undefined when writing may go on.
   */
  waitWritable(): Promise<void> | undefined;
  /** Told of each generated token, whether or not it completed any text yet. */
  onToken(): void;
}

export interface GenerationOutcome {
  /** `stop`: end-of-generation token or stop sequence; `length`: maxTokens; `aborted`: the signal fired. */
  reason: 'stop' | 'length' | 'aborted';
  /** Tokens the model generated for this request (a step in flight at abort is not counted). */
  completionTokens: number;
  /** Leading prompt tokens the sequence already held from an earlier request, not evaluated again. */
  reusedPromptTokens: number;
  /** The stop sequence that ended the generation, when one did. */
  stopSequence?: string;
  /** Resolves once the sequence is idle again and may be leased to the next request. */
  settled: Promise<void>;
}

/**
 * Generates on a leased sequence until end of generation, a stop sequence, maxTokens or abort.
 * The prompt is evaluated in chunks (see DecodeActivity): other sequences' decode steps run between
 * them, and an abort during the prompt frees the sequence at the next chunk boundary. Tokens are
 * then pulled one step ahead: the next decode runs while the current token is sent. A consumer
 * under backpressure stops the pulling, which pauses the engine for this sequence only. An abort
 * takes effect at once: the outcome is returned without waiting for the step in flight, whose token
 * is dropped and not counted (`settled` resolves when that step is done).
 */
export async function generate(
  slot: EngineSlot,
  promptTokens: readonly Token[],
  params: SamplingParams,
  sink: TextSink,
  signal: AbortSignal,
): Promise<GenerationOutcome> {
  const { sequence, activity } = slot;
  const model = sequence.model;
  const aborted = abortPromise(signal);
  const reusedPromptTokens = await reusePrefix(sequence, promptTokens);
  let next = reusedPromptTokens;
  // All but the last chunk are evaluated without sampling; the last one starts generation.
  while (promptTokens.length - next > activity.chunkSize()) {
    if (signal.aborted) return { reason: 'aborted', completionTokens: 0, reusedPromptTokens, settled: Promise.resolve() };
    const chunk = promptTokens.slice(next, next + activity.chunkSize());
    const evaluated = activity.step(() => sequence.evaluateWithoutGeneratingNewTokens(chunk));
    const step = await Promise.race([evaluated, aborted.promise]);
    if (step === ABORTED) return { reason: 'aborted', completionTokens: 0, reusedPromptTokens, settled: evaluated.then(noop, noop) };
    next += chunk.length;
  }
  if (signal.aborted) return { reason: 'aborted', completionTokens: 0, reusedPromptTokens, settled: Promise.resolve() };

  const decoder = new TokenTextDecoder(model, promptTokens);
  const stops = new StopMatcher(params.stop);
  const recent = params.penalties ? new RecentTokens(promptTokens, params.penalties.lastTokens) : undefined;
  const tokens = sequence.evaluateWithMetadata(promptTokens.slice(next), {}, {
    temperature: params.temperature,
    ...(params.topK !== undefined && { topK: params.topK }),
    ...(params.topP !== undefined && { topP: params.topP }),
    ...(params.minP !== undefined && { minP: params.minP }),
    ...(params.seed !== undefined && { seed: params.seed }),
    ...(params.penalties && recent && {
      repeatPenalty: {
        punishTokens: () => recent.tokens,
        maxPunishTokens: params.penalties.lastTokens,
        penalty: params.penalties.repeat,
        frequencyPenalty: params.penalties.frequency,
        presencePenalty: params.penalties.presence,
      },
    }),
    ...(params.grammar && { grammarEvaluationState: new LlamaGrammarEvaluationState({ model, grammar: params.grammar }) }),
  });
  const leave = activity.enter();
  let completionTokens = 0;
  let pending: Promise<IteratorResult<{ token: Token }, void>> | undefined;
  // A step held until the batch forms is skipped when the request was aborted meanwhile.
  const nextStep = (): Promise<IteratorResult<{ token: Token }, void>> =>
    activity.step(() => (signal.aborted ? Promise.resolve({ done: true, value: undefined }) : tokens.next()));
  const finish = (reason: GenerationOutcome['reason']): GenerationOutcome => {
    leave();
    // Ending the iterator waits for any decode step in flight, then frees the sequence.
    const settled = (pending ?? Promise.resolve())
      .then(() => tokens.return())
      .then(noop, noop);
    return { reason, completionTokens, reusedPromptTokens, ...(stops.matched !== undefined && { stopSequence: stops.matched }), settled };
  };
  const emit = (text: string): boolean => {
    const { text: visible, stopped } = stops.push(text);
    if (visible.length > 0) sink.write(visible);
    return stopped;
  };

  const endOfText = (): void => {
    const tail = stops.flush();
    if (tail.length > 0) sink.write(tail);
  };

  for (;;) {
    if (pending === undefined) {
      if (signal.aborted) return finish('aborted');
      const backpressure = sink.waitWritable();
      if (backpressure) {
        await Promise.race([backpressure, aborted.promise]);
        if (signal.aborted) return finish('aborted');
      }
      pending = nextStep();
    }
    const step = await Promise.race([pending, aborted.promise]);
    if (step === ABORTED) return finish('aborted');
    pending = undefined;
    if (step.done) {
      emit(decoder.flush());
      endOfText();
      return finish('stop');
    }
    completionTokens++;
    recent?.push(step.value.token);
    // Hold the next decode step before handling this token: it joins the batch that forms once
    // every sequence of the context got its token from the last one.
    if (completionTokens < params.maxTokens && sink.waitWritable() === undefined) pending = nextStep();
    sink.onToken();
    const piece = decoder.push(step.value.token);
    if (piece.length > 0 && emit(piece)) return finish('stop');
    if (completionTokens >= params.maxTokens) {
      if (emit(decoder.flush())) return finish('stop');
      endOfText();
      return finish('length');
    }
  }
}

const ABORTED = Symbol('aborted');

const noop = (): void => undefined;

/** The last `limit` tokens of prompt and reply, which the repetition penalties look at. */
class RecentTokens {
  readonly tokens: Token[];

  constructor(prompt: readonly Token[], private readonly limit: number) {
    this.tokens = limit > 0 ? prompt.slice(-limit) : [];
  }

  push(token: Token): void {
    if (this.limit === 0) return;
    this.tokens.push(token);
    if (this.tokens.length > this.limit) this.tokens.shift();
  }
}

function abortPromise(signal: AbortSignal): { promise: Promise<typeof ABORTED> } {
  return {
    promise: new Promise((resolve) => {
      if (signal.aborted) resolve(ABORTED);
      else signal.addEventListener('abort', () => resolve(ABORTED), { once: true });
    }),
  };
}

/**
 * Keeps the longest common prefix of the sequence's cached tokens and the new prompt, so a
 * repeated system prompt or conversation is not evaluated again. At least one prompt token is
 * always evaluated, because generation starts from the last evaluated token's logits.
 */
async function reusePrefix(sequence: LlamaContextSequence, promptTokens: readonly Token[]): Promise<number> {
  const { firstDifferentIndex } = sequence.compareContextTokens(promptTokens as Token[]);
  const keep = Math.min(firstDifferentIndex, promptTokens.length - 1);
  if (keep < sequence.nextTokenIndex) {
    await sequence.eraseContextTokenRanges([{ start: keep, end: sequence.nextTokenIndex }]);
  }
  return keep;
}
