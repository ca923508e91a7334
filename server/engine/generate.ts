import type { LlamaContextSequence, Token } from 'node-llama-cpp';
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
  /** Resolves once the sequence is idle again and may be leased to the next request. */
  settled: Promise<void>;
}

/**
 * Generates on a leased sequence until end of generation, a stop sequence, maxTokens or abort.
 * Tokens are pulled one step ahead: the next decode runs while the current token is sent. A
 * consumer under backpressure stops the pulling, which pauses the engine for this sequence only.
 * An abort takes effect at once: the outcome is returned without waiting for the decode step in
 * flight, whose token is dropped and not counted (`settled` resolves when that step is done).
 */
export async function generate(
  sequence: LlamaContextSequence,
  promptTokens: readonly Token[],
  params: SamplingParams,
  sink: TextSink,
  signal: AbortSignal,
): Promise<GenerationOutcome> {
  const model = sequence.model;
  const reused = await reusePrefix(sequence, promptTokens);
  const decoder = new TokenTextDecoder(model, promptTokens);
  const stops = new StopMatcher(params.stop);
  const tokens = sequence.evaluate(promptTokens.slice(reused), {
    temperature: params.temperature,
    ...(params.topK !== undefined && { topK: params.topK }),
    ...(params.topP !== undefined && { topP: params.topP }),
    ...(params.minP !== undefined && { minP: params.minP }),
    ...(params.seed !== undefined && { seed: params.seed }),
  });
  const aborted = abortPromise(signal);
  let completionTokens = 0;
  let pending: Promise<IteratorResult<Token, void>> | undefined;
  const finish = (reason: GenerationOutcome['reason']): GenerationOutcome => {
    // Ending the iterator waits for any decode step in flight, then frees the sequence.
    const settled = (pending ?? Promise.resolve())
      .then(() => tokens.return())
      .then(
        () => undefined,
        () => undefined,
      );
    return { reason, completionTokens, settled };
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
      pending = tokens.next();
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
    // Start the next decode step before handling this token: the native step then runs while
    // this token is detokenized, encoded and sent, instead of after it.
    if (completionTokens < params.maxTokens && sink.waitWritable() === undefined) {
      pending = tokens.next();
      // The engine dispatches the step from its microtasks, or from a setImmediate when other
      // sequences may join the batch: let both run, so the native decode is under way while
      // this token is handled instead of after it.
      await nextTurn();
      await nextTurn();
    }
    sink.onToken();
    const piece = decoder.push(step.value);
    if (piece.length > 0 && emit(piece)) return finish('stop');
    if (completionTokens >= params.maxTokens) {
      if (emit(decoder.flush())) return finish('stop');
      endOfText();
      return finish('length');
    }
  }
}

const ABORTED = Symbol('aborted');

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

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
