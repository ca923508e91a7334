import type { EndReason } from '../../protocol/index.js';

/** Why a request was stopped from outside: an end reason the client sees, or its disconnect. */
export type StopCause = typeof EndReason.cancelled | typeof EndReason.timeout | typeof EndReason.slowConsumer | typeof EndReason.shutdown | 'disconnected';

/**
 * Where a request is: `admitted` (checked, tokenizing), `queued` (waiting for a slot),
 * `generating` (a slot or the response cache is producing its text), `ended` (its one terminal
 * frame is claimed; nothing more is sent for it).
 */
export type RequestState = 'admitted' | 'queued' | 'generating' | 'ended';

const NEXT: Record<RequestState, readonly RequestState[]> = {
  admitted: ['queued', 'generating', 'ended'],
  queued: ['generating', 'ended'],
  generating: ['ended'],
  ended: [],
};

/** A request's state and when it entered each one (performance.now(); -1 until it did). */
export class RequestLifecycle {
  private current: RequestState = 'admitted';
  readonly admittedAt: number;
  queuedAt = -1;
  startedAt = -1;
  firstTextAt = -1;
  endedAt = -1;

  constructor(admittedAt: number) {
    this.admittedAt = admittedAt;
  }

  get state(): RequestState {
    return this.current;
  }

  get ended(): boolean {
    return this.current === 'ended';
  }

  /** Moves to `next` if the table allows it; false when it does not (e.g. anything after `ended`). */
  moveTo(next: RequestState, at = performance.now()): boolean {
    if (!NEXT[this.current].includes(next)) return false;
    this.current = next;
    if (next === 'queued') this.queuedAt = at;
    else if (next === 'generating') this.startedAt = at;
    else if (next === 'ended') this.endedAt = at;
    return true;
  }

  /** The first text of the reply was produced. */
  textStarted(at = performance.now()): void {
    if (this.firstTextAt < 0) this.firstTextAt = at;
  }
}
