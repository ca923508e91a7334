import type { CallSyntax } from './chat-template.js';

/**
 * What ends a constrained reply: node-llama-cpp's JSON-schema grammars end with four newlines, a
 * sequence JSON they allow never holds, and so does the tool-call grammar; it is a stop sequence.
 */
export const GRAMMAR_END = '\n\n\n\n';
/** How node-llama-cpp ends the root rule of a JSON-schema grammar (GBNF source text). */
const SCHEMA_ROOT_END = ' "\\n\\n\\n\\n" [\\n]*';

/** A tool whose arguments grammar (node-llama-cpp's GBNF for its parameters schema) is known. */
export interface GrammarTool {
  name: string;
  /** GBNF of the parameters, as `llama.createGrammarForJsonSchema(...).grammar` writes it. */
  gbnf: string;
}

/**
 * The GBNF of one tool call in the template's syntax, after its prefix: an optional space, one of
 * the tools' names, the params prefix, that tool's arguments, then GRAMMAR_END. Each tool's rules are
 * renamed apart (`t0-...`), so several schemas live in one grammar.
 */
export function toolCallGbnf(tools: readonly GrammarTool[], syntax: Pick<CallSyntax, 'optionalPrefixSpace' | 'paramsPrefix'>): string {
  const rules: string[] = [];
  const alternatives = tools.map((tool, index) => {
    const prefix = `t${index}-`;
    rules.push(...renamedRules(tool.gbnf, prefix));
    const paramsPrefix = syntax.paramsPrefix.length > 0 ? ` ${gbnfLiteral(syntax.paramsPrefix)}` : '';
    return `${gbnfLiteral(tool.name)}${paramsPrefix} ${prefix}root`;
  });
  const space = syntax.optionalPrefixSpace ? '[ ]? ' : '';
  return [`root ::= ${space}( ${alternatives.join(' | ')} ) ${gbnfLiteral(GRAMMAR_END)}`, ...rules].join('\n');
}

/** The rules of a schema grammar with every rule name prefixed, and the root without its end. */
function renamedRules(gbnf: string, prefix: string): string[] {
  return gbnf.split('\n').filter((line) => line.trim().length > 0).map((line) => {
    const at = line.indexOf('::=');
    if (at < 0) throw new Error(`unexpected GBNF line: ${line.slice(0, 80)}`);
    const name = line.slice(0, at).trim();
    let body = line.slice(at + 3);
    if (name === 'root') {
      if (!body.endsWith(SCHEMA_ROOT_END)) throw new Error('a JSON-schema grammar whose root does not end as node-llama-cpp writes it');
      body = body.slice(0, -SCHEMA_ROOT_END.length);
    }
    return `${prefix}${name} ::=${renameReferences(body, prefix)}`;
  });
}

/** Prefixes every rule reference of a GBNF rule body, leaving literals, classes and repetition counts as they are. */
function renameReferences(body: string, prefix: string): string {
  let out = '';
  let at = 0;
  while (at < body.length) {
    const char = body[at]!;
    if (char === '"' || char === '[') {
      const close = char === '"' ? '"' : ']';
      let end = at + 1;
      while (end < body.length && body[end] !== close) end += body[end] === '\\' ? 2 : 1;
      out += body.slice(at, end + 1);
      at = end + 1;
    } else if (char === '{') {
      const end = body.indexOf('}', at);
      out += body.slice(at, end + 1);
      at = end + 1;
    } else if (/[A-Za-z]/.test(char)) {
      let end = at;
      while (end < body.length && /[A-Za-z0-9_-]/.test(body[end]!)) end++;
      out += prefix + body.slice(at, end);
      at = end;
    } else {
      out += char;
      at++;
    }
  }
  return out;
}

/** A GBNF string literal of `text`. */
export function gbnfLiteral(text: string): string {
  let out = '"';
  for (const char of text) {
    const code = char.codePointAt(0)!;
    if (char === '"' || char === '\\') out += `\\${char}`;
    else if (char === '\n') out += '\\n';
    else if (char === '\r') out += '\\r';
    else if (char === '\t') out += '\\t';
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, '0')}`;
    else out += char;
  }
  return `${out}"`;
}

/** A parsed call: the tool's name and its arguments as compact JSON. */
export interface ParsedToolCall {
  name: string;
  arguments: string;
}

/**
 * Reads a call the tool-call grammar let through (the text after the prefix, without GRAMMAR_END).
 * `parse` validates arguments against the tool's schema and throws when they do not fit. Returns
 * undefined when the text is not a whole call (generation stopped at maxTokens, say).
 */
export function parseToolCall(
  text: string,
  tools: readonly { name: string; parse(json: string): unknown }[],
  syntax: Pick<CallSyntax, 'optionalPrefixSpace' | 'paramsPrefix'>,
): ParsedToolCall | undefined {
  const call = syntax.optionalPrefixSpace && text.startsWith(' ') ? text.slice(1) : text;
  // A name may be the start of another ("get", "get_weather"): the longest first.
  for (const tool of [...tools].sort((a, b) => b.name.length - a.name.length)) {
    if (!call.startsWith(tool.name)) continue;
    let params = call.slice(tool.name.length);
    // A params prefix that is a control token has no text: it may be missing here.
    if (syntax.paramsPrefix.length > 0 && params.startsWith(syntax.paramsPrefix)) params = params.slice(syntax.paramsPrefix.length);
    try {
      return { name: tool.name, arguments: JSON.stringify(tool.parse(params.trim())) };
    } catch {
      continue;
    }
  }
  return undefined;
}
