import { Ajv2020 } from 'ajv/dist/2020.js';
import { getLlama, LlamaText, type LlamaModel } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LlmError, type ChatMessage, type ChatRequest, type EndFrame, type LlmClient, type ServerFrame, type ToolCall, type ToolSpec } from '../../protocol/index.js';
import type { Service } from '../../server/app.js';
import { ChatTemplate } from '../../server/chat/chat-template.js';
import { ensureDemoModel } from '../../server/model-maker/demo/demo-model.js';
import { RawSocket } from '../helpers/raw-socket.js';
import { SHARED_MODELS_DIR, connectClient, startTestService, waitForIdle } from '../helpers/service.js';

/*
 * The `chat` frame end to end, on the real server and the demo model (ChatML template): messages
 * rendered by the model's template, JSON replies that validate against their schema, a tool call
 * and its result sent back, penalties that change the text, precise refusals.
 */

let service: Service;
let client: LlmClient;
/** The demo model's vocabulary, to count what the template renders. */
let vocab: LlamaModel;
/** JSON Schema 2020-12, the draft whose `prefixItems` and `$defs` the server reads. */
const ajv = new Ajv2020({ strict: false });

beforeAll(async () => {
  service = await startTestService({ parallelSequences: 2 });
  client = await connectClient(service);
  const llama = await getLlama({ gpu: false, build: 'never' });
  vocab = await llama.loadModel({ modelPath: (await ensureDemoModel(SHARED_MODELS_DIR)).path, vocabOnly: true });
});

afterAll(async () => {
  client?.close();
  await vocab?.dispose();
  await service?.shutdown(0);
});

async function reply(request: ChatRequest): Promise<{ text: string; toolCalls: ToolCall[]; end: EndFrame }> {
  return client.chat(request).reply();
}

/**
 * Tokens of `messages` as the demo model's template renders them (followed by the start of a tool
 * call when one is forced): what usage.promptTokens must count.
 */
function renderedTokens(messages: ChatMessage[], tools: ToolSpec[] = [], forcedCall = false): number {
  const template = ChatTemplate.of(vocab);
  const rendered = template.render(messages, tools.map((tool) => ({ ...tool, parameters: tool.parameters ?? { type: 'object', properties: {} } }))).text;
  return LlamaText([rendered, forcedCall ? template.callSyntax.prefix : '']).tokenize(vocab.tokenizer).length;
}

describe('chat', () => {
  it('answers a multi-turn conversation rendered with the model template', async () => {
    const messages: ChatMessage[] = [
      { role: 'system', content: 'You are a helpful assistant.' },
      { role: 'user', content: 'Who is Alice?' },
    ];
    const first = await reply({ messages, maxTokens: 40, temperature: 0 });
    expect(['stop', 'length']).toContain(first.end.reason);
    expect(first.text.length).toBeGreaterThan(0);
    expect(first.text).not.toContain('<|im_');
    expect(first.end.usage.promptTokens).toBe(renderedTokens(messages));

    const next: ChatMessage[] = [...messages, { role: 'assistant', content: first.text }, { role: 'user', content: 'What does the White Rabbit carry?' }];
    const second = await reply({ messages: next, maxTokens: 40, temperature: 0 });
    expect(second.end.usage.promptTokens).toBe(renderedTokens(next));
    expect(second.end.usage.promptTokens).toBeGreaterThan(first.end.usage.promptTokens + first.end.usage.completionTokens);
    expect(second.text.length).toBeGreaterThan(0);
    // Greedy decoding of the same conversation repeats itself.
    expect((await reply({ messages, maxTokens: 40, temperature: 0 })).text).toBe(first.text);
  });

  it('continues a conversation that ends with an assistant message', async () => {
    const messages: ChatMessage[] = [{ role: 'user', content: 'Tell me a short story.' }];
    const whole = await reply({ messages, maxTokens: 30, temperature: 0 });
    const start = whole.text.slice(0, 10);
    const continued = await reply({ messages: [...messages, { role: 'assistant', content: start }], maxTokens: 10, temperature: 0 });
    expect(continued.end.usage.promptTokens).toBeGreaterThan(whole.end.usage.promptTokens);
    expect(continued.text.length).toBeGreaterThan(0);
  });

  it('streams frames numbered like a gen, and refuses a bad chat with the request id', async () => {
    const socket = await RawSocket.open(service.streamUrl);
    socket.send({ t: 'chat', id: 'c1', messages: [{ role: 'user', content: 'Hello!' }], maxTokens: 8, temperature: 0 });
    const frames = await socket.request('c1');
    expect(frames[0]).toEqual({ t: 'start', id: 'c1', model: 'demo', seq: 1 });
    expect(frames.map((frame) => ('seq' in frame ? frame.seq : 0))).toEqual(frames.map((_frame, index) => index + 1));
    expect(frames.at(-1)).toMatchObject({ t: 'end', id: 'c1', usage: { completionTokens: 8 } });

    socket.send({ t: 'chat', id: 'c2', messages: [{ role: 'robot', content: 'x' }] });
    expect(await socket.request('c2')).toEqual([{ t: 'err', id: 'c2', code: 'invalid_params', message: '"messages[0].role" must be "system", "user", "assistant" or "tool"', seq: 1 }]);
    socket.close();
  });
});

