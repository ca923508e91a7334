import { parseClientFrame, type ChatFrame } from '../../protocol/index.js';
import { ApiError } from './api-error.js';
import { isObject, type JsonFields } from './request-body.js';
import { present, readSharedFields, type ReplyMode } from './shared-fields.js';

/** A chat completion request, as the `chat` frame the WebSocket protocol would carry. */
export interface ChatRequest extends ReplyMode {
  frame: ChatFrame;
}

/**
 * Translates a `POST /v1/chat/completions` body into a `chat` frame and validates it with the
 * protocol's own validator, so both doors accept exactly the same requests; a refusal names the
 * field in the client's spelling.
 */
export function readChatRequest(body: JsonFields, id: string): ChatRequest {
  const frame: Record<string, unknown> = { t: 'chat', id };
  const mode = readSharedFields(body, frame);
  for (const legacy of ['functions', 'function_call'] as const) {
    if (present(body[legacy])) throw ApiError.invalid(`"${legacy}" is the deprecated form of tools: send "tools" and "tool_choice"`, legacy, 'unsupported');
  }
  if (!Array.isArray(body.messages)) throw ApiError.invalid('"messages" must be a non-empty array of messages', 'messages');
  frame.messages = body.messages.map((message, index) => readMessage(message, `messages[${index}]`));
  if (Array.isArray(body.tools) && body.tools.length > 0) frame.tools = body.tools.map((tool, index) => readTool(tool, `tools[${index}]`));
  else if (present(body.tools) && !Array.isArray(body.tools)) throw ApiError.invalid('"tools" must be an array of tools', 'tools');
  if (present(body.tool_choice)) frame.toolChoice = readToolChoice(body.tool_choice);
  if (present(body.response_format)) frame.responseFormat = readResponseFormat(body.response_format);
  const parsed = parseClientFrame(frame);
  if (!parsed.ok) throw ApiError.of(parsed.problem);
  return { ...mode, frame: parsed.frame as ChatFrame };
}

function readMessage(value: unknown, at: string): Record<string, unknown> {
  if (!isObject(value)) throw ApiError.invalid(`"${at}" must be an object with "role" and "content"`, at);
  if (value.role === 'function') throw ApiError.invalid(`"${at}.role" "function" is the deprecated form of tool results: send "tool" messages`, `${at}.role`, 'unsupported');
  // "developer" is what newer OpenAI models call the system message.
  const message: Record<string, unknown> = { role: value.role === 'developer' ? 'system' : value.role, content: readContent(value.content, `${at}.content`) };
  if (present(value.tool_call_id)) message.toolCallId = value.tool_call_id;
  if (Array.isArray(value.tool_calls) && value.tool_calls.length > 0) {
    message.toolCalls = value.tool_calls.map((call, index) => readToolCall(call, `${at}.tool_calls[${index}]`));
  } else if (present(value.tool_calls) && !Array.isArray(value.tool_calls)) {
    throw ApiError.invalid(`"${at}.tool_calls" must be an array of tool calls`, `${at}.tool_calls`);
  }
  return message;
}

/** A string; null (an assistant turn that only called tools); or text parts, joined by newlines. */
function readContent(value: unknown, at: string): unknown {
  if (!present(value)) return '';
  if (!Array.isArray(value)) return value;
  return value
    .map((part, index) => {
      const where = `${at}[${index}]`;
      if (!isObject(part)) throw ApiError.invalid(`"${where}" must be a content part like {"type": "text", "text": "..."}`, where);
      if (part.type !== 'text') {
        throw ApiError.invalid(`"${where}.type" "${String(part.type).slice(0, 32)}" is not supported: only text parts are`, `${where}.type`, 'unsupported');
      }
      if (typeof part.text !== 'string') throw ApiError.invalid(`"${where}.text" must be a string`, `${where}.text`);
      return part.text;
    })
    .join('\n');
}

function readToolCall(value: unknown, at: string): Record<string, unknown> {
  if (!isObject(value) || (present(value.type) && value.type !== 'function') || !isObject(value.function)) {
    throw ApiError.invalid(`"${at}" must be {"id": ..., "type": "function", "function": {"name": ..., "arguments": ...}}`, at);
  }
  return { id: value.id, name: value.function.name, arguments: value.function.arguments };
}

function readTool(value: unknown, at: string): Record<string, unknown> {
  if (!isObject(value) || value.type !== 'function' || !isObject(value.function)) {
    throw ApiError.invalid(`"${at}" must be {"type": "function", "function": {"name": ..., "description": ..., "parameters": {...}}}`, at);
  }
  const { name, description, parameters } = value.function;
  return { name, ...(present(description) && { description }), ...(present(parameters) && { parameters }) };
}

function readToolChoice(value: unknown): unknown {
  if (value === 'auto' || value === 'none' || value === 'required') return value;
  if (isObject(value) && value.type === 'function' && isObject(value.function) && typeof value.function.name === 'string') return { name: value.function.name };
  throw ApiError.invalid('"tool_choice" must be "auto", "none", "required" or {"type": "function", "function": {"name": ...}}', 'tool_choice');
}

function readResponseFormat(value: unknown): unknown {
  if (isObject(value) && (value.type === 'text' || value.type === 'json_object')) return { type: value.type };
  if (isObject(value) && value.type === 'json_schema') {
    const spec = value.json_schema;
    if (!isObject(spec) || !isObject(spec.schema)) throw ApiError.invalid('"response_format.json_schema.schema" must be a JSON schema (an object)', 'response_format.json_schema.schema');
    return { type: 'json_schema', schema: spec.schema };
  }
  throw ApiError.invalid('"response_format" must be {"type": "text"}, {"type": "json_object"} or {"type": "json_schema", "json_schema": {"name": ..., "schema": {...}}}', 'response_format');
}
