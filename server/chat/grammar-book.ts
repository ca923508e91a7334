import { LRUCache } from 'lru-cache';
import type { Llama, LlamaGrammar, LlamaJsonSchemaGrammar } from 'node-llama-cpp';
import { ErrorCode, type JsonSchema } from '../../protocol/index.js';
import { ServiceError } from '../errors.js';
import type { CallSyntax, TemplateTool } from './chat-template.js';
import { GRAMMAR_END, parseToolCall, toolCallGbnf, type ParsedToolCall } from './tool-call-grammar.js';

/** Grammars kept for reuse: clients tend to send the same few schemas and tool sets again and again. */
const MAX_GRAMMARS = 64;

/** The grammar of a tool call and the reader of what it produced. */
export interface ToolCallGrammar {
  grammar: LlamaGrammar;
  /** The call in the text generated under `grammar`, its arguments checked against the schema; undefined when cut short. */
  parse(text: string): ParsedToolCall | undefined;
}

type JsonSchemaGrammar = LlamaJsonSchemaGrammar<never, never>;

/**
 * Builds the grammars that constrain replies (JSON, a JSON schema, tool calls) and keeps recent
 * ones: a grammar is immutable and shared by the requests that use it, each with its own
 * evaluation state. Schemas given here were checked by supportedSchema.
 */
export class GrammarBook {
  private readonly grammars = new LRUCache<string, Promise<unknown>>({ max: MAX_GRAMMARS });

  constructor(private readonly llama: Llama) {}

  /**
   * Any JSON object; ends with GRAMMAR_END. Built like a schema's (node-llama-cpp's grammar of any
   * JSON value), not read from llama.cpp's json.gbnf, which a local engine build may not ship.
   */
  jsonObject(): Promise<LlamaGrammar> {
    return this.jsonSchema({ type: 'object', additionalProperties: true });
  }

  /** JSON valid for `schema`; ends with GRAMMAR_END. */
  jsonSchema(schema: JsonSchema): Promise<JsonSchemaGrammar> {
    return this.cached(`schema:${JSON.stringify(schema)}`, () => (this.llama.createGrammarForJsonSchema(schema as never) as Promise<JsonSchemaGrammar>).catch(refused));
  }

  /** One call of one of `tools`, in the template's syntax, after its prefix. */
  async toolCall(tools: readonly TemplateTool[], syntax: CallSyntax): Promise<ToolCallGrammar> {
    const schemas = await Promise.all(tools.map((tool) => this.jsonSchema(tool.parameters)));
    const key = `tools:${JSON.stringify([tools.map((tool) => [tool.name, tool.parameters]), syntax.optionalPrefixSpace, syntax.paramsPrefix])}`;
    const grammar = await this.cached(key, () =>
      this.llama.createGrammar({ grammar: toolCallGbnf(tools.map((tool, index) => ({ name: tool.name, gbnf: schemas[index]!.grammar })), syntax), stopGenerationTriggers: [GRAMMAR_END] }).catch(refused),
    );
    const readers = tools.map((tool, index) => ({ name: tool.name, parse: (json: string) => schemas[index]!.parse(json) }));
    return { grammar, parse: (text) => parseToolCall(text, readers, syntax) };
  }

  private cached<T>(key: string, make: () => Promise<T>): Promise<T> {
    let grammar = this.grammars.get(key) as Promise<T> | undefined;
    if (grammar === undefined) {
      grammar = make();
      // A failure is not kept: the next request tries again.
      grammar.catch(() => this.grammars.delete(key));
      this.grammars.set(key, grammar);
    }
    return grammar;
  }
}

function refused(error: unknown): never {
  throw new ServiceError(ErrorCode.invalidParams, `the schema cannot be turned into a grammar: ${(error as Error).message}`, { cause: error });
}
