import type { ModelInfo } from './frames.js';

/*
 * The admin HTTP API (docs/api.md, "HTTP routes"), as the server sends it: JSON bodies. Every route
 * but `GET /api/models` needs the admin token as a bearer token.
 */

/** `GET /api/models` (no token needed): every model with its state. */
export interface ModelsResponse {
  models: ModelInfo[];
}

/** What `POST /api/models/:name/{action}` does. */
export type ModelAction = 'load' | 'unload' | 'reload';

/**
 * `POST /api/models/:name/{load,unload,reload}`: what the action did. HTTP 200, or 409 with
 * `outcome: "failed"` and the reason in `message`.
 */
export interface ModelActionResult {
  model: string;
  action: ModelAction;
  outcome: 'loaded' | 'unloaded' | 'reloaded' | 'failed';
  /** How long the action took, in milliseconds. */
  ms: number;
  /** Why it failed. */
  message?: string;
}

/** One open client connection of `GET /api/connections`. */
export interface ConnectionInfo {
  /** Session id, as `POST /api/connections/:id/close` takes it. */
  id: string;
  /** Name of the API key, or `anonymous` when the service runs open. */
  keyName: string;
  remoteAddress: string;
  /** When it opened: epoch milliseconds on the server's clock. */
  openedAt: number;
  /** Requests running or queued on it. */
  inFlight: number;
  /** Levels of its rate-limit buckets; absent when no bucket applies. */
  bucket?: { requestsRemaining?: number; tokensRemaining?: number };
}

/** `GET /api/connections`: the open client connections. */
export interface ConnectionsResponse {
  connections: ConnectionInfo[];
}

/** `POST /api/connections/:id/close`: the connection was closed with 1008. */
export interface CloseConnectionResponse {
  closed: true;
}

/**
 * The body of a refused admin call: `unauthorized` (401: no or a wrong admin token), `forbidden`
 * (403: a client API key), `not_found` (404: no such connection), or the error code of a model
 * action that could not start (`model_not_found` 404, others 409).
 */
export interface AdminErrorBody {
  error: string;
  message: string;
}
