import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Service } from '../../server/app.js';
import { generateKey } from '../../server/auth/api-keys.js';
import type { Config } from '../../server/config/config.js';
import { connectClient, metricTotal, startTestService, tempDir, waitForIdle } from '../helpers/service.js';
import { waitFor } from '../helpers/wait.js';

/*
 * The official `openai` package against the real server on the demo model, pointed at it the way
 * a frontend would be: chat (whole and streamed), prompt completions, models, a JSON-schema reply,
 * tool calls, an abort that frees the slot, and refusals surfacing as the package's typed errors.
 */

const services: Service[] = [];

afterAll(async () => {
  await Promise.all(services.map((service) => service.shutdown(0)));
});

async function start(overrides: Partial<Config> = {}): Promise<Service> {
  const service = await startTestService(overrides);
  services.push(service);
  return service;
}

/** The client as a user of the service writes it; no retries, so a refusal surfaces at once. */
function openai(service: Service, apiKey = 'unused'): OpenAI {
  return new OpenAI({ baseURL: `${service.httpUrl}/v1`, apiKey, maxRetries: 0 });
}

const HELLO: OpenAI.ChatCompletionMessageParam[] = [
  { role: 'system', content: 'You are a helpful assistant.' },
  { role: 'user', content: 'Who is Alice?' },
];

const WEATHER: OpenAI.ChatCompletionTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'The weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 24 } }, required: ['city'], additionalProperties: false },
  },
};

