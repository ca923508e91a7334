import { describe, expect, it } from 'vitest';
import { GRAMMAR_END, gbnfLiteral, parseToolCall, toolCallGbnf } from '../../server/chat/tool-call-grammar.js';

/*
 * Several tools' argument grammars (as node-llama-cpp writes them for a JSON schema) are joined
 * into one call grammar with their rules renamed apart; what such a grammar produced is read back
 * into a call, with the longest tool name that fits.
 */

const PARAMS_A = [
  'root ::= "{" whitespace-b-1-4-rule "\\"city\\"" ":" [ ]? string-0-10-rule whitespace-b-0-4-rule "}" "\\n\\n\\n\\n" [\\n]*',
  'string-char-rule ::= [^"\\\\\\x7F\\x00-\\x1F] | "\\\\" ["\\\\/bfnrt] | "\\\\u" [0-9a-fA-F]{4}',
  'string-0-10-rule ::= "\\"" ( string-char-rule ){0,10} "\\""',
  'whitespace-b-1-4-rule ::= [\\n] ("    " | "\\t") | [ ]?',
  'whitespace-b-0-4-rule ::= [\\n] | [ ]?',
].join('\n');
const PARAMS_B = ['root ::= "{" "\\"n\\"" ":" [ ]? rule0 "}" "\\n\\n\\n\\n" [\\n]*', 'rule0 ::= ( "1" | "2" )'].join('\n');

describe('toolCallGbnf', () => {
  it('joins the tools with their rules renamed apart', () => {
    const gbnf = toolCallGbnf([{ name: 'get_weather', gbnf: PARAMS_A }, { name: 'count', gbnf: PARAMS_B }], { optionalPrefixSpace: true, paramsPrefix: '(' });
    const lines = gbnf.split('\n');
    expect(lines[0]).toBe('root ::= [ ]? ( "get_weather" "(" t0-root | "count" "(" t1-root ) "\\n\\n\\n\\n"');
    // The tools' own end is gone; references, but not literals, classes or counts, are renamed.
    expect(lines).toContain('t0-root ::= "{" t0-whitespace-b-1-4-rule "\\"city\\"" ":" [ ]? t0-string-0-10-rule t0-whitespace-b-0-4-rule "}"');
    expect(lines).toContain('t0-string-0-10-rule ::= "\\"" ( t0-string-char-rule ){0,10} "\\""');
    expect(lines).toContain('t1-rule0 ::= ( "1" | "2" )');
    expect(gbnf).not.toMatch(/(^|\s)rule0/);
  });

  it('leaves out an empty params prefix and the optional space', () => {
    expect(toolCallGbnf([{ name: 'f', gbnf: PARAMS_B }], { optionalPrefixSpace: false, paramsPrefix: '' }).split('\n')[0]).toBe('root ::= ( "f" t0-root ) "\\n\\n\\n\\n"');
  });

  it('refuses a grammar that does not end as node-llama-cpp writes JSON-schema grammars', () => {
    expect(() => toolCallGbnf([{ name: 'f', gbnf: 'root ::= "x"' }], { optionalPrefixSpace: false, paramsPrefix: '' })).toThrow(/root/);
  });

  it('escapes literals the GBNF way', () => {
    expect(gbnfLiteral('a"b\\c\nd\te\u0001')).toBe('"a\\"b\\\\c\\nd\\te\\x01"');
    expect(GRAMMAR_END).toBe('\n\n\n\n');
  });
});

describe('parseToolCall', () => {
  const tools = [
    { name: 'get', parse: (json: string) => JSON.parse(json) as unknown },
    { name: 'get_weather', parse: (json: string) => JSON.parse(json) as unknown },
  ];
  const syntax = { optionalPrefixSpace: true, paramsPrefix: '(' };

  it('reads the longest name that fits, and the arguments as compact JSON', () => {
    expect(parseToolCall(' get_weather({"city": "Paris"}', tools, syntax)).toEqual({ name: 'get_weather', arguments: '{"city":"Paris"}' });
    expect(parseToolCall('get({}', tools, { optionalPrefixSpace: false, paramsPrefix: '(' })).toEqual({ name: 'get', arguments: '{}' });
  });

  it('returns undefined for a call cut short or arguments that do not validate', () => {
    expect(parseToolCall('get_weather({"city": "Par', tools, syntax)).toBeUndefined();
    const strict = [{ name: 'f', parse: () => { throw new Error('does not match the schema'); } }];
    expect(parseToolCall('f({}', strict, syntax)).toBeUndefined();
    expect(parseToolCall('unknown({}', tools, syntax)).toBeUndefined();
  });

  it('reads a call whose params prefix was a control token without text', () => {
    expect(parseToolCall('get_weather{"city": "Oslo"}', tools, { optionalPrefixSpace: false, paramsPrefix: '<|sep|>' })).toEqual({ name: 'get_weather', arguments: '{"city":"Oslo"}' });
  });
});
