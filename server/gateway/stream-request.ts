import { randomBytes, randomInt } from 'node:crypto';
import { EndReason, ErrorCode, type ChatFrame, type GenFrame } from '../../protocol/index.js';
import type { CachedResponse } from '../cache/response-cache.js';
import { runChat, type ChatOutcome } from '../chat/chat-run.js';
import type { SamplingParams, TextSink } from '../engine/generate.js';
import { ServiceError, errFrameOf } from '../errors.js';
import type { SlotLease } from '../pool/loaded-model.js';
import type { RequestTelemetry } from '../telemetry/events.js';
import type { RequestHost, RequestServices } from './request-host.js';
import { RequestLifecycle, type RequestState, type StopCause } from './request-lifecycle.js';
import { requestSourceOf, samplingParamsFor, type PreparedPrompt, type RequestSource } from './request-source.js';
import { TextCoalescer } from './text-coalescer.js';

/** Seeds drawn for requests without one: any 32-bit value (the engine's seed is a uint32). */
const SEED_RANGE = 2 ** 32;

/**
 * One `gen` or `chat` request from admission to its single terminal frame: resolve the model, check
 * and tokenize the prompt (a chat's rendered with the model's template), wait for a slot, stream
 * text (and a chat's tool calls), and end with `end` or `err`. Its state lives in one
 * RequestLifecycle; `claimEnd` is the one way to the terminal frame.
 */
export class StreamRequest implements TextSink {
  private readonly controller = new AbortController();
  private readonly lifecycle: RequestLifecycle;
  private promptTokens = 0;
  /** Tokens generated so far (each told through onToken). */
  private generatedTokens = 0;
  private metrics: RequestTelemetry | undefined;
  /** Set when the request is deterministic and may be answered from, or stored in, the response cache. */
  private cacheKey: string | undefined;
  private collected = '';
  private readonly text: TextCoalescer;
  private readonly source: RequestSource;

  constructor(
    private readonly host: RequestHost,
    private readonly services: RequestServices,
    private readonly frame: GenFrame | ChatFrame,
    receivedAt: number,
  ) {
    this.lifecycle = new RequestLifecycle(receivedAt);
    this.source = requestSourceOf(frame);
    this.text = new TextCoalescer(services.config.streamCoalesceMs, host.guarded((text: string) => host.send({ t: 'tok', id: frame.id, text })));
  }

  get id(): string {
    return this.frame.id;
  }

  get state(): RequestState {
    return this.lifecycle.state;
  }

  /**
   * Stops the request. Its `end{reason}` (nothing, if the client is gone) is claimed now, not when
   * the engine has noticed: the next frame the client sends, say a new `gen` with the same id,
   * already finds this one ended. The slot is released once the step in flight is over.
   */
  cancel(cause: StopCause): void {
    if (this.controller.signal.aborted) return;
    this.controller.abort(cause);
    this.end(cause, this.generatedTokens);
  }

