import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ChatMLChatWrapper, getLlama, JinjaTemplateChatWrapper, LlamaChatSession, LlamaCompletion, readGgufFileInfo, resolveChatWrapper,
  type ChatHistoryItem, type Llama, type LlamaModel,
} from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHATML_TEMPLATE, IM_END, IM_START, parseChatCorpus, renderChatML, type ChatMessage } from '../../server/model-maker/demo/chatml.js';
import { readChatCorpus } from '../../server/model-maker/demo/corpus.js';
import {
  DEMO_MODEL_FILE, DEMO_MODEL_NAME, demoModelVersion, ensureDemoModel, isCurrentDemoModel, writeDemoModel,
} from '../../server/model-maker/demo/demo-model.js';
import { SpmTokenizer } from '../../server/model-maker/demo/spm-tokenizer.js';
import { TOKEN_TYPE, type SpmVocab } from '../../server/model-maker/demo/spm-vocab.js';
import { readGgufHeadStrings } from '../../server/model-maker/gguf/gguf-strings.js';
import { writeGgufFile } from '../../server/model-maker/gguf/gguf-writer.js';

let dir: string;
let demoPath: string;
let llama: Llama;
let model: LlamaModel;
let vocab: SpmVocab;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'model-maker-chatml-'));
  demoPath = join(dir, DEMO_MODEL_FILE);
  await writeDemoModel(demoPath, { seed: 1 });
  llama = await getLlama({ gpu: false });
  model = await llama.loadModel({ modelPath: demoPath });
  const info = await readGgufFileInfo(demoPath);
  const tokenizer = info.metadata.tokenizer.ggml as unknown as { tokens: string[]; scores: number[]; token_type: number[] };
  vocab = { tokens: tokenizer.tokens, scores: tokenizer.scores, types: tokenizer.token_type, unkId: 0, bosId: 1, eosId: 2 };
});

afterAll(async () => {
  await model?.dispose();
  await llama?.dispose();
  await rm(dir, { recursive: true, force: true });
});

function toHistory(messages: readonly ChatMessage[]): ChatHistoryItem[] {
  return messages.map((message): ChatHistoryItem =>
    message.role === 'assistant' ? { type: 'model', response: [message.content] } : { type: message.role, text: message.content },
  );
}

describe('the demo model as a ChatML model', () => {
  it('carries the ChatML template, and its markers as control tokens with <|im_end|> ending a turn', async () => {
    const info = await readGgufFileInfo(demoPath);
    expect(info.metadata.tokenizer.chat_template).toBe(CHATML_TEMPLATE);
    const start = vocab.tokens.indexOf(IM_START);
    const end = vocab.tokens.indexOf(IM_END);
    expect([vocab.types[start], vocab.types[end]]).toEqual([TOKEN_TYPE.control, TOKEN_TYPE.control]);
    expect(info.metadata.tokenizer.ggml.eot_token_id).toBe(end);
    expect(model.tokens.eot).toBe(end);
    expect(model.isEogToken(end as never)).toBe(true);
    // Named in a prompt with special tokens on, each marker is one token; as plain text it is not.
    // (llama.cpp gives the text after a marker its leading space, as at the start of a prompt.)
    expect([...model.tokenize(`${IM_START}user\nHi${IM_END}`, true)]).toEqual([start, ...model.tokenize('user\nHi', false), end]);
    expect(model.tokenize(IM_END, false)).not.toContain(end);
  });

  it('gets the ChatML chat wrapper from node-llama-cpp, and its template renders what that wrapper renders', async () => {
    expect(resolveChatWrapper(model)).toBeInstanceOf(ChatMLChatWrapper);
    const jinja = new JinjaTemplateChatWrapper({ template: CHATML_TEMPLATE, tokenizer: model.tokenizer });
    const chatml = new ChatMLChatWrapper();
    const [conversation] = parseChatCorpus(await readChatCorpus());
    const chatHistory = [...toHistory(conversation!), { type: 'user', text: 'And then?' }, { type: 'model', response: [] }] satisfies ChatHistoryItem[];
    const rendered = (wrapper: ChatMLChatWrapper | JinjaTemplateChatWrapper) =>
      wrapper.generateContextState({ chatHistory }).contextText.tokenize(model.tokenizer);
    // The template, like ChatML's own, names no BOS: the wrapper adds the one the tokenizer asks for.
    expect(rendered(chatml)).toEqual([model.tokens.bos, ...rendered(jinja)]);
  });

  it('learned its replies with exactly the tokens a rendered chat gets', async () => {
    const tokenizer = new SpmTokenizer(vocab);
    const specials = new Map([[IM_START, vocab.tokens.indexOf(IM_START)], [IM_END, vocab.tokens.indexOf(IM_END)]]);
    const conversations = parseChatCorpus(await readChatCorpus());
    const multiTurn = conversations.filter((messages) => messages.length > 3);
    expect(multiTurn.length).toBeGreaterThan(2);
    for (const messages of [...conversations.slice(0, 4), ...multiTurn]) {
      const ours = [vocab.bosId, ...tokenizer.tokenizeWithSpecials(renderChatML(messages), specials)];
      const { contextText } = new ChatMLChatWrapper().generateContextState({ chatHistory: [...toHistory(messages), { type: 'user', text: 'x' }] });
      const theirs = contextText.tokenize(model.tokenizer);
      // The wrapper renders the next user turn too; the conversation itself must match token for token.
      expect(theirs.slice(0, ours.length)).toEqual(ours);
    }
  });

  it('ends a chat reply by itself at <|im_end|> for most seeds', async () => {
    const outcomes: { stopReason: string; text: string }[] = [];
    const context = await model.createContext({ contextSize: 1024, threads: 1 });
    try {
      const sequence = context.getSequence();
      for (let seed = 1; seed <= 10; seed++) {
        await sequence.clearHistory();
        const session = new LlamaChatSession({ contextSequence: sequence, systemPrompt: 'You are a helpful assistant.' });
        const { responseText, stopReason } = await session.promptWithMeta(seed % 2 === 0 ? 'Who is Alice?' : 'Tell me a short story.', {
          maxTokens: 256, temperature: 0.8, seed,
        });
        session.dispose({ disposeSequence: false });
        outcomes.push({ stopReason, text: responseText });
      }
    } finally {
      await context.dispose();
    }
    const ended = outcomes.filter((outcome) => outcome.stopReason === 'eogToken');
    expect(ended.length).toBeGreaterThanOrEqual(8);
    for (const { text } of outcomes) {
      expect(text.trim().length).toBeGreaterThan(0);
      expect(text).not.toContain('<|im_');
      expect(text).not.toContain('\uFFFD');
    }
  });

  it('still never ends a plain completion by itself', async () => {
    const context = await model.createContext({ contextSize: 1024, threads: 1 });
    try {
      const sequence = context.getSequence();
      for (const seed of [1, 2, 3]) {
        await sequence.clearHistory();
        const { metadata } = await new LlamaCompletion({ contextSequence: sequence }).generateCompletionWithMeta('Alice was', {
          maxTokens: 200, temperature: 1, seed,
        });
        expect(metadata.stopReason).toBe('maxTokens');
      }
    } finally {
      await context.dispose();
    }
  });
});

