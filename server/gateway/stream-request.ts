import { randomInt } from 'node:crypto';
import { EndReason, ErrorCode, type GenFrame } from '../../protocol/index.js';
import { generate, type GenerationOutcome, type SamplingParams, type TextSink } from '../engine/generate.js';
import { ServiceError } from '../errors.js';
import type { LoadedModel } from '../pool/loaded-model.js';
import type { Lease } from '../pool/slot-scheduler.js';
import type { LlamaContextSequence, Token } from 'node-llama-cpp';
import type { CachedResponse } from '../cache/response-cache.js';
import type { RequestTelemetry } from '../telemetry/events.js';
import type { Session } from './session.js';
import { TextCoalescer } from './text-coalescer.js';

/** Seeds drawn for requests without one: any 32-bit value (the engine's seed is a uint32). */
const SEED_RANGE = 2 ** 32;

/** Why a request was stopped from outside: an end reason the client sees, or its disconnect. */
export type StopCause = typeof EndReason.cancelled | typeof EndReason.timeout | typeof EndReason.slowConsumer | typeof EndReason.shutdown | 'disconnected';

/**
 * One `gen` request from arrival to its single terminal frame: resolve the model, check the
 * prompt against the context, wait for a slot, stream text, and end with `end` or `err`.
 */
export class StreamRequest implements TextSink {
  private readonly controller = new AbortController();
  private finished = false;
  private startedAt = -1;
  private firstTextAt = -1;
  private promptTokens = 0;
  private metrics: RequestTelemetry | undefined;
  /** Set when the request is deterministic and may be answered from, or stored in, the response cache. */
  private cacheKey: string | undefined;
  private collected = '';
  private readonly text: TextCoalescer;

  constructor(private readonly session: Session, private readonly frame: GenFrame, private readonly receivedAt: number) {
    this.text = new TextCoalescer(session.context.config.streamCoalesceMs, session.guarded((text: string) => session.send({ t: 'tok', id: frame.id, text })));
  }

  get id(): string {
    return this.frame.id;
  }

  /** Stops the request; it ends with `end{reason}` unless the client is gone. */
  cancel(cause: StopCause): void {
    if (!this.controller.signal.aborted) this.controller.abort(cause);
  }

  async run(): Promise<void> {
    let lease: Lease<LlamaContextSequence> | undefined;
    let outcome: GenerationOutcome | undefined;
    try {
      const { pool, cache, telemetry } = this.session.context;
      const { model, release } = await pool.checkout(this.frame.model);
      let tokens: Token[];
      let params: SamplingParams;
      try {
        this.metrics = telemetry.request(model.name, this.id, this.session.origin);
        this.checkMaxTokens();
        // Checked before queueing, so a request that can never fit is refused at once.
        tokens = await model.tokenizePrompt(this.frame.prompt, { reserve: this.frame.maxTokens ?? 1, owner: this.session.id, signal: this.controller.signal });
        this.promptTokens = tokens.length;
        params = this.samplingParams(model, tokens.length);
        this.cacheKey = cache.keyFor(model.fingerprint, this.frame.prompt, params);
        const cached = this.cacheKey === undefined ? undefined : cache.get(this.cacheKey);
        if (cached) return this.replay(model.name, cached);
        // The engine would seed from the clock's second, so requests in the same second would match.
        params.seed ??= randomInt(SEED_RANGE);
        lease = await model.scheduler.acquire({
          owner: this.session.id,
          signal: this.controller.signal,
          onPosition: (position) => this.session.send({ t: 'queued', id: this.id, position }),
        });
      } finally {
        release();
      }
      this.startedAt = performance.now();
      this.metrics.started(this.startedAt - this.receivedAt);
      this.session.send({ t: 'start', id: this.id, model: model.name });
      const deadline = setTimeout(this.session.guarded(() => this.cancel(EndReason.timeout)), this.session.context.config.generationTimeoutMs);
      try {
        outcome = await generate(lease.slot, tokens, params, this, this.controller.signal);
      } finally {
        clearTimeout(deadline);
      }
      if (outcome.reason === 'aborted') return this.end(this.stopCause(), outcome.completionTokens);
      if (this.cacheKey !== undefined) {
        cache.set(this.cacheKey, { text: this.collected, reason: outcome.reason, usage: { promptTokens: this.promptTokens, completionTokens: outcome.completionTokens } });
      }
      this.end(outcome.reason, outcome.completionTokens);
    } catch (error) {
      this.fail(error);
    } finally {
      if (lease) {
        const held = lease;
        // The sequence returns to the pool only once its last decode step is over.
        void (outcome?.settled ?? Promise.resolve()).then(() => held.release());
      }
    }
  }