describe('an open service', () => {
  let service: Service;
  let client: OpenAI;
  beforeAll(async () => {
    service = await start();
    client = openai(service);
  });

  it('answers a chat completion, the same reply the WebSocket `chat` gives', async () => {
    const completion = await client.chat.completions.create({ model: 'demo', messages: HELLO, max_tokens: 40, temperature: 0 });
    expect(completion).toMatchObject({ object: 'chat.completion', model: 'demo', id: expect.stringMatching(/^chatcmpl-/) });
    expect(completion.created).toBeCloseTo(Date.now() / 1000, -2);
    const [choice] = completion.choices;
    expect(choice!.message.role).toBe('assistant');
    expect(choice!.message.content!.length).toBeGreaterThan(0);
    expect(['stop', 'length']).toContain(choice!.finish_reason);
    const usage = completion.usage!;
    expect(usage.total_tokens).toBe(usage.prompt_tokens + usage.completion_tokens);
    expect(usage.completion_tokens).toBeLessThanOrEqual(40);

    // One request path, two front doors: the same conversation over the WebSocket protocol.
    const socket = await connectClient(service);
    try {
      const reply = await socket.chat({ messages: HELLO.map((message) => ({ role: message.role as 'system' | 'user', content: message.content as string })), maxTokens: 40, temperature: 0 }).reply();
      expect(reply.text).toBe(choice!.message.content);
      expect(reply.end.usage).toEqual({ promptTokens: usage.prompt_tokens, completionTokens: usage.completion_tokens });
    } finally {
      socket.close();
    }
  });

  it('streams a chat completion as chunks: the role first, text deltas, the finish reason, the usage', async () => {
    const whole = await client.chat.completions.create({ model: 'demo', messages: HELLO, max_tokens: 30, temperature: 0 });
    const stream = await client.chat.completions.create({ model: 'demo', messages: HELLO, max_tokens: 30, temperature: 0, stream: true, stream_options: { include_usage: true } });
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks.every((chunk) => chunk.object === 'chat.completion.chunk' && chunk.id === chunks[0]!.id)).toBe(true);
    expect(chunks[0]!.choices[0]!.delta.role).toBe('assistant');
    const text = chunks.map((chunk) => chunk.choices[0]?.delta.content ?? '').join('');
    expect(text).toBe(whole.choices[0]!.message.content);
    const finish = chunks.filter((chunk) => chunk.choices[0]?.finish_reason);
    expect(finish).toHaveLength(1);
    expect(finish[0]!.choices[0]!.finish_reason).toBe(whole.choices[0]!.finish_reason);
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    expect(last.usage).toEqual(whole.usage);
  });

  it('the stream helper assembles the same message', async () => {
    const runner = client.chat.completions.stream({ model: 'demo', messages: HELLO, max_tokens: 20, temperature: 0 });
    const deltas: string[] = [];
    runner.on('content', (delta) => deltas.push(delta));
    const final = await runner.finalChatCompletion();
    expect(final.choices[0]!.message.content).toBe(deltas.join(''));
    expect(deltas.length).toBeGreaterThan(0);
  });

  it('answers prompt completions, whole and streamed', async () => {
    const whole = await client.completions.create({ model: 'demo', prompt: 'Alice was beginning', max_tokens: 16, temperature: 0 });
    expect(whole).toMatchObject({ object: 'text_completion', model: 'demo', choices: [{ index: 0, finish_reason: 'length' }], usage: { completion_tokens: 16 } });
    const stream = await client.completions.create({ model: 'demo', prompt: 'Alice was beginning', max_tokens: 16, temperature: 0, stream: true });
    let text = '';
    let finish: string | null = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]!.text;
      finish = chunk.choices[0]!.finish_reason ?? finish;
    }
    expect(text).toBe(whole.choices[0]!.text);
    expect(finish).toBe('length');
  });

  it('lists and retrieves models; an unknown one is a NotFoundError', async () => {
    const models = [];
    for await (const model of client.models.list()) models.push(model);
    expect(models).toEqual([{ id: 'demo', object: 'model', created: expect.any(Number), owned_by: 'llm-stream' }]);
    expect(await client.models.retrieve('demo')).toMatchObject({ id: 'demo', object: 'model' });
    const missing = await client.models.retrieve('gpt-4o').catch((error: unknown) => error);
    expect(missing).toBeInstanceOf(OpenAI.NotFoundError);
    expect(missing).toMatchObject({ status: 404, code: 'model_not_found', param: 'model' });
  });

  it('an unknown model in a chat is a NotFoundError; a bad field a BadRequestError naming it', async () => {
    const missing = await client.chat.completions.create({ model: 'gpt-4o', messages: HELLO }).catch((error: unknown) => error);
    expect(missing).toBeInstanceOf(OpenAI.NotFoundError);
    const bad = await client.chat.completions.create({ model: 'demo', messages: HELLO, temperature: 50 }).catch((error: unknown) => error);
    expect(bad).toBeInstanceOf(OpenAI.BadRequestError);
    expect(bad).toMatchObject({ status: 400, code: 'invalid_params', param: 'temperature', type: 'invalid_request_error' });
  });

  it('replies with JSON valid for a json_schema response format', async () => {
    const schema = {
      type: 'object',
      properties: { name: { type: 'string', maxLength: 24 }, age: { type: 'integer' }, friendly: { type: 'boolean' } },
      required: ['name', 'age', 'friendly'],
      additionalProperties: false,
    };
    const completion = await client.chat.completions.create({
      model: 'demo',
      messages: [{ role: 'user', content: 'Describe a person.' }],
      max_tokens: 200,
      response_format: { type: 'json_schema', json_schema: { name: 'person', schema, strict: true } },
    });
    const value = JSON.parse(completion.choices[0]!.message.content!) as Record<string, unknown>;
    expect(Object.keys(value).sort()).toEqual(['age', 'friendly', 'name']);
    expect(typeof value.name).toBe('string');
    expect((value.name as string).length).toBeLessThanOrEqual(24);
    expect(Number.isInteger(value.age)).toBe(true);
    expect(typeof value.friendly).toBe('boolean');
    expect(completion.choices[0]!.finish_reason).toBe('stop');
  });

  it('makes a tool call, takes its result back, and streams one the helper assembles', async () => {
    const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: 'What is the weather in Paris?' }];
    const completion = await client.chat.completions.create({ model: 'demo', messages, tools: [WEATHER], tool_choice: 'required', max_tokens: 200 });
    const [choice] = completion.choices;
    expect(choice!.finish_reason).toBe('tool_calls');
    expect(choice!.message.content).toBeNull();
    const [call] = choice!.message.tool_calls!;
    expect(call).toMatchObject({ id: expect.any(String), type: 'function', function: { name: 'get_weather' } });
    const args = JSON.parse((call as OpenAI.ChatCompletionMessageFunctionToolCall).function.arguments) as { city: unknown };
    expect(Object.keys(args)).toEqual(['city']);
    expect(typeof args.city).toBe('string');

    const answer = await client.chat.completions.create({
      model: 'demo',
      messages: [...messages, choice!.message, { role: 'tool', tool_call_id: call!.id, content: '{"temperature": 21, "sky": "clear"}' }],
      tools: [WEATHER],
      tool_choice: 'none',
      max_tokens: 20,
    });
    expect(['stop', 'length']).toContain(answer.choices[0]!.finish_reason);
    expect(answer.choices[0]!.message.tool_calls).toBeUndefined();

    const streamed = await client.chat.completions.stream({ model: 'demo', messages, tools: [WEATHER], tool_choice: { type: 'function', function: { name: 'get_weather' } }, max_tokens: 200 }).finalChatCompletion();
    expect(streamed.choices[0]!.finish_reason).toBe('tool_calls');
    const [streamedCall] = streamed.choices[0]!.message.tool_calls!;
    expect(streamedCall).toMatchObject({ type: 'function', function: { name: 'get_weather' } });
    expect(JSON.parse((streamedCall as OpenAI.ChatCompletionMessageFunctionToolCall).function.arguments)).toEqual({ city: expect.any(String) });
  });
});

