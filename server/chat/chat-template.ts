import {
  LlamaText,
  SpecialToken,
  SpecialTokensText,
  chatWrappers,
  resolveChatWrapper,
  type ChatModelFunctions,
  type ChatWrapper,
  type GbnfJsonSchema,
  type LlamaModel,
  type ResolvableChatWrapperTypeName,
} from 'node-llama-cpp';
import { ErrorCode, type ChatMessage, type JsonSchema } from '../../protocol/index.js';
import { ServiceError } from '../errors.js';
import { chatHistoryOf } from './chat-history.js';

/** A tool as the template documents it: its parameters already checked (see schema-support). */
export interface TemplateTool {
  name: string;
  description?: string;
  parameters: JsonSchema;
}

/** A conversation as the model's template renders it, up to where the reply starts. */
export interface RenderedChat {
  /** Control markers are special tokens; the messages' own text never is. */
  text: LlamaText;
  /** Texts that end the reply: the template's end-of-turn markers (end-of-generation tokens end it anyway). */
  stops: string[];
}

/** How the template writes a tool call: `prefix`, the name, `paramsPrefix`, the arguments as JSON. */
export interface CallSyntax {
  /** What starts a call, as put into the prompt to make the model call. */
  prefix: LlamaText;
  /** The spellings of the start of a call the model may write, to notice one in its free text. */
  triggers: string[];
  /** A space may come before the name. */
  optionalPrefixSpace: boolean;
  /** What the template writes between the name and the arguments. */
  paramsPrefix: string;
}

/**
 * The chat template of one model: node-llama-cpp's chat wrapper for it, resolved from the GGUF's
 * `tokenizer.chat_template` (a Jinja template, or the built-in wrapper it matches) or, without
 * one, from the model's name and architecture. Renders messages and tools the way the model was
 * trained to read them.
 */
export class ChatTemplate {
  constructor(readonly wrapper: ChatWrapper) {}

  /**
   * The template of `model`. `auto` matches the GGUF's template against every built-in wrapper,
   * which takes up to seconds of CPU: a server resolves the name off the event loop
   * (PromptTokenizer.chatWrapperOf) and passes it here, where making the wrapper is quick.
   */
  static of(model: LlamaModel, type: ResolvableChatWrapperTypeName = 'auto'): ChatTemplate {
    return new ChatTemplate(resolveChatWrapper(model, { type, warningLogs: false }));
  }

  /** The wrapper's name (`ChatML`, `Llama 3.1`, `Jinja`...). */
  get name(): string {
    return this.wrapper.wrapperName;
  }

  /** Renders the conversation and, when given, the tools the model may call. */
  render(messages: readonly ChatMessage[], tools: readonly TemplateTool[] = []): RenderedChat {
    const availableFunctions: ChatModelFunctions | undefined =
      tools.length === 0
        ? undefined
        : Object.fromEntries(tools.map((tool) => [tool.name, { ...(tool.description !== undefined && { description: tool.description }), params: tool.parameters as GbnfJsonSchema }]));
    let state;
    try {
      state = this.wrapper.generateContextState({
        chatHistory: chatHistoryOf(messages),
        ...(availableFunctions && { availableFunctions, documentFunctionParams: true }),
      });
    } catch (error) {
      // A Jinja template may refuse a conversation (say, roles that do not alternate).
      throw new ServiceError(ErrorCode.invalidParams, `the model's chat template (${this.name}) cannot render these messages: ${(error as Error).message}`, { cause: error });
    }
    return { text: state.contextText, stops: uniqueTexts(state.stopGenerationTriggers) };
  }

  /** How this template writes a tool call. */
  get callSyntax(): CallSyntax {
    const call = this.wrapper.settings.functions.call;
    const prefix = LlamaText(call.prefix);
    const triggers = uniqueTexts([prefix, ...(call.prefixAlternateMatches ?? []).map((match) => LlamaText(match))]);
    return { prefix, triggers, optionalPrefixSpace: call.optionalPrefixSpace, paramsPrefix: plainText(LlamaText(call.paramsPrefix)) ?? '' };
  }
}

/** The name of `wrapper`'s kind in node-llama-cpp's `chatWrappers`, which ChatTemplate.of takes. */
export function chatWrapperTypeOf(wrapper: ChatWrapper): ResolvableChatWrapperTypeName {
  const found = Object.entries(chatWrappers).find(([, kind]) => wrapper.constructor === kind);
  return (found?.[0] as ResolvableChatWrapperTypeName | undefined) ?? 'general';
}

/**
 * The text of each trigger that can be told apart in generated text. A trigger with a built-in
 * special token (EOS, EOT) is left out: the engine ends at end-of-generation tokens anyway.
 */
function uniqueTexts(triggers: readonly LlamaText[]): string[] {
  const texts = new Set<string>();
  for (const trigger of triggers) {
    const text = plainText(trigger);
    if (text !== undefined && text.length > 0) texts.add(text);
  }
  return [...texts];
}

/** The characters of `text`, or undefined when it holds a built-in special token, which has none. */
function plainText(text: LlamaText): string | undefined {
  let out = '';
  for (const value of text.values) {
    if (value instanceof SpecialToken) return undefined;
    out += value instanceof SpecialTokensText ? value.value : value;
  }
  return out;
}
