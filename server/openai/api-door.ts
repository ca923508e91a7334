import { randomUUID } from 'node:crypto';
import { ErrorCode } from '../../protocol/index.js';
import type { ApiKeyStore } from '../auth/api-keys.js';
import { presentedSecret } from '../auth/bearer.js';
import { ServiceError } from '../errors.js';
import type { KeyBudgets } from '../gateway/key-budgets.js';
import type { StopCause } from '../gateway/request-lifecycle.js';
import type { SessionRegistry } from '../gateway/session-registry.js';
import { jsonReply } from '../http/json-reply.js';
import type { HttpExchange, HttpReply, HttpRequestInfo } from '../transport/types.js';
import { ApiError } from './api-error.js';
import { ApiGeneration, type ApiServices } from './api-generation.js';
import { readChatRequest } from './chat-request.js';
import { readCompletionRequest } from './completion-request.js';
import { corsHeaders } from './cors.js';
import { HttpClients, type HttpClient } from './http-clients.js';
import { modelList, modelObject } from './model-objects.js';
import { rateLimitHeaders } from './rate-limit-headers.js';
import { chatFormat, completionFormat } from './reply-format.js';
import { readJsonObject } from './request-body.js';

/** What the HTTP API needs besides what every request shares. */
export interface ApiDoorContext extends Omit<ApiServices, 'clients' | 'counter'> {
  /** The Host and Origin rules of WebSocket upgrades (UpgradeGuard.callerRefusal). */
  callerRefusal(headers: Record<string, string>): string | undefined;
  keys: ApiKeyStore | undefined;
  budgets: KeyBudgets;
  registry: SessionRegistry;
  isShuttingDown(): boolean;
}

/** Which endpoint a generation came through. */
export type Endpoint = 'chat' | 'completion';

const ID_PREFIX: Record<Endpoint, string> = { chat: 'chatcmpl-', completion: 'cmpl-' };

/**
 * The OpenAI-compatible API's side of the service: who may call (Host and Origin as for upgrades,
 * the API key as a Bearer token), the callers' limits, and the generations in flight, which run
 * as StreamRequests like the WebSocket's and are counted and stopped with them.
 */
export class ApiDoor {
  private readonly generations = new Set<ApiGeneration>();
  private readonly clients: HttpClients;
  private readonly services: ApiServices;
  /** Unix seconds: the `created` of every model object. */
  private readonly startedAt = Math.floor(Date.now() / 1000);

  constructor(private readonly context: ApiDoorContext) {
    this.clients = new HttpClients(context.config, context.budgets);
    this.services = { ...context, clients: this.clients, counter: context.registry };
    context.registry.addDoor(this);
  }

  /** Generations in flight (for tests). */
  get inFlight(): number {
    return this.generations.size;
  }

  /** Stops every generation in flight (shutdown). */
  cancelAll(cause: StopCause): void {
    for (const generation of this.generations) generation.cancel(cause);
  }

  /** Forgets the callers' limits (after shutdown). */
  close(): void {
    this.clients.clear();
  }

  /** `POST /v1/chat/completions` and `POST /v1/completions`. */
  async generate(endpoint: Endpoint, request: HttpRequestInfo, exchange: HttpExchange): Promise<HttpReply | undefined> {
    const receivedAt = performance.now();
    const cors = this.cors(request);
    let client: HttpClient;
    try {
      client = this.caller(request);
    } catch (error) {
      return replyFor(error, cors);
    }
    const id = `${ID_PREFIX[endpoint]}${randomUUID().replaceAll('-', '')}`;
    const headers = (): Record<string, string> => ({ ...cors, 'x-request-id': id, ...rateLimitHeaders(client.limits) });
    let model: string | undefined;
    try {
      const body = readJsonObject(request.body);
      const { frame, ...mode } = endpoint === 'chat' ? readChatRequest(body, id) : readCompletionRequest(body, id);
      model = frame.model;
      this.admit(client, model);
      const created = Math.floor(Date.now() / 1000);
      const format = (endpoint === 'chat' ? chatFormat : completionFormat)({ id, created, includeUsage: mode.includeUsage });
      const generation = new ApiGeneration(this.services, client, exchange, frame, mode, format, headers, (ended) => this.ended(ended), receivedAt);
      this.started(generation);
      return await generation.run();
    } catch (error) {
      if (!(error instanceof ApiError || error instanceof ServiceError)) throw error;
      this.refused(client, error, model, id);
      return replyFor(error, headers());
    } finally {
      this.clients.done(client);
    }
  }

  /** `GET /v1/models`: the models the caller may use. */
  models(request: HttpRequestInfo): HttpReply {
    const cors = this.cors(request);
    try {
      const client = this.caller(request);
      const reply = jsonReply(200, modelList(this.context.pool.list(), this.startedAt, client.budget?.entry.models), { ...cors, ...rateLimitHeaders(client.limits) });
      this.clients.done(client);
      return reply;
    } catch (error) {
      return replyFor(error, cors);
    }
  }

