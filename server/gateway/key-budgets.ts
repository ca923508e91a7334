import type { ApiKeyEntry } from '../auth/api-keys.js';
import { TokenBucket } from '../limits/token-bucket.js';

/** What all connections of one API key share: aggregate buckets and counts. */
export interface KeyBudget {
  readonly entry: ApiKeyEntry;
  readonly requests: TokenBucket | undefined;
  readonly tokens: TokenBucket | undefined;
  connections: number;
  streams: number;
}

/** Per-key budgets, created on a key's first connection and dropped with its last. */
export class KeyBudgets {
  private readonly budgets = new Map<string, KeyBudget>();

  /** The key's budget; count the connection with `attach` once it opened. */
  budgetOf(entry: ApiKeyEntry): KeyBudget {
    let budget = this.budgets.get(entry.name);
    if (!budget) {
      const limits = entry.limits ?? {};
      budget = {
        entry,
        requests: limits.requestsPerSecond === undefined ? undefined : new TokenBucket({ capacity: limits.requestBurst ?? Math.max(1, limits.requestsPerSecond), refillPerSecond: limits.requestsPerSecond }),
        tokens: limits.tokensPerSecond === undefined ? undefined : new TokenBucket({ capacity: limits.tokenBurst ?? Math.max(1, limits.tokensPerSecond), refillPerSecond: limits.tokensPerSecond }),
        connections: 0,
        streams: 0,
      };
      this.budgets.set(entry.name, budget);
    }
    return budget;
  }

  attach(budget: KeyBudget): void {
    budget.connections++;
  }

  detach(budget: KeyBudget): void {
    budget.connections--;
    // Buckets are kept while any connection lives, so reconnecting cannot reset them.
    if (budget.connections === 0 && budget.streams === 0) this.budgets.delete(budget.entry.name);
  }
}
