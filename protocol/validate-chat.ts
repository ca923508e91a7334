import { WireLimits } from './constants.js';
import type { ChatFrame, ChatMessage, ChatRole, ResponseFormat, ToolCall, ToolChoice, ToolSpec } from './frames.js';
import { Invalid, isMap, optional, readGenParams, text, type Fields } from './validate-fields.js';

const ROLES: ReadonlySet<string> = new Set<ChatRole>(['system', 'user', 'assistant', 'tool']);
const TOOL_NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;
const RESPONSE_TYPES: ReadonlySet<string> = new Set(['text', 'json_object', 'json_schema']);

/**
 * Validates the fields of a `chat` frame whose id is already known good. Throws Invalid naming the
 * field (`messages[2].toolCallId`) and what it must be. Checks the shape of JSON schemas only: what
 * the server can turn into a grammar is its own check.
 */
export function readChatFrame(fields: Fields, id: string): ChatFrame {
  const frame: ChatFrame = { t: 'chat', id, messages: [] };
  readGenParams(fields, frame);
  frame.messages = messageList(fields.messages);
  const tools = optional(fields, 'tools', () => toolList(fields.tools));
  if (tools !== undefined && tools.length > 0) frame.tools = tools;
  const toolChoice = optional(fields, 'toolChoice', () => readToolChoice(fields.toolChoice, frame.tools ?? []));
  if (toolChoice !== undefined) frame.toolChoice = toolChoice;
  const responseFormat = optional(fields, 'responseFormat', () => readResponseFormat(fields.responseFormat));
  if (responseFormat !== undefined) frame.responseFormat = responseFormat;
  const calling = frame.tools !== undefined && (frame.toolChoice ?? 'auto') === 'auto';
  if (calling && frame.responseFormat !== undefined && frame.responseFormat.type !== 'text') {
    throw new Invalid('"responseFormat" constrains every reply, so it cannot be combined with "tools" unless "toolChoice" is "none", "required" or names a tool');
  }
  const chars = frame.messages.reduce((sum, message) => sum + message.content.length + (message.toolCalls ?? []).reduce((n, call) => n + call.arguments.length, 0), 0) +
    (frame.tools ?? []).reduce((sum, tool) => sum + (tool.description?.length ?? 0), 0);
  if (chars > WireLimits.maxPromptChars) {
    throw new Invalid(`the messages, tool call arguments and tool descriptions may have at most ${WireLimits.maxPromptChars} characters together (got ${chars})`);
  }
  return frame;
}

function messageList(value: unknown): ChatMessage[] {
  if (!Array.isArray(value) || value.length === 0) throw new Invalid('"messages" must be a non-empty array of messages');
  if (value.length > WireLimits.maxMessages) throw new Invalid(`"messages" may hold at most ${WireLimits.maxMessages} messages (got ${value.length})`);
  const messages = value.map((item, index) => readMessage(item, `messages[${index}]`));
  checkToolAnswers(messages);
  return messages;
}

function readMessage(value: unknown, where: string): ChatMessage {
  if (!isMap(value)) throw new Invalid(`"${where}" must be a map with "role" and "content"`);
  const role = value.role;
  if (typeof role !== 'string' || !ROLES.has(role)) throw new Invalid(`"${where}.role" must be "system", "user", "assistant" or "tool"`);
  const message: ChatMessage = { role: role as ChatRole, content: text(value, 'content', WireLimits.maxPromptChars, 0, `${where}.content`) };
  const hasCallId = value.toolCallId !== undefined && value.toolCallId !== null;
  const hasCalls = value.toolCalls !== undefined && value.toolCalls !== null;
  if (role === 'tool') {
    if (!hasCallId) throw new Invalid(`"${where}.toolCallId" is required on a "tool" message: the id of the call it answers`);
    message.toolCallId = text(value, 'toolCallId', WireLimits.maxIdLength, 1, `${where}.toolCallId`);
  } else if (hasCallId) {
    throw new Invalid(`"${where}.toolCallId" belongs on "tool" messages only`);
  }
  if (hasCalls) {
    if (role !== 'assistant') throw new Invalid(`"${where}.toolCalls" belongs on "assistant" messages only`);
    message.toolCalls = toolCallList(value.toolCalls, `${where}.toolCalls`);
  }
  return message;
}

