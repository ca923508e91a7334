import type { ConnectionInfo, ConnectionsResponse, ModelAction, ModelActionResult, ModelInfo, ModelsResponse } from '../../../../protocol/index.js';

/*
 * The admin HTTP API, as the dashboard calls it; the types of what it sends are protocol/admin.ts.
 * Stateless: every call reads the token through the getter it was given and sends
 * `Authorization: Bearer <token>`.
 */

/** A failed admin call; `status` 0 when the server could not be reached. `body`: the parsed JSON answer, if any. */
export class AdminApiError extends Error {
  constructor(readonly status: number, message: string, readonly body?: unknown) {
    super(message);
    this.name = 'AdminApiError';
  }

  get unauthorized(): boolean {
    return this.status === 401 || this.status === 403;
  }
}

export type TokenCheck = 'accepted' | 'refused' | 'unverified';

export interface AdminApi {
  models(): Promise<ModelInfo[]>;
  modelAction(name: string, action: ModelAction): Promise<ModelActionResult>;
  connections(): Promise<ConnectionInfo[]>;
  closeConnection(id: string): Promise<void>;
  /** Asks an admin-only endpoint whether `token` is the admin token. */
  checkToken(token: string): Promise<TokenCheck>;
}

export interface AdminApiOptions {
  /** Prefix of every path. Default: '' (the server that served the page). */
  baseUrl?: string;
  /** The current admin token. */
  token(): string | undefined;
  /** Default: the global fetch. */
  fetch?: typeof fetch;
  /** Called on every 401/403, so the app can return to sign-in. */
  onUnauthorized?(): void;
}

/** Builds the admin API client. */
export function createAdminApi(options: AdminApiOptions): AdminApi {
  const base = options.baseUrl ?? '';
  const doFetch = options.fetch ?? ((input: RequestInfo | URL, init?: RequestInit) => fetch(input, init));

  async function call<T>(method: 'GET' | 'POST', path: string, token = options.token(), notifyUnauthorized = true): Promise<T> {
    let response: Response;
    try {
      response = await doFetch(base + path, {
        method,
        headers: { accept: 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      });
    } catch (error) {
      throw new AdminApiError(0, `cannot reach the server (${(error as Error).message})`);
    }
    const text = await response.text();
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = undefined;
    }
    if (!response.ok) {
      const error = new AdminApiError(response.status, errorMessage(response.status, body, text), body);
      if (error.unauthorized && notifyUnauthorized) options.onUnauthorized?.();
      throw error;
    }
    return body as T;
  }

  return {
    async models() {
      const body = await call<Partial<ModelsResponse> | undefined>('GET', '/api/models');
      return Array.isArray(body?.models) ? body.models : [];
    },
    async modelAction(name, action) {
      try {
        return await call<ModelActionResult>('POST', `/api/models/${encodeURIComponent(name)}/${action}`);
      } catch (error) {
        // An action that ran and failed answers 409 with its result (`outcome: "failed"`).
        if (error instanceof AdminApiError && error.status === 409 && isFailedAction(error.body)) return error.body;
        throw error;
      }
    },
    async connections() {
      const body = await call<Partial<ConnectionsResponse> | undefined>('GET', '/api/connections');
      return Array.isArray(body?.connections) ? body.connections : [];
    },
    async closeConnection(id) {
      await call<unknown>('POST', `/api/connections/${encodeURIComponent(id)}/close`);
    },
    async checkToken(token) {
      try {
        await call<unknown>('GET', '/api/connections', token, false);
        return 'accepted';
      } catch (error) {
        if (error instanceof AdminApiError && error.unauthorized) return 'refused';
        if (error instanceof AdminApiError && error.status === 404) return 'unverified';
        throw error;
      }
    },
  };
}

function errorMessage(status: number, body: unknown, text: string): string {
  if (status === 401 || status === 403) return 'the server refused the admin token';
  if (typeof body === 'object' && body !== null) {
    const record = body as Record<string, unknown>;
    for (const key of ['message', 'error', 'reason']) {
      if (typeof record[key] === 'string' && record[key]) return `${record[key] as string} (HTTP ${status})`;
    }
  }
  const snippet = text.trim().slice(0, 200);
  return snippet ? `${snippet} (HTTP ${status})` : `HTTP ${status}`;
}

function isFailedAction(body: unknown): body is ModelActionResult {
  return typeof body === 'object' && body !== null && (body as Partial<ModelActionResult>).outcome === 'failed' && typeof (body as Partial<ModelActionResult>).model === 'string';
}