  /** Answers from the response cache: the same frames a generation sends, with `cached: true`. */
  private replay(model: string, cached: CachedResponse): void {
    this.session.context.telemetry.cacheHit?.(model);
    this.startedAt = performance.now();
    this.metrics?.started(this.startedAt - this.receivedAt);
    this.session.send({ t: 'start', id: this.id, model });
    if (cached.text.length > 0) this.write(cached.text);
    this.end(cached.reason, cached.usage.completionTokens, true);
  }

  write(piece: string): void {
    if (this.firstTextAt < 0) this.firstTextAt = performance.now();
    if (this.cacheKey !== undefined) this.collected += piece;
    this.text.push(piece);
  }

  waitWritable(): Promise<void> | undefined {
    const backpressure = this.session.waitWritable();
    if (backpressure) return backpressure;
    // A token bucket in debt throttles the stream until it refills.
    const throttleMs = this.session.limits.tokenWaitMs();
    return throttleMs > 0 ? new Promise((resolve) => setTimeout(resolve, throttleMs)) : undefined;
  }

  onToken(): void {
    this.session.limits.chargeToken();
    this.metrics?.token();
  }

  private checkMaxTokens(): void {
    const { maxTokensCeiling } = this.session.context.config;
    if (this.frame.maxTokens !== undefined && this.frame.maxTokens > maxTokensCeiling) {
      throw new ServiceError(ErrorCode.invalidParams, `"maxTokens" may be at most ${maxTokensCeiling}`, { details: { maxTokensCeiling } });
    }
  }

  private samplingParams(model: LoadedModel, promptTokens: number): SamplingParams {
    const { config } = this.session.context;
    const frame = this.frame;
    if (promptTokens === 0) throw new ServiceError(ErrorCode.invalidParams, '"prompt" is empty and the model has no BOS token to start from');
    const room = model.contextSize - promptTokens;
    // Without an explicit maxTokens the default shrinks to what the context still holds.
    const maxTokens = frame.maxTokens ?? Math.min(config.maxTokensDefault, room);
    if (room < 1 || maxTokens > room) {
      throw new ServiceError(
        ErrorCode.promptTooLong,
        `prompt (${promptTokens} tokens) + maxTokens (${maxTokens}) exceed the context of ${model.contextSize} tokens`,
        { details: { promptTokens, maxTokens, contextSize: model.contextSize } },
      );
    }
    return {
      maxTokens,
      temperature: frame.temperature ?? model.sampling.temperature,
      topK: frame.topK ?? model.sampling.topK,
      topP: frame.topP ?? model.sampling.topP,
      minP: frame.minP ?? model.sampling.minP,
      ...(frame.seed !== undefined && { seed: frame.seed }),
      stop: frame.stop ?? [],
    };
  }

  private stopCause(): StopCause {
    return this.controller.signal.reason as StopCause;
  }

  private end(reason: EndReason | 'disconnected', completionTokens: number, cached = false): void {
    if (!this.claimTerminal()) return;
    const now = performance.now();
    const since = (at: number): number => (at < 0 ? -1 : round(at - this.receivedAt));
    const usage = { promptTokens: this.promptTokens, completionTokens };
    const timings = { queueMs: since(this.startedAt < 0 ? now : this.startedAt), ttftMs: since(this.firstTextAt), totalMs: round(now - this.receivedAt) };
    this.metrics?.ended(reason, usage, timings);
    if (reason !== 'disconnected') this.session.send({ t: 'end', id: this.id, reason, usage, timings, ...(cached && { cached }) });
  }

  private fail(error: unknown): void {
    if (this.controller.signal.aborted && error === this.controller.signal.reason) return this.end(this.stopCause(), 0);
    if (!this.claimTerminal()) return;
    if (error instanceof ServiceError) {
      this.recordFailure(error.code);
      this.session.sendError({
        id: this.id,
        code: error.code,
        message: error.message,
        ...(error.retryAfterMs !== undefined && { retryAfterMs: error.retryAfterMs }),
        ...(error.details !== undefined && { details: error.details }),
      });
      return;
    }
    this.session.context.logger.error({ err: error, session: this.session.id }, 'generation failed');
    this.recordFailure(ErrorCode.internal);
    this.session.sendError({ id: this.id, code: ErrorCode.internal, message: 'generation failed inside the server' });
  }

  private recordFailure(code: ErrorCode): void {
    if (this.metrics) {
      const now = performance.now();
      this.metrics.ended(code, { promptTokens: this.promptTokens, completionTokens: 0 }, { queueMs: -1, ttftMs: -1, totalMs: round(now - this.receivedAt) });
    } else {
      this.session.context.telemetry.requestRefused(code, this.session.origin, this.frame.model, this.id);
    }
  }

  /** True the first time: the request's single terminal frame may be sent now. */
  private claimTerminal(): boolean {
    if (this.finished) return false;
    // Text held for the next frame belongs before the terminal frame.
    this.text.flush();
    this.finished = true;
    this.session.finished(this);
    return true;
  }
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
