import { describe, expect, it } from 'vitest';
import { WireLimits } from '../../protocol/constants.js';
import type { ChatFrame, GenFrame } from '../../protocol/frames.js';
import { parseClientFrame } from '../../protocol/validate.js';

/*
 * A `chat` frame is validated at the edge like a `gen`: every problem is invalid_params with the
 * request's id and a message naming the field, down to `messages[3].toolCalls[0].arguments`.
 */

const user = (content: string): Record<string, unknown> => ({ role: 'user', content });
const chat = (fields: Record<string, unknown>): Record<string, unknown> => ({ t: 'chat', id: 'c-1', messages: [user('hi')], ...fields });
const weather = { name: 'get_weather', description: 'Weather of a city', parameters: { type: 'object', properties: { city: { type: 'string' } } } };
const call = { id: 'call_1', name: 'get_weather', arguments: '{"city":"Oslo"}' };

function valid(value: Record<string, unknown>): ChatFrame {
  const result = parseClientFrame(value);
  if (!result.ok) throw new Error(`expected a valid frame, got ${result.problem.code}: ${result.problem.message}`);
  expect(result.frame.t).toBe('chat');
  return result.frame as ChatFrame;
}

function problem(value: Record<string, unknown>): string {
  const result = parseClientFrame(value);
  if (result.ok) throw new Error(`expected a problem with ${JSON.stringify(value).slice(0, 200)}`);
  expect(result.problem.code).toBe('invalid_params');
  expect(result.problem.id).toBe('c-1');
  return result.problem.message;
}

describe('chat frames that are valid', () => {
  it('carries messages, sampling, penalties, format and tools', () => {
    const frame = valid(
      chat({
        model: 'demo',
        maxTokens: 32,
        temperature: 0,
        seed: 7,
        stop: ['\n\n'],
        repeatPenalty: 1.3,
        frequencyPenalty: 0.5,
        presencePenalty: -0.5,
        messages: [{ role: 'system', content: 'Be brief.' }, user('Weather?'), { role: 'assistant', content: '', toolCalls: [call] }, { role: 'tool', toolCallId: 'call_1', content: '{"temp": 20}' }],
        tools: [weather],
        toolChoice: { name: 'get_weather' },
        responseFormat: { type: 'text' },
      }),
    );
    expect(frame).toMatchObject({ id: 'c-1', model: 'demo', maxTokens: 32, temperature: 0, seed: 7, stop: ['\n\n'], repeatPenalty: 1.3, frequencyPenalty: 0.5, presencePenalty: -0.5 });
    expect(frame.messages).toHaveLength(4);
    expect(frame.messages[2]!.toolCalls).toEqual([call]);
    expect(frame.messages[3]!.toolCallId).toBe('call_1');
    expect(frame.tools).toEqual([weather]);
    expect(frame.toolChoice).toEqual({ name: 'get_weather' });
  });

  it('accepts a JSON schema reply, an empty tool list and a conversation that ends with an assistant turn', () => {
    const frame = valid(chat({ tools: [], responseFormat: { type: 'json_schema', schema: { type: 'object' } }, messages: [user('a'), { role: 'assistant', content: 'Once' }] }));
    expect(frame.tools).toBeUndefined();
    expect(frame.responseFormat).toEqual({ type: 'json_schema', schema: { type: 'object' } });
  });

  it('takes the penalties on gen too', () => {
    const result = parseClientFrame({ t: 'gen', id: 'g', prompt: 'x', repeatPenalty: 2, frequencyPenalty: 1, presencePenalty: 1 });
    expect(result.ok && (result.frame as GenFrame)).toMatchObject({ repeatPenalty: 2, frequencyPenalty: 1, presencePenalty: 1 });
  });
});

