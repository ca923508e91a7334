import type { Timings, Usage } from '../../protocol/index.js';
import type { CloseCause, Origin } from './events.js';
import type { Logger } from './logger.js';

const MAX_FIELD = 128;

/**
 * Lines of access.log: one per connection open and close, one per request. Identifiers, counts
 * and timings only: never prompt text, generated text or key material (keys appear by name).
 */
export class AccessLog {
  constructor(private readonly log: Logger) {}

  connectionOpened(origin: Origin): void {
    this.log.info({ event: 'connection_open', session: origin.session, remote: origin.remoteAddress, key: origin.keyName }, 'connection open');
  }

  connectionClosed(origin: Origin, cause: CloseCause, ageMs: number): void {
    this.log.info(
      { event: 'connection_close', session: origin.session, remote: origin.remoteAddress, key: origin.keyName, cause, durationMs: Math.round(ageMs) },
      'connection closed',
    );
  }

  /** A request that reached a model, once it ended. */
  requestEnded(requestId: string, origin: Origin, model: string, outcome: string, usage: Usage, timings: Timings): void {
    this.log.info(
      {
        event: 'request',
        request: clip(requestId),
        session: origin.session,
        key: origin.keyName,
        model,
        outcome,
        promptTokens: usage.promptTokens,
        generatedTokens: usage.completionTokens,
        queueMs: timings.queueMs,
        ttftMs: timings.ttftMs,
        durationMs: timings.totalMs,
      },
      'request',
    );
  }

  /** A request refused before it reached a model. `model` is what the client asked for. */
  requestRefused(code: string, origin: Origin, model: string | undefined, requestId: string | undefined): void {
    const line: Record<string, unknown> = { event: 'request', session: origin.session, key: origin.keyName, outcome: code };
    if (requestId !== undefined) line.request = clip(requestId);
    if (model !== undefined) line.model = clip(model);
    this.log.info(line, 'request refused');
  }
}

function clip(value: string): string {
  return value.length > MAX_FIELD ? `${value.slice(0, MAX_FIELD)}…` : value;
}
