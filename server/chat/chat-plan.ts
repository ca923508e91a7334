import { LlamaText, type LlamaGrammar, type Tokenizer } from 'node-llama-cpp';
import { ErrorCode, type ChatParams, type JsonSchema } from '../../protocol/index.js';
import { ServiceError } from '../errors.js';
import type { ChatTemplate, TemplateTool } from './chat-template.js';
import type { GrammarBook, ToolCallGrammar } from './grammar-book.js';
import { supportedSchema } from './schema-support.js';
import { GRAMMAR_END } from './tool-call-grammar.js';

/** How a reply may call tools. */
export interface ToolPlan extends ToolCallGrammar {
  /**
   * `forced`: the prompt already ends with the call's prefix and the whole reply is one call.
   * `auto`: the reply is text until the model writes one of `triggers`; then a call follows.
   */
  mode: 'auto' | 'forced';
  triggers: string[];
  /** The text that follows a reply cut at a trigger, before the call itself. */
  prefix: LlamaText;
}

/** Everything a chat request needs besides sampling: the prompt, its stops and its constraints. */
export interface ChatPlan {
  prompt: LlamaText;
  /** Stop sequences of the template and the grammar, added to the request's own. */
  stops: string[];
  /** Constrains the text reply (JSON, a JSON schema). */
  grammar?: LlamaGrammar;
  tools?: ToolPlan;
  /** What the reply depends on besides the sampling, for the response cache; undefined: never cached (tool calls). */
  cacheText?: string;
}

const EMPTY_PARAMETERS: JsonSchema = { type: 'object', properties: {} };

/**
 * Plans the reply to a validated chat: checks the schemas it names, renders the messages (and the
 * tools it offers) with the model's template, and builds the grammars. The tools are offered unless
 * `toolChoice` is `none`; `required` or a named tool make the whole reply one call.
 */
export async function planChat(params: ChatParams, template: ChatTemplate, grammars: GrammarBook): Promise<ChatPlan> {
  const choice = params.toolChoice ?? 'auto';
  const tools = choice === 'none' ? [] : offeredTools(params);
  const rendered = template.render(params.messages, tools);
  const stops = [...rendered.stops];
  const plan: ChatPlan = { prompt: rendered.text, stops };
  const format = params.responseFormat;
  if (format?.type === 'json_object') plan.grammar = await grammars.jsonObject();
  if (format?.type === 'json_schema') plan.grammar = await grammars.jsonSchema(supportedSchema(format.schema, 'responseFormat.schema'));
  if (plan.grammar) stops.push(GRAMMAR_END);
  if (tools.length === 0) {
    plan.cacheText = JSON.stringify([rendered.text.toJSON(), format ?? null]);
    return plan;
  }
  const syntax = template.callSyntax;
  const callable = typeof choice === 'object' ? tools.filter((tool) => tool.name === choice.name) : tools;
  const call = await grammars.toolCall(callable, syntax);
  const mode = choice === 'auto' ? 'auto' : 'forced';
  plan.tools = { ...call, mode, triggers: syntax.triggers, prefix: syntax.prefix };
  if (mode === 'forced') {
    plan.prompt = LlamaText([rendered.text, syntax.prefix]);
    // The reply is the call alone: the text grammar has no say in it.
    delete plan.grammar;
  }
  return plan;
}

/**
 * The prompt of the call phase of an `auto` reply: the prompt's tokens, then the reply so far and
 * the call prefix. The reply is tokenized again rather than taken as generated: the same text, and
 * the sequence keeps every cached token up to the first that differs.
 */
export function callPromptTokens(tokenizer: Tokenizer, promptTokens: readonly number[], reply: string, prefix: LlamaText): number[] {
  return [...promptTokens, ...LlamaText([reply, prefix]).tokenize(tokenizer, 'trimLeadingSpace')];
}

/** The request's tools with their parameters checked; each must describe an object. */
function offeredTools(params: ChatParams): TemplateTool[] {
  return (params.tools ?? []).map((tool, index) => {
    const where = `tools[${index}].parameters`;
    const parameters = supportedSchema(tool.parameters ?? EMPTY_PARAMETERS, where);
    if (parameters.type !== 'object') throw new ServiceError(ErrorCode.invalidParams, `"${where}" must describe an object ("type": "object")`, { details: { part: where } });
    return { name: tool.name, ...(tool.description !== undefined && { description: tool.description }), parameters };
  });
}
