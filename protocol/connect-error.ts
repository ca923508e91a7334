import { ConnectErrorCode } from './constants.js';

/** What a {@link ConnectError} is made of. */
export interface ConnectErrorInit {
  code: ConnectErrorCode;
  /** Why, in words (the server's own message for a refused upgrade). */
  message: string;
  /** HTTP status of a refused upgrade; absent when the client saw none. */
  status?: number | undefined;
  /** From `Retry-After`, in milliseconds. */
  retryAfterMs?: number | undefined;
}

/**
 * Why `connect()` failed: a refused upgrade (`status` and the server's `{error, message}`), a
 * server that never answered (`unreachable`), or a connection that dropped before `hello`
 * (`connection_lost`). Branch on `code`; `message` reads `code (status): why`.
 */
export class ConnectError extends Error {
  readonly code: ConnectErrorCode;
  readonly status: number | undefined;
  readonly retryAfterMs: number | undefined;
  constructor(init: ConnectErrorInit) {
    super(`${init.code}${init.status === undefined ? '' : ` (${init.status})`}: ${init.message}`);
    this.name = 'ConnectError';
    this.code = init.code;
    this.status = init.status;
    this.retryAfterMs = init.retryAfterMs;
  }
}

/** The codes a server sends in a refusal's body; `unreachable` and `connection_lost` are the client's own. */
const REFUSAL_CODES: ReadonlySet<string> = new Set<ConnectErrorCode>([
  ConnectErrorCode.badRequest,
  ConnectErrorCode.unauthorized,
  ConnectErrorCode.forbidden,
  ConnectErrorCode.tooManyConnections,
  ConnectErrorCode.shuttingDown,
  ConnectErrorCode.internal,
]);

const CODE_OF_STATUS: Readonly<Record<number, ConnectErrorCode>> = {
  400: ConnectErrorCode.badRequest,
  401: ConnectErrorCode.unauthorized,
  403: ConnectErrorCode.forbidden,
  429: ConnectErrorCode.tooManyConnections,
  500: ConnectErrorCode.internal,
  503: ConnectErrorCode.shuttingDown,
};

/**
 * The code closest to an upgrade's HTTP status: the listed ones exactly, any other 5xx `internal`,
 * anything else (another 4xx, or a 2xx/3xx from something that is not a WebSocket endpoint) `bad_request`.
 */
export function connectErrorCodeOf(status: number): ConnectErrorCode {
  const listed = CODE_OF_STATUS[status];
  if (listed) return listed;
  return status >= 500 && status <= 599 ? ConnectErrorCode.internal : ConnectErrorCode.badRequest;
}

/** `Retry-After` (delay in seconds, or an HTTP date) in milliseconds; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  const text = value?.trim();
  if (!text) return undefined;
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // An HTTP date always names its day and month; Date.parse would read "-1" or "1.5" as years.
  if (!/[a-z]{3}/i.test(text)) return undefined;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** An upgrade answered with an HTTP error instead of `101`. */
export interface UpgradeRefusalResponse {
  status: number;
  /** The response body as text (`{error, message}` JSON from this server; anything from a proxy). */
  body: string;
  /** The `Retry-After` header, if any. */
  retryAfter?: string | undefined;
  /** The status line's text, for a body that says nothing. */
  statusText?: string | undefined;
}

/** Longest piece of a non-JSON body quoted in the message. */
const MAX_QUOTED_BODY = 200;

/**
 * The error for a refused upgrade: the body's code when it is one a server sends, else the code
 * closest to the status; the body's message, else a short plain-text body, else the status line.
 */
export function connectErrorFromRefusal(response: UpgradeRefusalResponse, now = Date.now()): ConnectError {
  const { status, body } = response;
  let code = connectErrorCodeOf(status);
  let message: string | undefined;
  const parsed = parseJsonObject(body);
  if (parsed) {
    if (typeof parsed.error === 'string' && REFUSAL_CODES.has(parsed.error)) code = parsed.error as ConnectErrorCode;
    if (typeof parsed.message === 'string' && parsed.message.trim()) message = parsed.message.trim();
  } else {
    const text = body.trim();
    if (text && text.length <= MAX_QUOTED_BODY && !text.startsWith('<')) message = text;
  }
  message ??= `the server refused the upgrade with HTTP ${status}${response.statusText ? ` ${response.statusText}` : ''}`;
  return new ConnectError({ code, status, message, retryAfterMs: parseRetryAfter(response.retryAfter, now) });
}

function parseJsonObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
