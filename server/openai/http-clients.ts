import { randomUUID } from 'node:crypto';
import type { Config } from '../config/config.js';
import { ConnectionLimits } from '../gateway/connection-limits.js';
import type { KeyBudget, KeyBudgets } from '../gateway/key-budgets.js';
import type { Origin } from '../telemetry/events.js';

/**
 * One caller of the HTTP API: an API key at a remote address (or an address alone when the service
 * runs open). It holds what a WebSocket connection holds — request and token buckets, the key's
 * shared budget — across its requests, which come without a connection to hang them on.
 */
export interface HttpClient {
  /** `session` is this client's fairness key in the scheduler and its name in the access log. */
  readonly origin: Origin;
  readonly limits: ConnectionLimits;
  readonly budget: KeyBudget | undefined;
  /** Generations in flight. */
  inFlight: number;
}

interface Entry extends HttpClient {
  readonly name: string;
  sweep: ReturnType<typeof setTimeout> | undefined;
}

/**
 * The HTTP API's callers, each kept while a request of theirs runs or their buckets are refilling:
 * dropped any sooner, a client would come back with full buckets.
 */
export class HttpClients {
  private readonly clients = new Map<string, Entry>();

  constructor(private readonly config: Config, private readonly budgets: KeyBudgets) {}

  /** Callers known now (for tests). */
  get size(): number {
    return this.clients.size;
  }

  /** The caller with this key (undefined: open service) at this address, made on its first request. */
  clientOf(keyName: string, budget: KeyBudget | undefined, remoteAddress: string): HttpClient {
    const name = `${keyName}\n${remoteAddress}`;
    let entry = this.clients.get(name);
    if (!entry) {
      entry = {
        name,
        origin: { session: `http-${randomUUID()}`, remoteAddress, keyName },
        limits: new ConnectionLimits(this.config, budget),
        budget,
        inFlight: 0,
        sweep: undefined,
      };
      if (budget) this.budgets.hold(budget);
      this.clients.set(name, entry);
    }
    clearTimeout(entry.sweep);
    entry.sweep = undefined;
    return entry;
  }

  /** The caller's request ended (or was refused): it goes once idle with full buckets. */
  done(client: HttpClient): void {
    const entry = this.clients.get(nameOf(client));
    if (entry !== client) return;
    this.sweepLater(entry);
  }

  /** Forgets every caller (shutdown). */
  clear(): void {
    for (const entry of this.clients.values()) this.drop(entry);
  }

  private sweepLater(entry: Entry): void {
    clearTimeout(entry.sweep);
    if (entry.inFlight > 0) return;
    const waitMs = entry.limits.msUntilFull();
    if (waitMs <= 0) return this.drop(entry);
    // Refill is computed, not timed: the entry only has to outlive the wait.
    entry.sweep = setTimeout(() => this.sweepLater(entry), Math.min(waitMs + 1, 2 ** 31 - 1));
    entry.sweep.unref();
  }

  private drop(entry: Entry): void {
    clearTimeout(entry.sweep);
    if (this.clients.get(entry.name) !== entry) return;
    this.clients.delete(entry.name);
    if (entry.budget) this.budgets.unhold(entry.budget);
  }
}

function nameOf(client: HttpClient): string {
  return `${client.origin.keyName}\n${client.origin.remoteAddress}`;
}
