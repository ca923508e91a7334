import { describe, expect, it } from 'vitest';
import { inOpenAiTerms, openAiPath } from '../../server/openai/param-names.js';
import { duration } from '../../server/openai/rate-limit-headers.js';

describe('field paths in OpenAI spelling', () => {
  it.each([
    ['maxTokens', 'max_tokens'],
    ['topP', 'top_p'],
    ['frequencyPenalty', 'frequency_penalty'],
    ['temperature', 'temperature'],
    ['messages', 'messages'],
    ['messages[2]', 'messages[2]'],
    ['messages[2].content', 'messages[2].content'],
    ['messages[2].toolCallId', 'messages[2].tool_call_id'],
    ['messages[1].toolCalls', 'messages[1].tool_calls'],
    ['messages[1].toolCalls[0].name', 'messages[1].tool_calls[0].function.name'],
    ['messages[1].toolCalls[3].arguments', 'messages[1].tool_calls[3].function.arguments'],
    ['messages[1].toolCalls[0].id', 'messages[1].tool_calls[0].id'],
    ['tools[4].name', 'tools[4].function.name'],
    ['tools[0].parameters', 'tools[0].function.parameters'],
    ['toolChoice', 'tool_choice'],
    ['toolChoice.name', 'tool_choice.function.name'],
    ['responseFormat', 'response_format'],
    ['responseFormat.schema', 'response_format.json_schema.schema'],
    ['responseFormat.schema.properties.age.minimum', 'response_format.json_schema.schema.properties.age.minimum'],
  ])('%s is %s', (path, expected) => {
    expect(openAiPath(path)).toBe(expected);
  });

  it('rewrites every quoted path of a message and takes the first as the param', () => {
    expect(inOpenAiTerms('"messages[2].toolCallId" "call_9" answers no open call of "messages[1].toolCalls"')).toEqual({
      message: '"messages[2].tool_call_id" "call_9" answers no open call of "messages[1].tool_calls"',
      param: 'messages[2].tool_call_id',
    });
    expect(inOpenAiTerms('each "stop" sequence must be a string')).toEqual({ message: 'each "stop" sequence must be a string', param: 'stop' });
    expect(inOpenAiTerms('no field is named here')).toEqual({ message: 'no field is named here', param: null });
  });
});

describe('rate-limit reset durations as OpenAI writes them', () => {
  it.each([
    [0, '0s'],
    [-5, '0s'],
    [0.2, '1ms'],
    [250, '250ms'],
    [999.5, '1s'],
    [1000, '1s'],
    [1500, '1.5s'],
    [59_999, '59.999s'],
    [60_000, '1m0s'],
    [150_000, '2m30s'],
    [3_600_000, '60m0s'],
  ])('%s ms reads %s', (ms, text) => {
    expect(duration(ms)).toBe(text);
  });
});
