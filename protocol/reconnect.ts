import { CloseCode, ConnectErrorCode } from './constants.js';
import { ConnectError } from './connect-error.js';

/** How the client reconnects after its connection dropped. */
export interface ReconnectOptions {
  /** Delay before the first attempt, doubled for each next one; each delay is drawn between half and all of it. Default: 250 ms. */
  initialDelayMs?: number;
  /** Longest delay between two attempts. Default: 5000 ms. */
  maxDelayMs?: number;
  /** Most attempts before giving up. Default: as many as fit in the server's resume window. */
  maxAttempts?: number;
}

/** The defaults of {@link ReconnectOptions}. */
export const RECONNECT_DEFAULTS: Required<ReconnectOptions> = { initialDelayMs: 250, maxDelayMs: 5000, maxAttempts: Number.POSITIVE_INFINITY };

/**
 * A close after which the client reconnects: one without a close handshake (1006: the network
 * dropped, the server process died, or the connection went silent). A close the server sent on
 * purpose (shutdown, policy, an error) or the client asked for is final.
 */
export function isDrop(closeCode: number): boolean {
  return closeCode === CloseCode.abnormal;
}

/** Refusals no retry can fix: a wrong URL or subprotocol, a missing or wrong API key, a refused origin or host. */
const FINAL_REFUSALS: ReadonlySet<string> = new Set<string>([ConnectErrorCode.badRequest, ConnectErrorCode.unauthorized, ConnectErrorCode.forbidden]);

/**
 * The URL to redial to resume: `url` with `replica=<replica>` in its query, so a balancer can send
 * the connection back to the replica that holds the streams (docs/deployment.md). Unchanged when
 * there is no replica to name.
 */
export function resumeUrl(url: string, replica: string | undefined): string {
  if (!replica) return url;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // The attempt reports a bad URL itself.
    return url;
  }
  parsed.searchParams.set('replica', replica);
  return parsed.toString();
}

/**
 * A refusal that says the named replica cannot take the connection back (it is stopping, or the
 * balancer found it gone: 5xx): later attempts go to any replica. Unreachable is not one of them:
 * it is what a network that is still down looks like.
 */
export function replicaGone(error: unknown): boolean {
  return error instanceof ConnectError && (error.code === ConnectErrorCode.shuttingDown || error.code === ConnectErrorCode.internal);
}

/** The wait before attempt `attempt` (0 for the first): exponential, capped, with jitter so clients that dropped together do not return together. */
export function backoffDelay(attempt: number, options: Required<ReconnectOptions>, random: () => number = Math.random): number {
  const ceiling = Math.min(options.maxDelayMs, options.initialDelayMs * 2 ** attempt);
  return ceiling / 2 + (random() * ceiling) / 2;
}

/** When and how long to keep trying. */
export interface RetryPlan {
  options: Required<ReconnectOptions>;
  /** Epoch milliseconds after which no attempt starts (the server will have cancelled what it kept). */
  deadline: number;
  /** True once the caller no longer wants a connection (the client was closed). */
  abandoned(): boolean;
}

/**
 * Calls `open` until it succeeds, waiting between attempts as {@link backoffDelay} says, and at
 * least as long as a refusal's `Retry-After`. Rejects with the last error on a refusal no retry can
 * fix, after `maxAttempts`, when the next attempt would start past the deadline, or once abandoned.
 */
export async function retryWithBackoff<T>(open: () => Promise<T>, plan: RetryPlan): Promise<T> {
  let lastError: unknown = new ConnectError({ code: ConnectErrorCode.unreachable, message: 'no reconnect attempt fit in the resume window' });
  for (let attempt = 0; attempt < plan.options.maxAttempts; attempt++) {
    let waitMs = backoffDelay(attempt, plan.options);
    if (lastError instanceof ConnectError && lastError.retryAfterMs !== undefined) waitMs = Math.max(waitMs, lastError.retryAfterMs);
    if (Date.now() + waitMs > plan.deadline) break;
    await new Promise((resolve) => setTimeout(resolve, waitMs));
    if (plan.abandoned()) break;
    try {
      return await open();
    } catch (error) {
      lastError = error;
      if (error instanceof ConnectError && FINAL_REFUSALS.has(error.code)) break;
    }
  }
  throw lastError;
}
