import type { Usage } from '../../protocol/index.js';

/** Why a choice ended, as OpenAI says it. */
export type FinishReason = 'stop' | 'length' | 'tool_calls';

/** A tool call the model made (a `tool` frame). */
export interface CallMade {
  id: string;
  name: string;
  arguments: string;
}

/** Everything a generation produced, for a whole (non-streamed) answer. */
export interface Outcome {
  model: string;
  text: string;
  calls: CallMade[];
  finishReason: FinishReason;
  usage: Usage;
}

/** OpenAI's usage object. */
function usageOf(usage: Usage): { prompt_tokens: number; completion_tokens: number; total_tokens: number } {
  return { prompt_tokens: usage.promptTokens, completion_tokens: usage.completionTokens, total_tokens: usage.promptTokens + usage.completionTokens };
}

function toolCallOf(call: CallMade): { id: string; type: 'function'; function: { name: string; arguments: string } } {
  return { id: call.id, type: 'function', function: { name: call.name, arguments: call.arguments } };
}

/** The objects one endpoint answers with: a whole answer, or the chunks of a streamed one. */
export interface ReplyFormat {
  whole(outcome: Outcome): object;
  /** Sent first when streaming (the chat's role delta), or nothing. */
  opening(model: string): object | undefined;
  text(model: string, text: string): object;
  call(model: string, call: CallMade, index: number): object;
  closing(model: string, reason: FinishReason): object;
  /** The last chunk with `stream_options.include_usage`: no choices, the usage. */
  usage(model: string, usage: Usage): object;
}

/** Shared by every object of one answer. */
interface Identity {
  /** `chatcmpl-…` or `cmpl-…`. */
  id: string;
  /** Unix seconds. */
  created: number;
  /** With `stream_options.include_usage`, every chunk carries `usage: null` until the last one. */
  includeUsage: boolean;
}

/** `chat.completion` and `chat.completion.chunk` objects. */
export function chatFormat({ id, created, includeUsage }: Identity): ReplyFormat {
  const chunk = (model: string, delta: object, finishReason: FinishReason | null = null): object => ({
    id,
    object: 'chat.completion.chunk',
    created,
    model,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
    ...(includeUsage && { usage: null }),
  });
  return {
    whole: ({ model, text, calls, finishReason, usage }) => ({
      id,
      object: 'chat.completion',
      created,
      model,
      choices: [
        {
          index: 0,
          // An answer that only calls tools has no content, as OpenAI sends it.
          message: { role: 'assistant', content: calls.length > 0 && text === '' ? null : text, refusal: null, ...(calls.length > 0 && { tool_calls: calls.map(toolCallOf) }) },
          logprobs: null,
          finish_reason: finishReason,
        },
      ],
      usage: usageOf(usage),
    }),
    opening: (model) => chunk(model, { role: 'assistant', content: '' }),
    text: (model, text) => chunk(model, { content: text }),
    // Each call goes out whole, once complete: its id, name and all its arguments in one delta.
    call: (model, call, index) => chunk(model, { tool_calls: [{ index, ...toolCallOf(call) }] }),
    closing: (model, reason) => chunk(model, {}, reason),
    usage: (model, usage) => ({ id, object: 'chat.completion.chunk', created, model, choices: [], usage: usageOf(usage) }),
  };
}

/** `text_completion` objects, whole and as chunks (the same object with a piece of text). */
export function completionFormat({ id, created, includeUsage }: Identity): ReplyFormat {
  const object = (model: string, text: string, finishReason: FinishReason | null, usage?: Usage): object => ({
    id,
    object: 'text_completion',
    created,
    model,
    choices: [{ index: 0, text, logprobs: null, finish_reason: finishReason }],
    ...(usage ? { usage: usageOf(usage) } : includeUsage && { usage: null }),
  });
  return {
    whole: ({ model, text, finishReason, usage }) => object(model, text, finishReason, usage),
    opening: () => undefined,
    text: (model, text) => object(model, text, null),
    call: () => {
      throw new Error('a prompt completion makes no tool calls');
    },
    closing: (model, reason) => object(model, '', reason),
    usage: (model, usage) => ({ id, object: 'text_completion', created, model, choices: [], usage: usageOf(usage) }),
  };
}
