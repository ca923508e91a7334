import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Service, ServiceHooks } from '../../server/app.js';
import type { Config } from '../../server/config/config.js';
import { parseExposition } from '../helpers/exposition.js';
import { parseResponses, requestBytes, sseData, WireClient, type WireResponse } from '../helpers/http-wire.js';
import { metricTotal, startTestService, waitForIdle } from '../helpers/service.js';
import { waitFor } from '../helpers/wait.js';

/*
 * The OpenAI-compatible API on the wire, against the real server on the demo model: bodies that
 * are malformed, mistyped, too large or too slow; the SSE framing byte by byte; CORS; rate-limit
 * headers; methods; a client that stops reading (the slot pauses, no text is lost) or leaves.
 */

const PROMPT = 'Alice was beginning to get very tired';
const services: Service[] = [];
const clients: WireClient[] = [];

afterAll(async () => {
  for (const client of clients) client.close();
  await Promise.all(services.map((service) => service.shutdown(0)));
});

async function start(overrides: Partial<Config> = {}, hooks: ServiceHooks = {}): Promise<Service> {
  const service = await startTestService(overrides, undefined, hooks);
  services.push(service);
  return service;
}

async function wire(service: Service): Promise<WireClient> {
  const client = await WireClient.connect(service.httpUrl);
  clients.push(client);
  return client;
}

/** One request on a fresh connection, and its response. */
async function exchange(service: Service, method: string, path: string, headers: Record<string, string> = {}, body = ''): Promise<WireResponse> {
  const client = await wire(service);
  const sized = body === '' && method === 'GET' ? headers : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), ...headers };
  client.write(requestBytes(method, path, sized, body));
  const [response] = await client.responses(1, 30_000);
  client.close();
  return response!;
}

function post(service: Service, path: string, body: unknown, headers: Record<string, string> = {}): Promise<WireResponse> {
  return exchange(service, 'POST', path, headers, typeof body === 'string' ? body : JSON.stringify(body));
}

/** Requests that ended with `outcome` (llm_requests_total{outcome}). */
async function outcomes(service: Service, outcome: string): Promise<number> {
  const families = parseExposition(await service.observability.metrics!.prometheus.text());
  return (families.get('llm_requests_total')?.samples ?? []).filter((sample) => sample.labels.outcome === outcome).reduce((sum, sample) => sum + sample.value, 0);
}

/** The OpenAI error object of a response, checked for its shape. */
function errorOf(response: WireResponse): { message: string; type: string; code: string; param: string | null } {
  expect(response.headers['content-type']).toBe('application/json');
  const body = JSON.parse(response.body) as { error: { message: string; type: string; code: string; param: string | null } };
  expect(Object.keys(body)).toEqual(['error']);
  const { details, ...error } = body.error as typeof body.error & { details?: unknown };
  expect(error).toEqual({ message: expect.any(String), type: expect.any(String), code: expect.any(String), param: error.param === null ? null : expect.any(String) });
  if (details !== undefined) expect(details).toBeTypeOf('object');
  return body.error;
}

