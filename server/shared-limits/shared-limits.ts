import { randomBytes } from 'node:crypto';
import os from 'node:os';
import type { Logger } from '../telemetry/logger.js';
import { RedisLink, type LinkDetails } from './redis-link.js';
import { ScriptRunner } from './script-runner.js';
import { SharedKey } from './shared-key.js';
import type { SharedKeyLimits, SharedLimit } from './types.js';

export type { SharedKey } from './shared-key.js';
export type { BucketShape, SharedKeyLimits, SharedLimit, SharedVerdict } from './types.js';

export interface SharedLimitsOptions {
  /** redis:// or rediss:// URL. */
  url: string;
  logger: Logger;
  /** This replica's name in Redis; default: host name, pid and a random suffix. */
  replica?: string;
  /** Generated tokens are sent to Redis in one batch this often. */
  flushMs?: number;
  /** A replica refreshes its published counts this often... */
  heartbeatMs?: number;
  /** ...and they lapse this long after its last refresh (a replica that died stops counting). */
  leaseMs?: number;
  /** A command unanswered this long fails and the replica falls back to local limits. */
  commandTimeoutMs?: number;
  /** While Redis does not answer on an open connection, it is asked again this often. */
  probeMs?: number;
}

const DEFAULTS = { flushMs: 100, heartbeatMs: 5000, leaseMs: 15_000, commandTimeoutMs: 500, probeMs: 1000 } as const;

/**
 * Per-key limits shared by every replica through Redis (REDIS_URL): each API key's request and
 * token buckets, its connection and stream counts. Requests and connections are decided with one
 * round trip each; generated tokens are charged here and sent in a batch every `flushMs`; counts
 * are refreshed every `heartbeatMs`. While Redis is unreachable every key is limited by this
 * replica alone (local limits), and shared again as soon as Redis answers.
 */
export class SharedLimits {
  readonly replica: string;
  private readonly link: RedisLink;
  private readonly runner: ScriptRunner;
  private readonly keys = new Map<string, SharedKey>();
  private readonly timers: NodeJS.Timeout[] = [];

  constructor(options: SharedLimitsOptions) {
    const settings = { ...DEFAULTS, ...definedOnly(options) };
    this.replica = options.replica ?? `${os.hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
    this.link = new RedisLink({ url: options.url, logger: options.logger, commandTimeoutMs: settings.commandTimeoutMs, probeMs: settings.probeMs });
    this.runner = new ScriptRunner(this.link, this.replica, settings.leaseMs);
    this.link.onChange((up) => (up ? this.resync() : this.forgetAll()));
    this.timers.push(
      setInterval(() => this.flush(), settings.flushMs).unref(),
      setInterval(() => this.heartbeat(), settings.heartbeatMs).unref(),
    );
    this.link.start();
  }

  /** True while Redis answers and limits are shared. */
  get shared(): boolean {
    return this.link.shared;
  }

  /** Times Redis went from reachable to unreachable. */
  get fallbacks(): number {
    return this.link.fallbacks;
  }

  /** Commands that failed or that Redis refused. */
  get failures(): number {
    return this.link.failures;
  }

  details(): LinkDetails {
    return this.link.details();
  }

  /** The key's shared state; the same object for as long as its limits stay the same. */
  key(name: string, limits: SharedKeyLimits): SharedKey {
    const known = this.keys.get(name);
    if (known && sameLimits(known.limits, limits)) return known;
    const key = new SharedKey(name, limits, this.runner);
    this.keys.set(name, key);
    return key;
  }

  /** Requests and connections refused by a shared limit after this replica's own view let them through. */
  get refusals(): Readonly<Record<SharedLimit, number>> {
    return this.runner.refusals;
  }

  /** Sends pending tokens and closes the link. */
  async close(): Promise<void> {
    for (const timer of this.timers) clearInterval(timer);
    await Promise.all([...this.keys.values()].map((key) => key.flushTokens()));
    await this.link.close();
  }

  /** Sends the tokens generated since the last flush, one command per key that generated any. */
  private flush(): void {
    for (const key of this.keys.values()) void key.flushTokens();
  }

  private heartbeat(): void {
    if (!this.link.shared) return;
    for (const key of this.keys.values()) if (key.active) key.publish();
  }

  /** Redis answers again (or for the first time): publish every count, start the views afresh. */
  private resync(): void {
    for (const key of this.keys.values()) {
      key.forget();
      if (key.active) key.publish();
    }
  }

  private forgetAll(): void {
    for (const key of this.keys.values()) key.forget();
  }
}

function sameLimits(a: SharedKeyLimits, b: SharedKeyLimits): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, entry]) => entry !== undefined)) as Partial<T>;
}
