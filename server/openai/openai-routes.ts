import type { Config } from '../config/config.js';
import type { BodyLimits, HttpReply, HttpRequestInfo, HttpRoute } from '../transport/types.js';
import { ApiError } from './api-error.js';
import type { ApiDoor } from './api-door.js';
import { preflightReply } from './cors.js';

/** Paths of the OpenAI-compatible API, as OpenAI names them. */
export const OPENAI_PATHS = {
  chat: '/v1/chat/completions',
  completions: '/v1/completions',
  models: '/v1/models',
  model: '/v1/models/:id',
} as const;

/**
 * The OpenAI-compatible routes: chat and prompt completions (whole or streamed as server-sent
 * events), the models, and the CORS preflight of each path for browser frontends.
 */
export function openAiRoutes(door: ApiDoor, config: Config, callerRefusal: (headers: Record<string, string>) => string | undefined): HttpRoute[] {
  const body: BodyLimits = {
    maxBytes: config.httpBodyMaxBytes,
    timeoutMs: config.httpBodyTimeoutMs,
    refuse: (reason, request) =>
      reason === 'too_large'
        ? new ApiError(413, 'payload_too_large', `the request body may have at most ${config.httpBodyMaxBytes} bytes`).reply(door.cors(request))
        : new ApiError(408, 'request_timeout', `the request body did not arrive within ${config.httpBodyTimeoutMs} ms`).reply(door.cors(request)),
  };
  const preflight = (pattern: string, methods: string): HttpRoute => ({
    method: 'options',
    pattern,
    handle: (request) => preflightFor(request, methods, callerRefusal),
  });
  return [
    { method: 'post', pattern: OPENAI_PATHS.chat, body, handle: (request, exchange) => door.generate('chat', request, exchange) },
    { method: 'post', pattern: OPENAI_PATHS.completions, body, handle: (request, exchange) => door.generate('completion', request, exchange) },
    { method: 'get', pattern: OPENAI_PATHS.models, handle: (request) => door.models(request) },
    { method: 'get', pattern: OPENAI_PATHS.model, handle: (request) => door.model(request) },
    preflight(OPENAI_PATHS.chat, 'POST'),
    preflight(OPENAI_PATHS.completions, 'POST'),
    preflight(OPENAI_PATHS.models, 'GET'),
    preflight(OPENAI_PATHS.model, 'GET'),
  ];
}

/** A preflight from an Origin (and Host) an upgrade would be refused for gets 403 and no CORS headers: the browser stops there. */
function preflightFor(request: HttpRequestInfo, methods: string, callerRefusal: (headers: Record<string, string>) => string | undefined): HttpReply {
  const refusal = callerRefusal(request.headers);
  if (refusal !== undefined) return new ApiError(403, 'forbidden', refusal).reply();
  return preflightReply(request, methods);
}