describe('bad requests', () => {
  let service: Service;
  beforeAll(async () => {
    service = await start();
  });

  it.each([
    ['not JSON', '{"model": "demo",', 'invalid_json', null],
    ['JSON that is not an object', '[1, 2]', 'invalid_json', null],
    ['an empty body', '', 'invalid_json', null],
    ['invalid UTF-8', Buffer.from([0x7b, 0xff, 0x7d]).toString('latin1'), 'invalid_json', null],
  ] as const)('%s: 400 invalid_json', async (_label, body, code, param) => {
    const response = await post(service, '/v1/completions', body);
    expect(response.status).toBe(400);
    expect(errorOf(response)).toMatchObject({ type: 'invalid_request_error', code, param });
  });

  it('refuses nesting deeper than 80 levels without walking it recursively', async () => {
    const deep = `{"prompt": "x", "user": ${'['.repeat(100_000)}${']'.repeat(100_000)}}`;
    const response = await post(service, '/v1/completions', deep);
    expect(response.status).toBe(400);
    expect(errorOf(response)).toMatchObject({ code: 'invalid_json', message: expect.stringContaining('80 levels') });
  });

  const chat = { model: 'demo', messages: [{ role: 'user', content: 'Hello!' }] };
  it.each([
    ['max_tokens of the wrong type', { ...chat, max_tokens: 'ten' }, 'max_tokens', 'invalid_params'],
    ['max_tokens out of range', { ...chat, max_tokens: 0 }, 'max_tokens', 'invalid_params'],
    ['max_tokens and max_completion_tokens that differ', { ...chat, max_tokens: 5, max_completion_tokens: 6 }, 'max_completion_tokens', 'invalid_params'],
    ['temperature out of range', { ...chat, temperature: 99 }, 'temperature', 'invalid_params'],
    ['top_p of the wrong type', { ...chat, top_p: '0.5' }, 'top_p', 'invalid_params'],
    ['a negative seed', { ...chat, seed: -1 }, 'seed', 'invalid_params'],
    ['frequency_penalty out of range', { ...chat, frequency_penalty: 5 }, 'frequency_penalty', 'invalid_params'],
    ['stop of the wrong type', { ...chat, stop: 7 }, 'stop', 'invalid_params'],
    ['n above 1', { ...chat, n: 2 }, 'n', 'unsupported'],
    ['logprobs', { ...chat, logprobs: true }, 'logprobs', 'unsupported'],
    ['logit_bias', { ...chat, logit_bias: { '42': 10 } }, 'logit_bias', 'unsupported'],
    ['stream of the wrong type', { ...chat, stream: 'yes' }, 'stream', 'invalid_params'],
    ['stream_options.include_usage of the wrong type', { ...chat, stream: true, stream_options: { include_usage: 1 } }, 'stream_options.include_usage', 'invalid_params'],
    ['no messages', { model: 'demo' }, 'messages', 'invalid_params'],
    ['an empty messages array', { model: 'demo', messages: [] }, 'messages', 'invalid_params'],
    ['a message of the wrong type', { model: 'demo', messages: ['hi'] }, 'messages[0]', 'invalid_params'],
    ['an unknown role', { model: 'demo', messages: [{ role: 'narrator', content: 'x' }] }, 'messages[0].role', 'invalid_params'],
    ['content of the wrong type', { model: 'demo', messages: [{ role: 'user', content: 5 }] }, 'messages[0].content', 'invalid_params'],
    ['an image part', { model: 'demo', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://x/y.png' } }] }] }, 'messages[0].content[0].type', 'unsupported'],
    ['a tool message without tool_call_id', { model: 'demo', messages: [{ role: 'user', content: 'x' }, { role: 'tool', content: '1' }] }, 'messages[1].tool_call_id', 'invalid_params'],
    ['a tool that is not a function', { ...chat, tools: [{ type: 'retrieval' }] }, 'tools[0]', 'invalid_params'],
    ['a tool with a bad name', { ...chat, tools: [{ type: 'function', function: { name: 'no spaces allowed' } }] }, 'tools[0].function.name', 'invalid_params'],
    ['tool_choice naming no tool', { ...chat, tool_choice: { type: 'function', function: { name: 'nothing' } } }, 'tool_choice', 'invalid_params'],
    ['a response_format of an unknown type', { ...chat, response_format: { type: 'xml' } }, 'response_format', 'invalid_params'],
    ['a json_schema response_format without a schema', { ...chat, response_format: { type: 'json_schema', json_schema: { name: 'x' } } }, 'response_format.json_schema.schema', 'invalid_params'],
    [
      'a schema keyword no grammar can hold',
      { ...chat, response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object', properties: { age: { type: 'integer', minimum: 0 } } } } } },
      'response_format.json_schema.schema.properties.age.minimum',
      'invalid_params',
    ],
  ])('chat with %s: 400 naming the field as the client spelled it', async (_label, body, param, code) => {
    const response = await post(service, '/v1/chat/completions', body);
    expect(response.status).toBe(400);
    const error = errorOf(response);
    expect(error).toMatchObject({ type: 'invalid_request_error', code, param });
    expect(error.message).toContain(`"${param}"`);
    // Never the frame's own spelling.
    expect(error.message).not.toMatch(/maxTokens|topP|toolCallId|toolChoice|responseFormat|frequencyPenalty/);
  });

  it.each([
    ['a prompt of the wrong type', { prompt: 5 }, 'prompt', 'invalid_params'],
    ['several prompts', { prompt: ['a', 'b'] }, 'prompt', 'invalid_params'],
    ['echo', { prompt: 'a', echo: true }, 'echo', 'unsupported'],
    ['a suffix', { prompt: 'a', suffix: 'z' }, 'suffix', 'unsupported'],
    ['best_of above 1', { prompt: 'a', best_of: 3 }, 'best_of', 'unsupported'],
    ['a prompt over the limit', { prompt: 'x'.repeat(131_073) }, 'prompt', 'invalid_params'],
  ])('completion with %s: 400 naming the field', async (_label, body, param, code) => {
    const response = await post(service, '/v1/completions', body);
    expect(response.status).toBe(400);
    expect(errorOf(response)).toMatchObject({ code, param });
  });

  it('an unknown model: 404 model_not_found; a prompt that cannot fit: 400 prompt_too_long with its numbers', async () => {
    const missing = await post(service, '/v1/completions', { model: 'gpt-4o', prompt: PROMPT });
    expect(missing.status).toBe(404);
    expect(errorOf(missing)).toMatchObject({ type: 'invalid_request_error', code: 'model_not_found' });
    const long = await post(service, '/v1/completions', { prompt: PROMPT, max_tokens: 1_000_000 });
    expect(long.status).toBe(400);
    const tooLong = await post(service, '/v1/completions', { prompt: `${PROMPT} `.repeat(500), max_tokens: 4000 });
    expect(tooLong.status).toBe(400);
    expect(JSON.parse(tooLong.body)).toMatchObject({ error: { code: 'prompt_too_long', details: { contextSize: 2048 } } });
  });

  it('a path of the API asked with a method it does not serve: 405 with Allow; an unknown path under /v1/: 404', async () => {
    const wrongMethod = await exchange(service, 'GET', '/v1/chat/completions');
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.allow).toBe('POST, OPTIONS');
    const models = await exchange(service, 'DELETE', '/v1/models');
    expect(models.status).toBe(405);
    expect(models.headers.allow).toBe('GET, HEAD, OPTIONS');
    expect((await exchange(service, 'GET', '/v1/embeddings')).status).toBe(404);
  });

  it('GET /v1/models and /v1/models/{id} in OpenAI shapes; an unknown id is 404', async () => {
    const list = await exchange(service, 'GET', '/v1/models');
    expect(list.status).toBe(200);
    expect(JSON.parse(list.body)).toEqual({ object: 'list', data: [{ id: 'demo', object: 'model', created: expect.any(Number), owned_by: 'llm-stream' }] });
    const one = await exchange(service, 'GET', '/v1/models/demo');
    expect(JSON.parse(one.body)).toMatchObject({ id: 'demo', object: 'model' });
    const none = await exchange(service, 'GET', '/v1/models/nothing');
    expect(none.status).toBe(404);
    expect(errorOf(none)).toMatchObject({ code: 'model_not_found', param: 'model' });
  });

  it('a failed request leaves nothing in flight, and the server keeps serving', async () => {
    await waitForIdle(service);
    const ok = await post(service, '/v1/completions', { prompt: PROMPT, max_tokens: 4, temperature: 0 });
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toMatchObject({ object: 'text_completion', choices: [{ finish_reason: 'length' }], usage: { completion_tokens: 4 } });
  });
});

describe('request bodies: size and time to arrive', () => {
  const MAX_BYTES = 4096;
  const TIMEOUT_MS = 400;
  let service: Service;
  beforeAll(async () => {
    service = await start({ httpBodyMaxBytes: MAX_BYTES, httpBodyTimeoutMs: TIMEOUT_MS });
  });

  it('a declared Content-Length over the limit: 413 before any of the body is sent, and the connection closes', async () => {
    const client = await wire(service);
    client.write(requestBytes('POST', '/v1/chat/completions', { 'content-type': 'application/json', 'content-length': String(MAX_BYTES + 1) }));
    const [response] = await client.responses(1);
    expect(response!.status).toBe(413);
    expect(errorOf(response!)).toMatchObject({ code: 'payload_too_large', type: 'invalid_request_error' });
    await client.until(() => client.ended, 5000, 'the close');
  });

  it('a chunked body that grows past the limit: 413', async () => {
    const client = await wire(service);
    client.write(requestBytes('POST', '/v1/completions', { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }));
    const chunk = 'x'.repeat(1000);
    for (let i = 0; i < 5; i++) client.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
    const [response] = await client.responses(1);
    expect(response!.status).toBe(413);
    expect(errorOf(response!).code).toBe('payload_too_large');
  });

  it('a body that stops arriving: 408 once the deadline passes, and the connection closes', async () => {
    const client = await wire(service);
    const sentAt = performance.now();
    client.write(requestBytes('POST', '/v1/completions', { 'content-type': 'application/json', 'content-length': '100' }, '{"prompt":'));
    const [response] = await client.responses(1, 10_000);
    expect(response!.status).toBe(408);
    expect(errorOf(response!)).toMatchObject({ code: 'request_timeout' });
    expect(performance.now() - sentAt).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
    await client.until(() => client.ended, 5000, 'the close');
  });

  it('a body that trickles in is timed as a whole, not per byte (slowloris)', async () => {
    const client = await wire(service);
    client.write(requestBytes('POST', '/v1/completions', { 'content-type': 'application/json', 'content-length': '1000' }));
    const drip = setInterval(() => client.write(' '), 50);
    try {
      const [response] = await client.responses(1, 10_000);
      expect(response!.status).toBe(408);
    } finally {
      clearInterval(drip);
    }
  });

  it('a body within both limits is served', async () => {
    const body = JSON.stringify({ prompt: PROMPT, max_tokens: 2, user: 'x'.repeat(200) });
    const response = await post(service, '/v1/completions', body);
    expect(response.status).toBe(200);
  });
});

describe('server-sent events', () => {
  let service: Service;
  beforeAll(async () => {
    service = await start({ streamCoalesceMs: 0 });
  });

  it('frames a streamed completion as data events of chunks, a usage chunk and [DONE], chunked, and says the same as the whole answer', async () => {
    const request = { prompt: PROMPT, max_tokens: 12, temperature: 0 };
    const whole = JSON.parse((await post(service, '/v1/completions', request)).body) as { choices: { text: string }[]; usage: object };
    const response = await post(service, '/v1/completions', { ...request, stream: true, stream_options: { include_usage: true } });
    expect(response.status).toBe(200);
    expect(response.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(response.headers['cache-control']).toBe('no-cache, no-transform');
    expect(response.headers['transfer-encoding']).toBe('chunked');
    expect(response.headers['x-request-id']).toMatch(/^cmpl-[0-9a-f]{32}$/);
    expect(response.body).toMatch(/^data: \{/);
    expect(response.body.endsWith('data: [DONE]\n\n')).toBe(true);
    const events = sseData(response.body);
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((event) => JSON.parse(event) as { id: string; object: string; choices: { text: string; finish_reason: string | null }[]; usage: unknown });
    expect(new Set(chunks.map((chunk) => chunk.id))).toEqual(new Set([response.headers['x-request-id']]));
    expect(chunks.every((chunk) => chunk.object === 'text_completion')).toBe(true);
    const usage = chunks.at(-1)!;
    expect(usage.choices).toEqual([]);
    expect(usage.usage).toEqual(whole.usage);
    const choices = chunks.slice(0, -1);
    expect(choices.every((chunk) => chunk.usage === null)).toBe(true);
    expect(choices.at(-1)!.choices[0]!.finish_reason).toBe('length');
    expect(choices.slice(0, -1).every((chunk) => chunk.choices[0]!.finish_reason === null)).toBe(true);
    expect(choices.map((chunk) => chunk.choices[0]!.text).join('')).toBe(whole.choices[0]!.text);
  });

  it('without include_usage there is no usage chunk and no usage field', async () => {
    const response = await post(service, '/v1/completions', { prompt: PROMPT, max_tokens: 3, stream: true });
    const chunks = sseData(response.body).slice(0, -1).map((event) => JSON.parse(event) as Record<string, unknown>);
    expect(chunks.every((chunk) => !('usage' in chunk))).toBe(true);
    expect(chunks.length).toBeGreaterThanOrEqual(2);
  });

  it('an error before the first token is an HTTP error, not a stream', async () => {
    const response = await post(service, '/v1/completions', { model: 'nothing', prompt: PROMPT, stream: true });
    expect(response.status).toBe(404);
    expect(errorOf(response).code).toBe('model_not_found');
  });

  it('a client that closes the connection mid-stream cancels the generation and frees its slot', async () => {
    const client = await wire(service);
    const body = JSON.stringify({ prompt: PROMPT, max_tokens: 2000, stream: true });
    const tokensBefore = await metricTotal(service, 'llm_generation_tokens_total');
    const disconnectedBefore = await outcomes(service, 'disconnected');
    client.write(requestBytes('POST', '/v1/completions', { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }, body));
    await client.until(() => client.received.includes('"text_completion"'), 10_000, 'the first chunk');
    client.close();
    await waitForIdle(service, 5000);
    expect(await outcomes(service, 'disconnected')).toBe(disconnectedBefore + 1);
    const generated = (await metricTotal(service, 'llm_generation_tokens_total')) - tokensBefore;
    expect(generated).toBeLessThan(2000);
  });
});

describe('a client that stops reading a stream', () => {
  const HIGH_WATER = 16_384;
  let service: Service;
  beforeAll(async () => {
    service = await start({ sendHighWaterBytes: HIGH_WATER, streamCoalesceMs: 0, metricsPublic: true, contextSize: 4096, maxTokensCeiling: 4096 });
  });

  it('pauses the slot at the high-water mark and loses no text once it reads again', async () => {
    const request = { prompt: PROMPT, max_tokens: 600, temperature: 0 };
    const whole = JSON.parse((await post(service, '/v1/completions', request)).body) as { choices: { text: string }[] };
    const client = await wire(service);
    client.socket.pause();
    // Loopback buffers take megabytes before the server's own buffer grows: fill them with the
    // answers to pipelined GET /metrics (about 14 KB each) ahead of the stream on the same connection.
    const fillers = 400;
    const body = JSON.stringify({ ...request, stream: true });
    client.write(requestBytes('GET', '/metrics', {}).repeat(fillers) + requestBytes('POST', '/v1/completions', { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }, body));
    const pausesBefore = await metricTotal(service, 'llm_backpressure_pauses_total');
    await waitFor(async () => (await metricTotal(service, 'llm_backpressure_pauses_total')) > pausesBefore, 20_000, 'the stream to pause');
    const atPause = await metricTotal(service, 'llm_generation_tokens_total');
    // Paused: the engine makes no token for this stream however long the client waits (at most the step in flight).
    await new Promise((resolve) => setTimeout(resolve, 500));
    const stillPaused = await metricTotal(service, 'llm_generation_tokens_total');
    expect(stillPaused - atPause).toBeLessThanOrEqual(1);
    expect(service.sessions.inFlight).toBe(1);

    client.socket.resume();
    // The stream is the last answer: its final chunk ends everything received.
    await client.until(() => client.tail.toString().endsWith('data: [DONE]\n\n\r\n0\r\n\r\n'), 30_000, 'the end of the stream');
    const responses = parseResponses(client.received);
    expect(responses.slice(0, fillers).every((response) => response.status === 200)).toBe(true);
    const stream = responses.at(-1)!;
    const events = sseData(stream.body);
    expect(events.at(-1)).toBe('[DONE]');
    const text = events.slice(0, -1).map((event) => (JSON.parse(event) as { choices: { text: string }[] }).choices[0]!.text).join('');
    expect(text).toBe(whole.choices[0]!.text);
    await waitForIdle(service);
  });
});

describe('CORS and the Host check, following ALLOWED_ORIGINS', () => {
  const APP = 'http://app.example:5173';
  let service: Service;
  beforeAll(async () => {
    service = await start({ allowedOrigins: APP });
  });

  it('answers a preflight from an allowed origin with the methods and the headers it asked for', async () => {
    const response = await exchange(service, 'OPTIONS', '/v1/chat/completions', {
      origin: APP,
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'authorization, content-type, x-stainless-os',
    });
    expect(response.status).toBe(204);
    expect(response.headers).toMatchObject({
      'access-control-allow-origin': APP,
      'access-control-allow-methods': 'POST, OPTIONS',
      'access-control-allow-headers': 'authorization, content-type, x-stainless-os',
      'access-control-max-age': '600',
      vary: 'Origin',
    });
  });

  it('refuses a preflight and a request from another origin with 403 and no CORS headers', async () => {
    const preflight = await exchange(service, 'OPTIONS', '/v1/models', { origin: 'https://evil.example', 'access-control-request-method': 'GET' });
    expect(preflight.status).toBe(403);
    expect(preflight.headers['access-control-allow-origin']).toBeUndefined();
    const request = await post(service, '/v1/completions', { prompt: PROMPT, max_tokens: 1 }, { origin: 'https://evil.example' });
    expect(request.status).toBe(403);
    expect(request.headers['access-control-allow-origin']).toBeUndefined();
    expect(errorOf(request)).toMatchObject({ type: 'permission_error', code: 'forbidden', message: 'origin not allowed' });
  });

  it('an allowed origin reads the answer, its rate-limit headers and its request id', async () => {
    const response = await post(service, '/v1/completions', { prompt: PROMPT, max_tokens: 1 }, { origin: APP });
    expect(response.status).toBe(200);
    expect(response.headers['access-control-allow-origin']).toBe(APP);
    expect(response.headers['access-control-expose-headers']).toContain('x-ratelimit-remaining-requests');
    expect(response.headers['access-control-expose-headers']).toContain('retry-after');
  });

  it('refuses a Host the service does not serve when it runs open (DNS rebinding)', async () => {
    const response = await post(service, '/v1/completions', { prompt: PROMPT, max_tokens: 1 }, { host: 'rebound.example' });
    expect(response.status).toBe(403);
    expect(errorOf(response).message).toContain('host not allowed');
  });
});

describe('rate-limit headers', () => {
  let service: Service;
  beforeAll(async () => {
    // Both refill slowly, so what the requests took still shows when the answers are written.
    service = await start({ rateLimitRps: 1, rateLimitBurst: 3, tokenLimitTps: 1, tokenLimitBurst: 5000 });
  });

  it('count down the request bucket and report the token bucket, on answers and refusals alike', async () => {
    const remaining: string[] = [];
    for (let i = 0; i < 3; i++) {
      const response = await post(service, '/v1/completions', { prompt: PROMPT, max_tokens: 2 });
      expect(response.status).toBe(200);
      expect(response.headers['x-ratelimit-limit-requests']).toBe('3');
      expect(response.headers['x-ratelimit-limit-tokens']).toBe('5000');
      expect(Number(response.headers['x-ratelimit-remaining-tokens'])).toBeLessThanOrEqual(5000 - 2 * (i + 1));
      expect(response.headers['x-ratelimit-reset-requests']).toMatch(/^\d+(\.\d+)?m?s$/);
      remaining.push(response.headers['x-ratelimit-remaining-requests']!);
    }
    expect(remaining).toEqual(['2', '1', '0']);
    const refused = await post(service, '/v1/completions', { prompt: PROMPT, max_tokens: 2 });
    expect(refused.status).toBe(429);
    expect(errorOf(refused)).toMatchObject({ type: 'rate_limit_error', code: 'rate_limited' });
    expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(refused.headers['x-ratelimit-remaining-requests']).toBe('0');
    // GET /v1/models takes no request credit but reports the levels.
    const models = await exchange(service, 'GET', '/v1/models');
    expect(models.status).toBe(200);
    expect(models.headers['x-ratelimit-limit-requests']).toBe('3');
  });
});

describe('a flood of requests', () => {
  let service: Service;
  beforeAll(async () => {
    service = await start({ maxFramesPerSecond: 2 });
  });

  it('counts every request in the frame bucket, valid or not, and refuses past it with 429 and Retry-After', async () => {
    // The bucket holds twice the rate: four requests, then a refusal however they were formed.
    const statuses: number[] = [];
    for (const body of ['{bad', '{bad', '[]', '{bad']) statuses.push((await post(service, '/v1/completions', body)).status);
    expect(statuses).toEqual([400, 400, 400, 400]);
    const refused = await exchange(service, 'GET', '/v1/models');
    expect(refused.status).toBe(429);
    expect(errorOf(refused)).toMatchObject({ code: 'rate_limited', message: 'more than 2 requests per second' });
    expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
  });
});

describe('faults and shutdown', () => {
  /** The next guarded callback of an HTTP generation throws once. */
  let armed = false;
  let service: Service;
  beforeAll(async () => {
    service = await start({ streamCoalesceMs: 0, tokenLimitTps: 200, tokenLimitBurst: 20 }, {
      injectFault: (site, context) => {
        if (!armed || site !== 'timer' || !context.session?.startsWith('http-')) return;
        armed = false;
        throw new Error('injected fault');
      },
    });
  });

  it('a fault inside a generation answers that request 500 (or cuts its stream) and nothing else', async () => {
    const faultsBefore = await metricTotal(service, 'llm_handler_faults_total');
    armed = true;
    const whole = await post(service, '/v1/completions', { prompt: PROMPT, max_tokens: 5 });
    expect(whole.status).toBe(500);
    expect(errorOf(whole)).toMatchObject({ type: 'server_error', code: 'internal' });
    armed = true;
    const client = await wire(service);
    const body = JSON.stringify({ prompt: PROMPT, max_tokens: 5, stream: true });
    client.write(requestBytes('POST', '/v1/completions', { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }, body));
    await client.until(() => client.ended, 10_000, 'the stream cut');
    expect(client.received.toString()).not.toContain('[DONE]');
    expect(await metricTotal(service, 'llm_handler_faults_total')).toBe(faultsBefore + 2);
    await waitForIdle(service);
    const after = await post(service, '/v1/completions', { prompt: PROMPT, max_tokens: 5 });
    expect(after.status).toBe(200);
  });

  it('shutdown: new requests get 503 while streams drain; a stream cut by it ends with an error event', async () => {
    const client = await wire(service);
    const body = JSON.stringify({ prompt: PROMPT, max_tokens: 2000, stream: true });
    client.write(requestBytes('POST', '/v1/completions', { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }, body));
    await client.until(() => client.received.includes('"text_completion"'), 10_000, 'the first chunk');
    const stopping = service.shutdown(1500);
    const refused = await post(service, '/v1/completions', { prompt: PROMPT, max_tokens: 2 });
    expect(refused.status).toBe(503);
    expect(errorOf(refused)).toMatchObject({ code: 'shutting_down', type: 'server_error' });
    expect(refused.headers['retry-after']).toBe('5');
    await client.until(() => client.received.includes('0\r\n\r\n') || client.ended, 10_000, 'the end of the stream');
    const [stream] = parseResponses(client.received);
    const events = sseData(stream!.body);
    expect(JSON.parse(events.at(-1)!)).toMatchObject({ error: { code: 'shutting_down', type: 'server_error' } });
    expect(events).not.toContain('[DONE]');
    await stopping;
  });
});
