import type { ErrFrame, ServerFrame } from '../../protocol/index.js';
import type { ResponseCache } from '../cache/response-cache.js';
import type { Config } from '../config/config.js';
import type { ModelPool } from '../pool/model-pool.js';
import type { Origin, Telemetry } from '../telemetry/events.js';
import type { Logger } from '../telemetry/logger.js';

/** What a request needs of the connection it came on, and nothing more. */
export interface RequestHost {
  /** Whose request this is: the session id is the fairness key of every queue. */
  readonly origin: Origin;
  send(frame: ServerFrame): void;
  sendError(error: Omit<ErrFrame, 't'>): void;
  /** A promise while the socket cannot take more text; undefined when it can. */
  waitWritable(): Promise<void> | undefined;
  /** The connection's generated-token bucket, and the confirmation of its key's limits shared across replicas. */
  readonly limits: { chargeToken(): void; tokenWaitMs(): number; admitShared(): Promise<void> | undefined };
  /** Wraps a callback run from a timer or a promise: a throw closes this connection, never the process. */
  guarded<A extends unknown[]>(body: (...args: A) => void): (...args: A) => void;
  /** The request with this id claimed its terminal frame: it no longer counts. */
  ended(id: string): void;
}

/** What every request shares, whatever connection it came on. */
export interface RequestServices {
  config: Config;
  pool: ModelPool;
  cache: ResponseCache;
  telemetry: Telemetry;
  logger: Logger;
}

/** Counts requests in flight across sessions. */
export interface RequestCounter {
  requestStarted(): void;
  requestEnded(): void;
}