describe('an abort through AbortController', () => {
  let service: Service;
  beforeAll(async () => {
    // Throttled by the server's own token bucket, so the stream is still running when it is aborted.
    service = await start({ tokenLimitTps: 40, tokenLimitBurst: 5, streamCoalesceMs: 0 });
  });

  it('cancels the generation and frees its slot', async () => {
    const client = openai(service);
    const controller = new AbortController();
    const stream = await client.chat.completions.create({ model: 'demo', messages: HELLO, max_tokens: 1000, stream: true }, { signal: controller.signal });
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    // The package ends the iteration quietly when its own signal aborts it.
    for await (const chunk of stream) {
      chunks.push(chunk);
      if (chunk.choices[0]?.delta.content) controller.abort();
    }
    expect(chunks.some((chunk) => chunk.choices[0]?.delta.content)).toBe(true);
    expect(chunks.some((chunk) => chunk.choices[0]?.finish_reason)).toBe(false);
    // The request ends as soon as the server sees the connection close (its count drops then)...
    await waitFor(() => service.sessions.inFlight === 0, 5000, 'the request to end');
    const atEnd = await metricTotal(service, 'llm_generation_tokens_total');
    // ...and its slot is free once the decode step in flight is over: no step after it. Left
    // alone, the throttled stream would run for 25 s.
    await waitForIdle(service, 5000);
    expect(service.pool.loadedModels()[0]!.scheduler.busy).toBe(0);
    const generated = await metricTotal(service, 'llm_generation_tokens_total');
    expect(generated - atEnd).toBeLessThanOrEqual(1);
    expect(generated).toBeLessThan(100);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await metricTotal(service, 'llm_generation_tokens_total')).toBe(generated);
  });
});

describe('API keys and limits', () => {
  let service: Service;
  let key: string;
  let limitedKey: string;
  let demoOnlyKey: string;
  beforeAll(async () => {
    const open = generateKey('frontend');
    const limited = generateKey('limited', { requestsPerSecond: 1, requestBurst: 2 });
    const restricted = generateKey('restricted', {}, ['other-model']);
    const file = path.join(tempDir('openai-keys'), 'keys.json');
    await writeFile(file, JSON.stringify({ keys: [open.entry, limited.entry, restricted.entry] }));
    service = await start({ keysFile: file });
    key = open.key;
    limitedKey = limited.key;
    demoOnlyKey = restricted.key;
  });

  it('a missing or wrong key is an AuthenticationError; the right one is served', async () => {
    const wrong = await openai(service, 'llm_wrong').chat.completions.create({ model: 'demo', messages: HELLO, max_tokens: 2 }).catch((error: unknown) => error);
    expect(wrong).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(wrong).toMatchObject({ status: 401, code: 'invalid_api_key', type: 'authentication_error' });
    const models = await openai(service, 'llm_wrong').models.list().catch((error: unknown) => error);
    expect(models).toBeInstanceOf(OpenAI.AuthenticationError);
    const served = await openai(service, key).chat.completions.create({ model: 'demo', messages: HELLO, max_tokens: 2 });
    expect(served.usage!.completion_tokens).toBe(2);
  });

  it('a model the key may not use is a PermissionDeniedError, and is not listed', async () => {
    const client = openai(service, demoOnlyKey);
    const refused = await client.chat.completions.create({ model: 'demo', messages: HELLO, max_tokens: 2 }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect(refused).toMatchObject({ status: 403, code: 'forbidden_model', param: 'model' });
    const listed = [];
    for await (const model of client.models.list()) listed.push(model.id);
    expect(listed).toEqual([]);
  });

  it('the key\'s request bucket is the one its WebSocket connections spend: the next request is a RateLimitError with Retry-After', async () => {
    const socket = await connectClient(service, { apiKey: limitedKey });
    try {
      const viaSocket = await socket.generate({ prompt: 'Alice was', maxTokens: 2 }).text();
      expect(viaSocket.end.reason).toBe('length');
      const client = openai(service, limitedKey);
      const { data, response } = await client.completions.create({ model: 'demo', prompt: 'Alice was', max_tokens: 2 }).withResponse();
      expect(data.usage!.completion_tokens).toBe(2);
      expect(response.headers.get('x-ratelimit-limit-requests')).toBe('2');
      expect(response.headers.get('x-ratelimit-remaining-requests')).toBe('0');
      const refused = await client.completions.create({ model: 'demo', prompt: 'Alice was', max_tokens: 2 }).catch((error: unknown) => error);
      expect(refused).toBeInstanceOf(OpenAI.RateLimitError);
      const error = refused as InstanceType<typeof OpenAI.RateLimitError>;
      expect(error).toMatchObject({ status: 429, code: 'rate_limited', type: 'rate_limit_error' });
      expect(Number(error.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(error.headers.get('x-ratelimit-remaining-requests')).toBe('0');
    } finally {
      socket.close();
    }
  });
});