describe('JSON replies', () => {
  const schemas: [string, Record<string, unknown>][] = [
    [
      'an object',
      {
        type: 'object',
        properties: {
          name: { type: 'string', minLength: 1, maxLength: 12 },
          mood: { enum: ['happy', 'sad', 'curious'] },
          tall: { type: 'boolean' },
          friends: { type: 'array', items: { type: 'string', maxLength: 8 }, minItems: 1, maxItems: 3 },
        },
        required: ['name', 'mood', 'tall', 'friends'],
        additionalProperties: false,
      },
    ],
    [
      'definitions and alternatives',
      {
        $defs: { Place: { type: 'object', properties: { city: { type: 'string', maxLength: 10 }, open: { type: 'boolean' } } } },
        type: 'object',
        properties: { home: { $ref: '#/$defs/Place' }, note: { anyOf: [{ type: 'null' }, { type: 'string', maxLength: 6 }] }, when: { type: 'string', format: 'date' } },
      },
    ],
    ['a list', { type: 'array', prefixItems: [{ const: 'first' }, { type: 'boolean' }], items: { enum: [1, 2, 3] }, maxItems: 4 }],
  ];

  it.each(schemas)('validate against %s', async (_name, schema) => {
    for (const sampling of [{ temperature: 0 }, { temperature: 0.8, seed: 1 }, { temperature: 0.8, seed: 2 }]) {
      const { text, end } = await reply({ messages: [{ role: 'user', content: 'Describe a person as JSON.' }], maxTokens: 300, ...sampling, responseFormat: { type: 'json_schema', schema } });
      expect(end.reason).toBe('stop');
      const value = JSON.parse(text) as unknown;
      const valid = ajv.validate(schema, value);
      expect(valid, `${text}\n${ajv.errorsText()}`).toBe(true);
    }
  });

  it('constrains json_object replies to an object', async () => {
    const { text, end } = await reply({ messages: [{ role: 'user', content: 'JSON please.' }], maxTokens: 40, temperature: 0, responseFormat: { type: 'json_object' } });
    expect(text.trimStart().startsWith('{')).toBe(true);
    if (end.reason === 'stop') expect(typeof JSON.parse(text)).toBe('object');
    else expect(end.reason).toBe('length');
  });

  it('takes a schema nested 32 levels deep over msgpack, the default subprotocol', async () => {
    let schema: Record<string, unknown> = { type: 'object', properties: { n: { type: 'integer' } } };
    // Each level is two containers on the wire (`properties.next`): 64 levels of nesting in the frame.
    for (let level = 1; level < 32; level++) schema = { type: 'object', properties: { next: schema }, required: ['next'] };
    const { text, end } = await reply({ messages: [{ role: 'user', content: 'Deep JSON.' }], maxTokens: 16, temperature: 0, responseFormat: { type: 'json_schema', schema } });
    expect(['stop', 'length']).toContain(end.reason);
    expect(text.trimStart().startsWith('{')).toBe(true);
  });

  it.each<[string, Record<string, unknown>, string]>([
    ['a number bound', { type: 'object', properties: { age: { type: 'integer', minimum: 0 } } }, 'responseFormat.schema.properties.age.minimum'],
    ['a pattern', { type: 'string', pattern: '^[a-z]+$' }, 'responseFormat.schema.pattern'],
    ['an email format', { type: 'object', properties: { mail: { type: 'string', format: 'email' } } }, 'responseFormat.schema.properties.mail.format'],
  ])('refuses a schema with %s, naming the part', async (_name, schema, part) => {
    const failure = await reply({ messages: [{ role: 'user', content: 'x' }], responseFormat: { type: 'json_schema', schema } }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(LlmError);
    expect((failure as LlmError).code).toBe('invalid_params');
    expect((failure as LlmError).message).toContain(`"${part}"`);
    expect((failure as LlmError).details).toEqual({ part });
  });
});

describe('tool calls', () => {
  const tools: ToolSpec[] = [
    {
      name: 'get_weather',
      description: 'Current weather of a city',
      parameters: { type: 'object', properties: { city: { type: 'string', minLength: 1, maxLength: 16 }, unit: { enum: ['celsius', 'fahrenheit'] } }, required: ['city', 'unit'] },
    },
    { name: 'get_time', description: 'The time in a time zone', parameters: { type: 'object', properties: { zone: { enum: ['UTC', 'CET'] } } } },
  ];
  const question: ChatMessage[] = [{ role: 'user', content: 'What is the weather in Oslo?' }];

  it('calls a tool with valid arguments, then answers with its result', async () => {
    const stream = client.chat({ messages: question, tools, toolChoice: 'required', temperature: 0, maxTokens: 120 });
    const events = [];
    for await (const event of stream.events()) events.push(event);
    const end = await stream.end;
    expect(end.reason).toBe('tool_calls');
    expect(events).toHaveLength(1);
    expect(events[0]!.type).toBe('toolCall');
    const [call] = stream.toolCalls;
    expect(call!.id).toMatch(/^call_[0-9a-f]{24}$/);
    const tool = tools.find((candidate) => candidate.name === call!.name)!;
    expect(tool).toBeDefined();
    expect(ajv.validate(tool.parameters!, JSON.parse(call!.arguments)), ajv.errorsText()).toBe(true);
    expect(end.usage.promptTokens).toBe(renderedTokens(question, tools, true));

    const answered: ChatMessage[] = [
      ...question,
      { role: 'assistant', content: '', toolCalls: [call!] },
      { role: 'tool', toolCallId: call!.id, content: '{"temperature": 21, "sky": "clear"}' },
    ];
    const final = await reply({ messages: answered, tools, temperature: 0, maxTokens: 30 });
    expect(['stop', 'length']).toContain(final.end.reason);
    expect(final.toolCalls).toEqual([]);
    expect(final.text.length).toBeGreaterThan(0);
    expect(final.end.usage.promptTokens).toBe(renderedTokens(answered, tools));
  });

  it('calls the tool toolChoice names, with a fresh id each time', async () => {
    const ids = new Set<string>();
    for (const seed of [1, 2]) {
      const { toolCalls, end, text } = await reply({ messages: question, tools, toolChoice: { name: 'get_time' }, temperature: 0.8, seed, maxTokens: 60 });
      expect(end.reason).toBe('tool_calls');
      expect(text).toBe('');
      expect(toolCalls).toHaveLength(1);
      expect(toolCalls[0]!.name).toBe('get_time');
      expect(ajv.validate(tools[1]!.parameters!, JSON.parse(toolCalls[0]!.arguments))).toBe(true);
      ids.add(toolCalls[0]!.id);
    }
    expect(ids.size).toBe(2);
  });

  it('sends the tool frame before the end, numbered', async () => {
    const socket = await RawSocket.open(service.streamUrl);
    socket.send({ t: 'chat', id: 't1', messages: question, tools, toolChoice: 'required', temperature: 0, maxTokens: 120 });
    const frames: ServerFrame[] = await socket.request('t1');
    expect(frames.map((frame) => frame.t)).toEqual(['start', 'tool', 'end']);
    expect(frames[1]).toMatchObject({ t: 'tool', id: 't1', seq: 2, name: expect.any(String), callId: expect.any(String), arguments: expect.any(String) });
    expect(frames[2]).toMatchObject({ t: 'end', id: 't1', reason: 'tool_calls', seq: 3 });
    socket.close();
  });

  it('ends with length and no call when maxTokens cuts the call short', async () => {
    const { toolCalls, end } = await reply({ messages: question, tools, toolChoice: 'required', temperature: 0, maxTokens: 3 });
    expect(end.reason).toBe('length');
    expect(toolCalls).toEqual([]);
  });

  it('offers the tools but writes text when the model does not call (toolChoice auto, none)', async () => {
    const auto = await reply({ messages: question, tools, temperature: 0, maxTokens: 30 });
    expect(auto.end.reason).not.toBe('tool_calls');
    expect(auto.end.usage.promptTokens).toBe(renderedTokens(question, tools));
    const none = await reply({ messages: question, tools, toolChoice: 'none', temperature: 0, maxTokens: 30 });
    expect(none.end.usage.promptTokens).toBe(renderedTokens(question));
    expect(none.toolCalls).toEqual([]);
  });

  it('refuses tool parameters that are not an object schema, naming the tool', async () => {
    const failure = await reply({ messages: question, tools: [{ name: 'f', parameters: { type: 'string' } }] }).catch((error: unknown) => error);
    expect((failure as LlmError).code).toBe('invalid_params');
    expect((failure as LlmError).message).toContain('"tools[0].parameters" must describe an object');
  });
});

describe('penalties', () => {
  const prompt = 'Alice was beginning to get very tired of sitting by her sister';

  it('change the greedy text of a gen and of a chat', async () => {
    const plain = (await client.generate({ prompt, maxTokens: 60, temperature: 0 }).text()).text;
    for (const penalty of [{ repeatPenalty: 1.5 }, { frequencyPenalty: 1 }, { presencePenalty: 1.5 }]) {
      const penalized = (await client.generate({ prompt, maxTokens: 60, temperature: 0, ...penalty }).text()).text;
      expect(penalized, JSON.stringify(penalty)).not.toBe(plain);
    }
    const messages: ChatMessage[] = [{ role: 'user', content: 'Tell me a short story.' }];
    const chatPlain = await reply({ messages, maxTokens: 60, temperature: 0 });
    const chatPenalized = await reply({ messages, maxTokens: 60, temperature: 0, repeatPenalty: 1.8, frequencyPenalty: 0.5 });
    expect(chatPenalized.text).not.toBe(chatPlain.text);
    await waitForIdle(service);
  });

  it('are refused out of range', async () => {
    const failure = await client.generate({ prompt, repeatPenalty: 50 }).text().catch((error: unknown) => error);
    expect((failure as LlmError).code).toBe('invalid_params');
    expect((failure as LlmError).message).toBe('invalid_params: "repeatPenalty" must be a number from 0.1 to 10');
  });
});

describe('the response cache', () => {
  it('replays a deterministic chat, keyed by its messages, format and penalties', async () => {
    const cachedService = await startTestService({ responseCacheEntries: 100 });
    const cachedClient = await connectClient(cachedService);
    try {
      const request: ChatRequest = { messages: [{ role: 'user', content: 'Hello!' }], maxTokens: 20, temperature: 0 };
      const first = await cachedClient.chat(request).reply();
      const again = await cachedClient.chat(request).reply();
      expect(again.end.cached).toBe(true);
      expect(again.text).toBe(first.text);
      const penalized = await cachedClient.chat({ ...request, repeatPenalty: 1.5 }).reply();
      expect(penalized.end.cached).toBeUndefined();
      const json = await cachedClient.chat({ ...request, maxTokens: 100, responseFormat: { type: 'json_schema', schema: { type: 'object', properties: { ok: { type: 'boolean' } } } } }).reply();
      expect(json.end.cached).toBeUndefined();
      expect(JSON.parse(json.text)).toHaveProperty('ok');
      const tools: ToolSpec[] = [{ name: 'f', parameters: { type: 'object', properties: { n: { enum: [1, 2] } } } }];
      const calls = [await cachedClient.chat({ ...request, tools, toolChoice: 'required' }).reply(), await cachedClient.chat({ ...request, tools, toolChoice: 'required' }).reply()];
      expect(calls.map((call) => call.end.cached)).toEqual([undefined, undefined]);
      expect(calls.map((call) => call.toolCalls.length)).toEqual([1, 1]);
    } finally {
      cachedClient.close();
      await cachedService.shutdown(0);
    }
  });
});