describe('ensureDemoModel and older demo models', () => {
  it('rewrites a demo.gguf of another version, and leaves a current one or a foreign one alone', async () => {
    const version = await demoModelVersion();
    expect(version).toMatch(/^\d+\.[0-9a-f]{12}$/);
    // No version (before versions), an old revision, another corpus digest.
    for (const [index, old] of [undefined, '2', `${version.split('.')[0]}.000000000000`].entries()) {
      const outdated = join(dir, `outdated-${index}`);
      await mkdir(outdated);
      await writeGgufFile(join(outdated, DEMO_MODEL_FILE), {
        'general.name': { type: 'string', value: DEMO_MODEL_NAME },
        ...(old !== undefined && { 'general.version': { type: 'string', value: old } as const }),
      }, [{ name: 'x', dims: [4], type: 'f32', values: () => [new Float32Array(4)] }]);
      await expect(isCurrentDemoModel(join(outdated, DEMO_MODEL_FILE))).resolves.toBe(false);
      await expect(ensureDemoModel(outdated)).resolves.toEqual({ path: join(outdated, DEMO_MODEL_FILE), created: true });
      await expect(isCurrentDemoModel(join(outdated, DEMO_MODEL_FILE))).resolves.toBe(true);
      const rewritten = await readGgufHeadStrings(join(outdated, DEMO_MODEL_FILE), ['general.name', 'general.version']);
      expect(rewritten).toEqual({ 'general.name': DEMO_MODEL_NAME, 'general.version': version });
      await expect(ensureDemoModel(outdated)).resolves.toEqual({ path: join(outdated, DEMO_MODEL_FILE), created: false });
    }

    const foreign = join(dir, 'foreign');
    await mkdir(foreign);
    await writeFile(join(foreign, DEMO_MODEL_FILE), 'an operator model that happens to be called demo');
    await expect(ensureDemoModel(foreign)).resolves.toEqual({ path: join(foreign, DEMO_MODEL_FILE), created: false });
    expect(await readFile(join(foreign, DEMO_MODEL_FILE), 'utf8')).toBe('an operator model that happens to be called demo');
    await expect(isCurrentDemoModel(join(foreign, DEMO_MODEL_FILE))).resolves.toBe(false);
    await expect(isCurrentDemoModel(join(foreign, 'missing.gguf'))).resolves.toBe(false);

    // Without a corpus to make it again from, an older demo model stays.
    const noCorpus = join(dir, 'no-corpus');
    await mkdir(noCorpus);
    await writeGgufFile(join(noCorpus, DEMO_MODEL_FILE), { 'general.name': { type: 'string', value: DEMO_MODEL_NAME } }, [
      { name: 'x', dims: [4], type: 'f32', values: () => [new Float32Array(4)] },
    ]);
    for (const corpusDir of [join(dir, 'nowhere'), noCorpus]) {
      await expect(ensureDemoModel(noCorpus, { corpusDir })).resolves.toEqual({ path: join(noCorpus, DEMO_MODEL_FILE), created: false });
    }
  });
});