describe('chat frames that are refused', () => {
  it.each<[string, Record<string, unknown>, RegExp]>([
    ['no messages', chat({ messages: [] }), /"messages" must be a non-empty array/],
    ['messages not an array', chat({ messages: 'hi' }), /"messages" must be a non-empty array/],
    ['too many messages', chat({ messages: Array.from({ length: WireLimits.maxMessages + 1 }, () => user('x')) }), /at most 256 messages/],
    ['a message not a map', chat({ messages: ['hi'] }), /"messages\[0\]" must be a map/],
    ['an unknown role', chat({ messages: [{ role: 'developer', content: 'x' }] }), /"messages\[0\].role" must be/],
    ['content not a string', chat({ messages: [{ role: 'user', content: 3 }] }), /"messages\[0\].content" must be a string/],
    ['too much text together', chat({ messages: [user('a'.repeat(70_000)), user('b'.repeat(70_000))] }), /at most 131072 characters together/],
    ['a tool message without toolCallId', chat({ messages: [user('a'), { role: 'assistant', content: '', toolCalls: [call] }, { role: 'tool', content: 'x' }] }), /"messages\[2\].toolCallId" is required/],
    ['toolCallId on a user message', chat({ messages: [{ role: 'user', content: 'a', toolCallId: 'x' }] }), /"messages\[0\].toolCallId" belongs on "tool" messages only/],
    ['toolCalls on a user message', chat({ messages: [{ role: 'user', content: 'a', toolCalls: [call] }] }), /"messages\[0\].toolCalls" belongs on "assistant" messages only/],
    ['arguments that are not JSON', chat({ messages: [user('a'), { role: 'assistant', content: '', toolCalls: [{ ...call, arguments: '{city' }] }, { role: 'tool', toolCallId: 'call_1', content: 'x' }] }), /"messages\[1\].toolCalls\[0\].arguments" must be a JSON text of an object/],
    ['arguments not an object', chat({ messages: [user('a'), { role: 'assistant', content: '', toolCalls: [{ ...call, arguments: '[1]' }] }, { role: 'tool', toolCallId: 'call_1', content: 'x' }] }), /must be a JSON text of an object/],
    ['a bad tool call name', chat({ messages: [user('a'), { role: 'assistant', content: '', toolCalls: [{ ...call, name: 'get weather' }] }] }), /"messages\[1\].toolCalls\[0\].name" must be letters/],
    ['two calls with one id', chat({ messages: [user('a'), { role: 'assistant', content: '', toolCalls: [call, call] }] }), /repeats the id "call_1"/],
    ['a result of no call', chat({ messages: [user('a'), { role: 'assistant', content: '', toolCalls: [call] }, { role: 'tool', toolCallId: 'call_9', content: 'x' }] }), /"messages\[2\].toolCallId" "call_9" answers no open call of "messages\[1\].toolCalls"/],
    ['a tool message with no call before it', chat({ messages: [user('a'), { role: 'tool', toolCallId: 'call_1', content: 'x' }] }), /"messages\[1\]" is a "tool" message without an assistant message/],
    ['a call left unanswered', chat({ messages: [user('a'), { role: 'assistant', content: '', toolCalls: [call] }, user('b')] }), /"messages\[1\].toolCalls" "call_1" must each be answered/],
    ['a call unanswered at the end', chat({ messages: [user('a'), { role: 'assistant', content: '', toolCalls: [call] }] }), /must each be answered/],
    ['tools not an array', chat({ tools: {} }), /"tools" must be an array/],
    ['a tool without a name', chat({ tools: [{ description: 'x' }] }), /"tools\[0\].name" must be a string/],
    ['a tool name with a space', chat({ tools: [{ name: 'a b' }] }), /"tools\[0\].name" must be letters/],
    ['two tools with one name', chat({ tools: [weather, weather] }), /"tools\[1\].name" repeats the tool name "get_weather"/],
    ['parameters not a map', chat({ tools: [{ name: 'f', parameters: 'x' }] }), /"tools\[0\].parameters" must be a JSON schema/],
    ['a toolChoice of nothing', chat({ toolChoice: 'required' }), /offers none/],
    ['a toolChoice naming no tool', chat({ tools: [weather], toolChoice: { name: 'nope' } }), /"toolChoice.name" "nope" is not the name of a tool/],
    ['an unknown toolChoice', chat({ tools: [weather], toolChoice: 'always' }), /"toolChoice" must be/],
    ['an unknown response format', chat({ responseFormat: { type: 'yaml' } }), /"responseFormat" must be/],
    ['json_schema without a schema', chat({ responseFormat: { type: 'json_schema' } }), /"responseFormat.schema" must be a JSON schema/],
    ['JSON replies with tools the model may call', chat({ tools: [weather], responseFormat: { type: 'json_object' } }), /cannot be combined with "tools"/],
    ['a penalty out of range', chat({ repeatPenalty: 0 }), /"repeatPenalty" must be a number from 0.1 to 10/],
    ['a frequency penalty out of range', chat({ frequencyPenalty: 3 }), /"frequencyPenalty" must be a number from -2 to 2/],
    ['a sampling field as for gen', chat({ temperature: -1 }), /"temperature" must be a number/],
  ])('%s', (_name, value, message) => {
    expect(problem(value)).toMatch(message);
  });

  it('refuses a chat without a usable id with no id in the problem', () => {
    const result = parseClientFrame({ t: 'chat', id: '', messages: [user('x')] });
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.problem.id).toBeUndefined();
  });
});
