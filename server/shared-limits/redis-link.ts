import { Redis } from 'ioredis';
import type { Logger } from '../telemetry/logger.js';

/** How the link to Redis stands, as /readyz shows it. */
export interface LinkDetails {
  /** `shared`: per-key limits hold across replicas; `local`: Redis is unreachable, each replica limits on its own. */
  limits: 'shared' | 'local';
  redis: 'up' | 'down';
  /** When the link last changed (ISO 8601). */
  since: string;
  /** Why it is down. */
  error?: string;
}

export interface RedisLinkOptions {
  url: string;
  logger: Logger;
  /** A command without an answer within this long fails, and the link is taken as down. */
  commandTimeoutMs: number;
  /** While commands fail on an open connection, a PING this often tells when Redis answers again. */
  probeMs: number;
}

/** Errors Redis answers are logged at most this often. */
const REJECTION_LOG_INTERVAL_MS = 10_000;
/** Longest wait between two reconnection attempts. */
const MAX_RECONNECT_DELAY_MS = 2000;

/**
 * The connection to Redis and whether shared limits can be used now: up once Redis answers, down
 * while it is unreachable or its commands fail (time out), up again when it answers. Changes are
 * logged once each and told to listeners (which resynchronise on the way up). Never throws at
 * the service: an unreachable Redis only means local limits.
 */
export class RedisLink {
  readonly client: Redis;
  private up = false;
  private since = new Date();
  private lastError: string | undefined = 'connecting';
  private probe: NodeJS.Timeout | undefined;
  private closing = false;
  private readonly listeners: ((up: boolean) => void)[] = [];
  /** Times the link went from up to down. */
  fallbacks = 0;
  /** Commands that failed (timed out, the connection broke under them, or Redis answered an error). */
  failures = 0;
  private lastRejectionLoggedAt = 0;

  constructor(private readonly options: RedisLinkOptions) {
    this.client = new Redis(options.url, {
      lazyConnect: true,
      // Without a connection a command fails at once (the caller uses local limits) instead of queueing.
      enableOfflineQueue: false,
      // A command cut off by a broken connection is not sent again later: its moment has passed.
      maxRetriesPerRequest: 0,
      commandTimeout: options.commandTimeoutMs,
      connectTimeout: Math.max(1000, options.commandTimeoutMs * 4),
      enableAutoPipelining: true,
      retryStrategy: (attempt) => Math.min(50 * 2 ** Math.min(attempt, 6), MAX_RECONNECT_DELAY_MS),
    });
    this.client.on('ready', () => this.set(true));
    this.client.on('close', () => this.set(false, this.lastError ?? 'connection closed'));
    // ioredis emits every connection error; the state change is what gets logged.
    this.client.on('error', (error: Error) => {
      this.lastError = error.message;
    });
  }

  /** Connects in the background; the service starts with local limits until Redis answers. */
  start(): void {
    this.client.connect().catch((error: Error) => {
      this.lastError = error.message;
      this.options.logger.warn({ redis: redactedUrl(this.options.url), err: error }, 'Redis unreachable at start: per-key limits are local until it answers');
    });
  }

  /** True while Redis answers: limits are shared. */
  get shared(): boolean {
    return this.up;
  }

  onChange(listener: (up: boolean) => void): void {
    this.listeners.push(listener);
  }

  details(): LinkDetails {
    return {
      limits: this.up ? 'shared' : 'local',
      redis: this.up ? 'up' : 'down',
      since: this.since.toISOString(),
      ...(!this.up && this.lastError !== undefined && { error: this.lastError }),
    };
  }

  /** A command failed on a connection that looks open (say, Redis stopped answering): fall back until a PING answers. */
  failed(error: unknown): void {
    this.failures++;
    const message = error instanceof Error ? error.message : String(error);
    this.lastError = message;
    if (!this.up) return;
    this.set(false, message);
    this.probe ??= setInterval(() => {
      if (this.client.status !== 'ready') return;
      this.client.ping().then(
        () => this.set(true),
        (pingError: Error) => {
          this.lastError = pingError.message;
        },
      );
    }, this.options.probeMs).unref();
  }

  /** Redis answered a command with an error: counted and logged (at most every few seconds), the link stays up. */
  rejected(error: Error, command: string): void {
    this.failures++;
    const now = Date.now();
    if (now - this.lastRejectionLoggedAt < REJECTION_LOG_INTERVAL_MS) return;
    this.lastRejectionLoggedAt = now;
    this.options.logger.error({ err: error, command }, 'Redis refused a shared-limit command: that decision was taken locally');
  }

  /** Closes the connection (after the commands already sent). */
  async close(): Promise<void> {
    this.closing = true;
    clearInterval(this.probe);
    this.probe = undefined;
    if (this.client.status === 'ready') await this.client.quit().catch(() => this.client.disconnect());
    else this.client.disconnect();
  }

  private set(up: boolean, reason?: string): void {
    if (up) {
      clearInterval(this.probe);
      this.probe = undefined;
    }
    if (this.up === up || this.closing) return;
    this.up = up;
    this.since = new Date();
    const redis = redactedUrl(this.options.url);
    if (up) {
      this.lastError = undefined;
      this.options.logger.info({ redis }, 'Redis answers: per-key limits are shared across replicas');
    } else {
      this.fallbacks++;
      this.options.logger.warn({ redis, reason }, 'Redis unreachable: per-key limits are local to this replica until it answers again');
    }
    for (const listener of this.listeners) listener(up);
  }
}

/** The URL without user name or password, for logs. */
export function redactedUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}${parsed.pathname === '/' ? '' : parsed.pathname}`;
  } catch {
    return '(invalid url)';
  }
}