  /** `GET /v1/models/{id}`. */
  model(request: HttpRequestInfo): HttpReply {
    const cors = this.cors(request);
    try {
      const client = this.caller(request);
      this.clients.done(client);
      const headers = { ...cors, ...rateLimitHeaders(client.limits) };
      const name = request.params.id ?? '';
      const model = this.context.pool.list().find((candidate) => candidate.name === name);
      if (!model) return new ApiError(404, ErrorCode.modelNotFound, `no model "${name.slice(0, 256)}"`, 'model').reply(headers);
      const allowed = client.budget?.entry.models;
      if (allowed && !allowed.includes(name)) return new ApiError(403, ErrorCode.forbiddenModel, `this API key may not use model "${name}"`, 'model').reply(headers);
      return jsonReply(200, modelObject(model, this.startedAt), headers);
    } catch (error) {
      return replyFor(error, cors);
    }
  }

  /** CORS headers for an answer to this request: none for an Origin (or Host) that is refused, so its browser cannot read it. */
  cors(request: HttpRequestInfo): Record<string, string> {
    return this.context.callerRefusal(request.headers) === undefined ? corsHeaders(request) : {};
  }

  /**
   * Who is calling: refused while shutting down, for a Host or Origin an upgrade would be refused
   * for, and without a valid API key when there are keys. The same caller (key and address) gets
   * the same limits from one request to the next.
   */
  private caller(request: HttpRequestInfo): HttpClient {
    if (this.context.isShuttingDown()) throw new ApiError(503, ErrorCode.shuttingDown, 'the server is shutting down', null, 5000);
    const refusal = this.context.callerRefusal(request.headers);
    if (refusal !== undefined) throw new ApiError(403, 'forbidden', refusal);
    const { keys, budgets, config } = this.context;
    let client: HttpClient;
    if (keys) {
      const secret = presentedSecret(request.headers);
      const entry = secret === undefined ? undefined : keys.authenticate(secret);
      if (!entry) throw new ApiError(401, 'invalid_api_key', 'a valid API key is required: send it as "Authorization: Bearer <key>"', null, undefined, undefined, { 'www-authenticate': 'Bearer' });
      client = this.clients.clientOf(entry.name, budgets.budgetOf(entry), request.remoteAddress);
    } else {
      client = this.clients.clientOf('anonymous', undefined, request.remoteAddress);
    }
    // Every request counts in the frame bucket, as every WebSocket frame does, refused or not:
    // a flood of malformed requests is a flood.
    if (client.limits.admitFrame() !== 'ok') {
      this.clients.done(client);
      this.context.telemetry.rateLimited(client.origin);
      const message = `more than ${config.maxFramesPerSecond} requests per second`;
      throw new ApiError(429, ErrorCode.rateLimited, message, null, client.limits.frameRetryMs(), undefined, rateLimitHeaders(client.limits));
    }
    return client;
  }

  /**
   * The checks a WebSocket connection makes before a `gen`: the caller's in-flight cap (as many as
   * one address may run over WebSockets), then its and its key's buckets, stream cap and models.
   */
  private admit(client: HttpClient, model: string | undefined): void {
    const { config } = this.context;
    const cap = config.maxConnectionsPerIp * config.maxStreamsPerConnection;
    if (client.inFlight >= cap) {
      throw new ServiceError(ErrorCode.tooManyStreams, `at most ${cap} requests may be in flight for one caller`, { details: { limit: cap } });
    }
    client.limits.admitGeneration(model, this.context.pool.defaultName);
  }

  private started(generation: ApiGeneration): void {
    const client = generation.client;
    this.generations.add(generation);
    client.inFlight++;
    if (client.budget) client.budget.streams++;
    this.context.registry.requestStarted();
  }

  private ended(generation: ApiGeneration): void {
    if (!this.generations.delete(generation)) return;
    const client = generation.client;
    client.inFlight--;
    if (client.budget) client.budget.streams--;
    this.context.registry.requestEnded();
    this.clients.done(client);
  }

  /** A request refused before it reached a model: counted and logged as the WebSocket's refusals are. */
  private refused(client: HttpClient, error: ApiError | ServiceError, model: string | undefined, id: string): void {
    const { telemetry } = this.context;
    const code = error instanceof ServiceError ? error.code : protocolCodeOf(error.code);
    telemetry.requestRefused(code, client.origin, model, id);
    telemetry.error(code, error.message);
    if (code === ErrorCode.rateLimited) telemetry.rateLimited(client.origin);
  }
}

const PROTOCOL_CODES: ReadonlySet<string> = new Set(Object.values(ErrorCode));

/** The protocol's code for a refusal of this API (an unparsable body is a bad frame; an unsupported field, invalid params). */
function protocolCodeOf(code: string): ErrorCode {
  if (PROTOCOL_CODES.has(code)) return code as ErrorCode;
  return code === 'invalid_json' ? ErrorCode.badFrame : ErrorCode.invalidParams;
}

/** The answer for a refusal: an ApiError as it is, a ServiceError with its code's status. */
function replyFor(error: unknown, headers: Record<string, string>): HttpReply {
  if (error instanceof ApiError) return error.reply(headers);
  if (error instanceof ServiceError) return ApiError.of(error).reply(headers);
  throw error;
}
