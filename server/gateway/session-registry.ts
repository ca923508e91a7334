import type { StopCause } from './request-lifecycle.js';
import type { Session } from './session.js';

/**
 * The open sessions and their requests in flight: the one count of each that everything reporting
 * them (health, metrics, the live feed, admin routes, shutdown) reads.
 */
export class SessionRegistry {
  private readonly sessions = new Map<string, Session>();
  private requests = 0;
  private idleWaiters: (() => void)[] = [];
  /** Where requests that come without a session (the HTTP API) are stopped from. */
  private readonly doors: { cancelAll(cause: StopCause): void }[] = [];

  /** Open connections on the stream endpoint. */
  get size(): number {
    return this.sessions.size;
  }

  /** Requests admitted and not yet ended, across all sessions. */
  get inFlight(): number {
    return this.requests;
  }

  list(): Session[] {
    return [...this.sessions.values()];
  }

  find(id: string): Session | undefined {
    return this.sessions.get(id);
  }

  add(session: Session): void {
    this.sessions.set(session.id, session);
  }

  remove(session: Session): void {
    this.sessions.delete(session.id);
  }

  /** A session admitted a request. */
  requestStarted(): void {
    this.requests++;
  }

  /** A request of some session ended (its terminal frame was claimed). */
  requestEnded(): void {
    this.requests--;
    if (this.requests === 0) for (const wake of this.idleWaiters.splice(0)) wake();
  }

  /** Resolves when no request is in flight, or after `timeoutMs`, whichever comes first. */
  whenIdle(timeoutMs: number): Promise<void> {
    if (this.requests === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.idleWaiters.push(done);
    });
  }

  /** Counts requests that come through another door than a session (they call requestStarted/requestEnded) and stops them with `cancelAll`. */
  addDoor(door: { cancelAll(cause: StopCause): void }): void {
    this.doors.push(door);
  }

  /** Stops every request in flight; each ends with `end{reason}` where its client is still there. */
  cancelAll(cause: StopCause): void {
    for (const session of this.sessions.values()) session.cancelAll(cause);
    for (const door of this.doors) door.cancelAll(cause);
  }

  /** Closes every session with `code` (their requests are cancelled by the close). */
  closeAll(code: number, reason: string): void {
    for (const session of this.sessions.values()) session.close(code, reason, 'shutdown');
  }
}