function toolCallList(value: unknown, where: string): ToolCall[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > WireLimits.maxToolCallsPerMessage) {
    throw new Invalid(`"${where}" must be an array of 1 to ${WireLimits.maxToolCallsPerMessage} calls`);
  }
  const ids = new Set<string>();
  return value.map((item, index) => {
    const at = `${where}[${index}]`;
    if (!isMap(item)) throw new Invalid(`"${at}" must be a map with "id", "name" and "arguments"`);
    const call: ToolCall = {
      id: text(item, 'id', WireLimits.maxIdLength, 1, `${at}.id`),
      name: toolName(item, 'name', `${at}.name`),
      arguments: text(item, 'arguments', WireLimits.maxPromptChars, 1, `${at}.arguments`),
    };
    if (ids.has(call.id)) throw new Invalid(`"${at}.id" repeats the id "${call.id}" of another call of this message`);
    ids.add(call.id);
    let parsed: unknown;
    try {
      parsed = JSON.parse(call.arguments);
    } catch {
      throw new Invalid(`"${at}.arguments" must be a JSON text of an object`);
    }
    if (!isMap(parsed)) throw new Invalid(`"${at}.arguments" must be a JSON text of an object`);
    return call;
  });
}

/**
 * Each `tool` message answers a call of the assistant message before it (only `tool` messages in
 * between), each call exactly once, and no call is left unanswered: the template renders every
 * call with its result.
 */
function checkToolAnswers(messages: readonly ChatMessage[]): void {
  let open = new Map<string, number>();
  let caller = -1;
  const unanswered = (): Invalid =>
    new Invalid(`"messages[${caller}].toolCalls" ${[...open.keys()].map((id) => `"${id}"`).join(', ')} must each be answered by a "tool" message right after it`);
  messages.forEach((message, index) => {
    if (message.role === 'tool') {
      const id = message.toolCallId!;
      if (caller < 0) throw new Invalid(`"messages[${index}]" is a "tool" message without an assistant message with "toolCalls" before it`);
      if (!open.has(id)) throw new Invalid(`"messages[${index}].toolCallId" "${id}" answers no open call of "messages[${caller}].toolCalls"`);
      open.delete(id);
      return;
    }
    if (open.size > 0) throw unanswered();
    caller = -1;
    if (message.toolCalls) {
      caller = index;
      open = new Map(message.toolCalls.map((call) => [call.id, index]));
    }
  });
  if (open.size > 0) throw unanswered();
}

function toolList(value: unknown): ToolSpec[] {
  if (!Array.isArray(value) || value.length > WireLimits.maxTools) throw new Invalid(`"tools" must be an array of at most ${WireLimits.maxTools} tools`);
  const names = new Set<string>();
  return value.map((item, index) => {
    const at = `tools[${index}]`;
    if (!isMap(item)) throw new Invalid(`"${at}" must be a map with "name" and optionally "description" and "parameters"`);
    const tool: ToolSpec = { name: toolName(item, 'name', `${at}.name`) };
    if (names.has(tool.name)) throw new Invalid(`"${at}.name" repeats the tool name "${tool.name}"`);
    names.add(tool.name);
    const description = optional(item, 'description', () => text(item, 'description', WireLimits.maxToolDescriptionLength, 0, `${at}.description`));
    if (description !== undefined) tool.description = description;
    if (item.parameters !== undefined && item.parameters !== null) {
      if (!isMap(item.parameters)) throw new Invalid(`"${at}.parameters" must be a JSON schema (a map)`);
      tool.parameters = item.parameters;
    }
    return tool;
  });
}

function toolName(fields: Fields, name: string, label: string): string {
  const value = text(fields, name, WireLimits.maxToolNameLength, 1, label);
  if (!TOOL_NAME.test(value)) throw new Invalid(`"${label}" must be letters, digits, "_" and "-", starting with a letter or "_"`);
  return value;
}

function readToolChoice(value: unknown, tools: readonly ToolSpec[]): ToolChoice {
  if (value === 'auto' || value === 'none') return value;
  const named = isMap(value) && typeof value.name === 'string' ? value.name : undefined;
  if (value !== 'required' && named === undefined) throw new Invalid('"toolChoice" must be "auto", "none", "required" or {"name": <a tool\'s name>}');
  if (tools.length === 0) throw new Invalid('"toolChoice" asks for a tool call but "tools" offers none');
  if (named === undefined) return 'required';
  if (!tools.some((tool) => tool.name === named)) throw new Invalid(`"toolChoice.name" "${named.slice(0, WireLimits.maxToolNameLength)}" is not the name of a tool in "tools"`);
  return { name: named };
}

function readResponseFormat(value: unknown): ResponseFormat {
  if (!isMap(value) || typeof value.type !== 'string' || !RESPONSE_TYPES.has(value.type)) {
    throw new Invalid('"responseFormat" must be {"type": "text"}, {"type": "json_object"} or {"type": "json_schema", "schema": {...}}');
  }
  if (value.type !== 'json_schema') return { type: value.type as 'text' | 'json_object' };
  if (!isMap(value.schema)) throw new Invalid('"responseFormat.schema" must be a JSON schema (a map)');
  return { type: 'json_schema', schema: value.schema };
}
