/*
 * The protocol's validator names fields as frames spell them (`messages[2].toolCallId`); an OpenAI
 * client sent them as OpenAI spells them (`messages[2].tool_call_id`). Its messages and the error's
 * `param` are rewritten so the client reads its own names.
 */

const TOP_LEVEL: Record<string, string> = {
  maxTokens: 'max_tokens',
  topK: 'top_k',
  topP: 'top_p',
  minP: 'min_p',
  repeatPenalty: 'repeat_penalty',
  frequencyPenalty: 'frequency_penalty',
  presencePenalty: 'presence_penalty',
  responseFormat: 'response_format',
  toolChoice: 'tool_choice',
};

/** Fields of a message, of one of its tool calls, and of a tool, as OpenAI nests them. */
const MESSAGE: Record<string, string> = { toolCallId: 'tool_call_id', toolCalls: 'tool_calls' };
const CALL: Record<string, string> = { name: 'function.name', arguments: 'function.arguments' };
const TOOL: Record<string, string> = { name: 'function.name', description: 'function.description', parameters: 'function.parameters' };

/** A frame field path (`tools[1].name`, `responseFormat.schema`) in OpenAI's spelling. */
export function openAiPath(path: string): string {
  const [head = '', ...rest] = path.split('.');
  const { name, index } = splitIndex(head);
  if (name === 'messages' && rest.length > 0) {
    const [field = '', ...more] = rest;
    const inner = splitIndex(field);
    const renamed = MESSAGE[inner.name] ?? inner.name;
    if (inner.name === 'toolCalls' && more.length > 0) return [`messages${index}.${renamed}${inner.index}`, ...more.map((part) => CALL[part] ?? part)].join('.');
    return [`messages${index}.${renamed}${inner.index}`, ...more].join('.');
  }
  if (name === 'tools' && rest.length > 0) return [`tools${index}`, ...rest.map((part) => TOOL[part] ?? part)].join('.');
  if (name === 'toolChoice' && rest[0] === 'name') return ['tool_choice.function.name', ...rest.slice(1)].join('.');
  if (name === 'responseFormat' && rest[0] === 'schema') return ['response_format.json_schema.schema', ...rest.slice(1)].join('.');
  return [`${TOP_LEVEL[name] ?? name}${index}`, ...rest].join('.');
}

/** The message with every quoted field path in OpenAI's spelling, and the first one as the error's `param`. */
export function inOpenAiTerms(message: string): { message: string; param: string | null } {
  let param: string | null = null;
  const rewritten = message.replace(/"([A-Za-z_][A-Za-z0-9_]*(?:\[\d+\])*(?:\.[A-Za-z_][A-Za-z0-9_]*(?:\[\d+\])*)*)"/g, (_quoted, path: string) => {
    const translated = openAiPath(path);
    param ??= translated;
    return `"${translated}"`;
  });
  return { message: rewritten, param };
}

function splitIndex(segment: string): { name: string; index: string } {
  const at = segment.indexOf('[');
  return at < 0 ? { name: segment, index: '' } : { name: segment.slice(0, at), index: segment.slice(at) };
}
