import type { ChatHistoryItem, ChatModelFunctionCall, ChatModelResponse } from 'node-llama-cpp';
import type { ChatMessage } from '../../protocol/index.js';

/**
 * Turns protocol messages into node-llama-cpp's chat history. An assistant message's tool calls
 * become function calls of its model turn, each with the result of the `tool` message that answers
 * it (messages are validated: every call has one); an assistant message after such results goes on
 * in the same turn, as the templates render it. The history ends with a model turn: an empty one
 * for a fresh reply, or the last assistant message (with its tool results), which the model continues.
 */
export function chatHistoryOf(messages: readonly ChatMessage[]): ChatHistoryItem[] {
  const history: ChatHistoryItem[] = [];
  /** The model turn that tool results and a following assistant message still belong to. */
  let turn: ChatModelResponse | undefined;
  let calls = new Map<string, ChatModelFunctionCall>();
  for (const message of messages) {
    switch (message.role) {
      case 'system':
        history.push({ type: 'system', text: message.content });
        turn = undefined;
        break;
      case 'user':
        history.push({ type: 'user', text: message.content });
        turn = undefined;
        break;
      case 'tool': {
        const call = calls.get(message.toolCallId!);
        if (call) call.result = resultValue(message.content);
        break;
      }
      case 'assistant': {
        const continuing = turn !== undefined && calls.size > 0;
        if (!continuing) {
          turn = { type: 'model', response: [] };
          history.push(turn);
        }
        if (message.content.length > 0) turn!.response.push(message.content);
        calls = new Map();
        for (const toolCall of message.toolCalls ?? []) {
          const call: ChatModelFunctionCall = { type: 'functionCall', name: toolCall.name, params: JSON.parse(toolCall.arguments) as unknown, result: undefined };
          calls.set(toolCall.id, call);
          turn!.response.push(call);
        }
        break;
      }
    }
  }
  if (history.at(-1)?.type !== 'model') history.push({ type: 'model', response: [] });
  return history;
}

/** A result that is JSON is passed as its value (the template writes it as JSON); other text as a string. */
function resultValue(content: string): unknown {
  try {
    return JSON.parse(content) as unknown;
  } catch {
    return content;
  }
}