  async run(): Promise<void> {
    let lease: SlotLease | undefined;
    let outcome: ChatOutcome | undefined;
    try {
      const { pool, cache, telemetry, config } = this.services;
      // A key whose limits are shared across replicas (REDIS_URL) is confirmed in Redis first.
      const shared = this.host.limits.admitShared();
      if (shared) await shared;
      const { model, release } = await pool.checkout(this.frame.model);
      let prompt: PreparedPrompt;
      let params: SamplingParams;
      try {
        this.metrics = telemetry.request(model.name, this.id, this.host.origin);
        this.checkMaxTokens();
        // Checked before queueing, so a request that can never fit is refused at once.
        prompt = await this.source.prepare(model, { reserve: this.frame.maxTokens ?? 1, owner: this.host.origin.session, signal: this.controller.signal });
        this.promptTokens = prompt.tokens.length;
        params = samplingParamsFor(model, this.source.params, prompt, config.maxTokensDefault);
        this.cacheKey = prompt.cacheText === undefined ? undefined : cache.keyFor(model.fingerprint, prompt.cacheText, params);
        const cached = this.cacheKey === undefined ? undefined : cache.get(this.cacheKey);
        if (cached) return this.replay(model.name, cached);
        // The engine would seed from the clock's second, so requests in the same second would match.
        params.seed ??= randomInt(SEED_RANGE);
        this.lifecycle.moveTo('queued');
        lease = await model.acquire({
          promptTokens: prompt.tokens,
          owner: this.host.origin.session,
          signal: this.controller.signal,
          onPosition: (position) => this.host.send({ t: 'queued', id: this.id, position }),
        });
      } finally {
        release();
      }
      this.begin(model.name);
      const deadline = setTimeout(this.host.guarded(() => this.cancel(EndReason.timeout)), config.generationTimeoutMs);
      try {
        outcome = await runChat(lease.generate, prompt.tokens, params, this, this.controller.signal, prompt.tools);
      } finally {
        clearTimeout(deadline);
      }
      // Cancelled, even if the engine finished first: its text was cut at the cancel and is not cached.
      if (outcome.reason === 'aborted' || this.controller.signal.aborted) return this.end(this.stopCause(), outcome.completionTokens);
      if (outcome.reason === 'tool_calls') return this.endWithToolCalls(outcome);
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

  write(piece: string): void {
    // A cancelled request is ended before the engine stops: what it still produces goes nowhere.
    if (this.lifecycle.ended) return;
    this.lifecycle.textStarted();
    if (this.cacheKey !== undefined) this.collected += piece;
    this.text.push(piece);
  }

  waitWritable(): Promise<void> | undefined {
    const backpressure = this.host.waitWritable();
    if (backpressure) return backpressure;
    // A token bucket in debt throttles the stream until it refills.
    const throttleMs = this.host.limits.tokenWaitMs();
    return throttleMs > 0 ? new Promise((resolve) => setTimeout(resolve, throttleMs)) : undefined;
  }

  onToken(): void {
    this.generatedTokens++;
    this.host.limits.chargeToken();
    if (!this.lifecycle.ended) this.metrics?.token();
  }

  /** Generation starts (a slot, or the response cache): `start` goes out. */
  private begin(model: string): void {
    this.lifecycle.moveTo('generating');
    this.metrics?.started(this.lifecycle.startedAt - this.lifecycle.admittedAt);
    this.host.send({ t: 'start', id: this.id, model });
  }

  /** Answers from the response cache: the same frames a generation sends, with `cached: true`. */
  private replay(model: string, cached: CachedResponse): void {
    this.services.telemetry.cacheHit?.(model);
    this.begin(model);
    if (cached.text.length > 0) this.write(cached.text);
    this.end(cached.reason, cached.usage.completionTokens, true);
  }

  private checkMaxTokens(): void {
    const { maxTokensCeiling } = this.services.config;
    if (this.frame.maxTokens !== undefined && this.frame.maxTokens > maxTokensCeiling) {
      throw new ServiceError(ErrorCode.invalidParams, `"maxTokens" may be at most ${maxTokensCeiling}`, { details: { maxTokensCeiling } });
    }
  }

  /** The calls go out after any text, each in a `tool` frame; then `end{reason: "tool_calls"}`. */
  private endWithToolCalls(outcome: ChatOutcome): void {
    if (this.lifecycle.ended) return;
    this.text.flush();
    for (const call of outcome.toolCalls) {
      this.host.send({ t: 'tool', id: this.id, callId: `call_${randomBytes(12).toString('hex')}`, name: call.name, arguments: call.arguments });
    }
    this.end(EndReason.toolCalls, outcome.completionTokens);
  }

  private stopCause(): StopCause {
    return this.controller.signal.reason as StopCause;
  }

  private end(reason: EndReason | 'disconnected', completionTokens: number, cached = false): void {
    if (!this.claimEnd()) return;
    const { admittedAt, startedAt, firstTextAt, endedAt } = this.lifecycle;
    const since = (at: number): number => (at < 0 ? -1 : round(at - admittedAt));
    const usage = { promptTokens: this.promptTokens, completionTokens };
    const timings = { queueMs: since(startedAt < 0 ? endedAt : startedAt), ttftMs: since(firstTextAt), totalMs: round(endedAt - admittedAt) };
    this.metrics?.ended(reason, usage, timings);
    if (reason !== 'disconnected') this.host.send({ t: 'end', id: this.id, reason, usage, timings, ...(cached && { cached }) });
  }

  private fail(error: unknown): void {
    if (this.controller.signal.aborted && error === this.controller.signal.reason) return this.end(this.stopCause(), 0);
    const known = error instanceof ServiceError;
    if (!known) this.services.logger.error({ err: error, session: this.host.origin.session, request: this.id }, 'generation failed');
    const failure = known ? error : new ServiceError(ErrorCode.internal, 'generation failed inside the server', { cause: error });
    if (!this.claimEnd()) return;
    this.recordFailure(failure.code);
    this.host.sendError(errFrameOf(failure, this.id));
  }

  private recordFailure(code: ErrorCode): void {
    if (this.metrics) {
      const totalMs = round(this.lifecycle.endedAt - this.lifecycle.admittedAt);
      this.metrics.ended(code, { promptTokens: this.promptTokens, completionTokens: 0 }, { queueMs: -1, ttftMs: -1, totalMs });
    } else {
      this.services.telemetry.requestRefused(code, this.host.origin, this.frame.model, this.id);
    }
  }

  /** The one way to the terminal frame: true the first time, when it may be sent now. */
  private claimEnd(): boolean {
    if (this.lifecycle.ended) return false;
    // Text held for the next frame belongs before the terminal frame.
    this.text.flush();
    this.lifecycle.moveTo('ended');
    this.host.ended(this.id);
    return true;
  }
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
