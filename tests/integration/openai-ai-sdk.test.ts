import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { generateObject, generateText, jsonSchema, streamText, tool } from 'ai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Service } from '../../server/app.js';
import { startTestService, waitForIdle } from '../helpers/service.js';

/*
 * The Vercel AI SDK with its OpenAI-compatible provider against the real server on the demo model:
 * streamed text, a structured object, and a tool call, as an application built on the SDK gets them.
 */

let service: Service;

beforeAll(async () => {
  service = await startTestService();
});

afterAll(async () => {
  await service?.shutdown(0);
});

function provider(): ReturnType<typeof createOpenAICompatible> {
  return createOpenAICompatible({ name: 'llm-stream', baseURL: `${service.httpUrl}/v1`, includeUsage: true, supportsStructuredOutputs: true });
}

describe('the AI SDK', () => {
  it('streamText streams the reply, its finish reason and usage', async () => {
    const errors: unknown[] = [];
    const result = streamText({
      model: provider().chatModel('demo'),
      system: 'You are a helpful assistant.',
      prompt: 'Who is Alice?',
      maxOutputTokens: 30,
      temperature: 0,
      maxRetries: 0,
      onError: ({ error }) => void errors.push(error),
    });
    const pieces: string[] = [];
    for await (const piece of result.textStream) pieces.push(piece);
    expect(errors).toEqual([]);
    expect(pieces.length).toBeGreaterThan(1);
    expect(await result.text).toBe(pieces.join(''));
    expect(['stop', 'length']).toContain(await result.finishReason);
    const usage = await result.usage;
    expect(usage.outputTokens).toBeGreaterThan(0);
    expect(usage.outputTokens).toBeLessThanOrEqual(30);
    expect(usage.totalTokens).toBe(usage.inputTokens! + usage.outputTokens!);
    await waitForIdle(service);
  });

  it('generateObject returns an object valid for its schema', async () => {
    const { object, finishReason } = await generateObject({
      model: provider().chatModel('demo'),
      schema: jsonSchema<{ title: string; year: number; tags: string[] }>({
        type: 'object',
        properties: {
          title: { type: 'string', maxLength: 30 },
          year: { type: 'integer' },
          tags: { type: 'array', items: { type: 'string', maxLength: 12 }, maxItems: 3 },
        },
        required: ['title', 'year', 'tags'],
        additionalProperties: false,
      }),
      schemaName: 'book',
      prompt: 'Describe a book.',
      maxOutputTokens: 300,
      maxRetries: 0,
    });
    expect(finishReason).toBe('stop');
    expect(Object.keys(object).sort()).toEqual(['tags', 'title', 'year']);
    expect(typeof object.title).toBe('string');
    expect(object.title.length).toBeLessThanOrEqual(30);
    expect(Number.isInteger(object.year)).toBe(true);
    expect(object.tags.length).toBeLessThanOrEqual(3);
    expect(object.tags.every((tag) => typeof tag === 'string')).toBe(true);
  });

  it('generateText calls a tool the model chose, with arguments valid for its schema', async () => {
    const calls: { city: string }[] = [];
    const result = await generateText({
      model: provider().chatModel('demo'),
      prompt: 'What is the weather in Paris?',
      tools: {
        weather: tool({
          description: 'The weather in a city',
          inputSchema: jsonSchema<{ city: string }>({ type: 'object', properties: { city: { type: 'string', maxLength: 24 } }, required: ['city'], additionalProperties: false }),
          execute: async (input) => {
            calls.push(input);
            return { temperature: 21 };
          },
        }),
      },
      toolChoice: 'required',
      maxOutputTokens: 200,
      maxRetries: 0,
    });
    expect(result.finishReason).toBe('tool-calls');
    expect(result.toolCalls).toHaveLength(1);
    expect(result.toolCalls[0]).toMatchObject({ toolName: 'weather', input: { city: expect.any(String) } });
    expect(calls).toEqual([result.toolCalls[0]!.input]);
    expect(result.toolResults[0]).toMatchObject({ toolName: 'weather', output: { temperature: 21 } });
  });
});
