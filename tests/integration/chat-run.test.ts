import { Ajv2020 } from 'ajv/dist/2020.js';
import { ChatMLChatWrapper, LlamaText, type ChatModelFunctions, type ChatWrapperSettings, type Llama } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChatParams } from '../../protocol/index.js';
import { callPromptTokens, planChat } from '../../server/chat/chat-plan.js';
import { runChat, type ChatOutcome } from '../../server/chat/chat-run.js';
import { ChatTemplate } from '../../server/chat/chat-template.js';
import { GrammarBook } from '../../server/chat/grammar-book.js';
import type { SamplingParams, TextSink } from '../../server/engine/generate.js';
import type { LoadedModel } from '../../server/pool/loaded-model.js';
import { loadDemoEngine, type DemoEngine } from '../helpers/demo-engine.js';

/*
 * A reply that may call tools (`toolChoice: auto`), on the real engine and the demo model: the text
 * streams until the model writes the template's call prefix, then the call is generated on the same
 * sequence under the tool-call grammar. The demo model never writes ChatML's `||call:` by itself, so
 * the template here is ChatML with a call prefix taken from the model's own greedy reply.
 */

class Collector implements TextSink {
  text = '';
  tokens = 0;
  /** The text's length when each token came (before its text). */
  readonly lengthAtToken: number[] = [];
  write(piece: string): void {
    this.text += piece;
  }
  waitWritable(): undefined {
    return undefined;
  }
  onToken(): void {
    this.tokens++;
    this.lengthAtToken.push(this.text.length);
  }
}

/** ChatML whose tool calls start with `prefix`, documenting its tools in a fixed line. */
function chatMLCallingWith(prefix: string): ChatMLChatWrapper {
  const wrapper = new ChatMLChatWrapper();
  const settings: ChatWrapperSettings = {
    ...ChatMLChatWrapper.defaultSettings,
    functions: { ...ChatMLChatWrapper.defaultSettings.functions, call: { optionalPrefixSpace: false, prefix, paramsPrefix: '(', suffix: ')' } },
  };
  Object.assign(wrapper, { settings });
  // The prompt must not depend on the prefix: the prefix is picked from the reply to this very prompt.
  wrapper.generateAvailableFunctionsSystemText = (functions: ChatModelFunctions) => LlamaText(`Tools: ${Object.keys(functions).join(', ')}`);
  return wrapper;
}

const params: ChatParams = {
  messages: [
    { role: 'system', content: 'You are a helpful assistant.' },
    { role: 'user', content: 'Tell me a short story.' },
  ],
  tools: [{ name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 12 }, unit: { enum: ['c', 'f'] } } } }],
};
const sampling: SamplingParams = { maxTokens: 60, temperature: 0, stop: [] };

describe('runChat with toolChoice auto (demo model)', () => {
  let engine: DemoEngine;
  let llama: Llama;
  let model: LoadedModel;

  beforeAll(async () => {
    engine = await loadDemoEngine({ sequences: 1, prefillChunkTokens: 64 });
    model = engine.model;
    llama = model.model.llama;
  }, 120_000);

  afterAll(async () => {
    await engine?.close();
  });

  /** Plans `params` with `template`, then runs it on a leased sequence. */
  async function run(template: ChatTemplate, request: ChatParams, maxTokens = sampling.maxTokens): Promise<{ outcome: ChatOutcome; text: string; sink: Collector }> {
    const plan = await planChat(request, template, new GrammarBook(llama));
    const promptTokens = plan.prompt.tokenize(model.model.tokenizer);
    const signal = new AbortController().signal;
    const lease = await model.acquire({ promptTokens, owner: 'test', signal });
    const sink = new Collector();
    try {
      const tools = plan.tools && {
        plan: plan.tools,
        contextSize: model.contextSize,
        continueTokens: (tokens: readonly number[], reply: string) => callPromptTokens(model.model.tokenizer, tokens, reply, plan.tools!.prefix),
      };
      const outcome = await runChat(lease.generate, promptTokens, { ...sampling, maxTokens, stop: plan.stops }, sink, signal, tools);
      await outcome.settled;
      return { outcome, text: sink.text, sink };
    } finally {
      lease.release();
    }
  }

  it('streams the text before the call prefix, then generates a valid call; or ends with length when no room is left', async () => {
    // What the model says to this prompt when it makes no call.
    const free = await run(new ChatTemplate(chatMLCallingWith('\u0001never\u0001')), params);
    expect(free.outcome.reason).not.toBe('tool_calls');
    const greedy = free.text;
    // A prefix the model will write a few characters into its reply.
    let at = 4;
    while (greedy.indexOf(greedy.slice(at, at + 4)) !== at) at++;
    const prefix = greedy.slice(at, at + 4);
    expect(prefix.length).toBe(4);
    const template = new ChatTemplate(chatMLCallingWith(prefix));

    const calling = await run(template, params);
    expect(calling.outcome.reason).toBe('tool_calls');
    expect(calling.text).toBe(greedy.slice(0, at));
    expect(calling.outcome.toolCalls).toHaveLength(1);
    const [call] = calling.outcome.toolCalls;
    expect(call!.name).toBe('get_weather');
    expect(new Ajv2020({ strict: false }).validate(params.tools![0]!.parameters!, JSON.parse(call!.arguments))).toBe(true);
    // Both phases' tokens count, each told to the sink once.
    expect(calling.outcome.completionTokens).toBe(calling.sink.tokens);

    // The tokens it takes the model to write the prefix: with exactly as many, no room is left for the call.
    const untilPrefix = free.sink.lengthAtToken.findIndex((length) => length >= at + prefix.length);
    const textTokens = untilPrefix < 0 ? free.sink.tokens : untilPrefix;
    const cut = await run(template, params, textTokens);
    expect(cut.outcome.reason).toBe('length');
    expect(cut.outcome.toolCalls).toEqual([]);
    expect(cut.text).toBe(greedy.slice(0, at));
    expect(cut.outcome.completionTokens).toBe(textTokens);
  });
});
