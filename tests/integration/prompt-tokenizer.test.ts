import fc from 'fast-check';
import { getLlama, type LlamaModel } from 'node-llama-cpp';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ServiceError } from '../../server/errors.js';
import { PromptTokenizer, type TokenizerModel } from '../../server/tokenize/prompt-tokenizer.js';
import { maxTokenBytes, minTokenCount } from '../../server/tokenize/vocab-bound.js';
import { SHARED_MODELS_DIR, connectClient, startTestService } from '../helpers/service.js';
import { ensureDemoModel } from '../../server/model-maker/demo/demo-model.js';
import type { Service } from '../../server/app.js';
import { waitFor } from '../helpers/wait.js';

/*
 * Long prompts are tokenized in a worker thread, with the demo model's real vocabulary: the tokens
 * must be exactly those of the engine's own tokenizer, the queue fair between owners, bounded and
 * abortable, and the worker must come and go with the work.
 */

const TEXTS = {
  ascii: 'Alice was beginning to get very tired of sitting by her sister on the bank. '.repeat(60),
  emoji: '😀🎉 naïve café 👩‍👩‍👧 '.repeat(200),
  cjk: '我能吞下玻璃而不伤身体。日本語のテキスト。한국어 '.repeat(150),
  controls: '\u0000\u0001\t\r\n\u007f\u200b\ufeff end '.repeat(300),
};

let model: LlamaModel;
let target: TokenizerModel;
const tokenizers: PromptTokenizer[] = [];

function tokenizer(options: Partial<ConstructorParameters<typeof PromptTokenizer>[0]> = {}): PromptTokenizer {
  const created = new PromptTokenizer({ inlineMaxChars: 16, maxQueue: 16, maxQueuedPerOwner: 8, queueTimeoutMs: 30_000, idleMs: 60_000, ...options });
  tokenizers.push(created);
  return created;
}

const live = (): AbortSignal => new AbortController().signal;

beforeAll(async () => {
  const { path } = await ensureDemoModel(SHARED_MODELS_DIR);
  const llama = await getLlama({ gpu: false, build: 'never' });
  model = await llama.loadModel({ modelPath: path });
  target = { path, fingerprint: 'test', tokenizeInline: (text) => model.tokenize(text) };
});

afterEach(async () => {
  await Promise.all(tokenizers.splice(0).map((created) => created.close()));
});

afterAll(async () => {
  await model.dispose();
});

describe('PromptTokenizer', () => {
  it.each(Object.entries(TEXTS))('gives the engine\'s own tokens for %s text from the worker', async (_name, text) => {
    const worker = tokenizer();
    const tokens = await worker.tokenize(target, text, 'a', live());
    expect(worker.workerRunning).toBe(true);
    expect(tokens).toEqual(Array.from(model.tokenize(text)));
  });

  it('tokenizes short prompts inline, without starting the worker', async () => {
    const inline = tokenizer({ inlineMaxChars: 1000 });
    expect(await inline.tokenize(target, 'Alice', 'a', live())).toEqual(Array.from(model.tokenize('Alice')));
    expect(inline.workerRunning).toBe(false);
  });

  it('serves owners in turn: one owner\'s pile of long prompts does not hold back another\'s', async () => {
    const fair = tokenizer();
    const order: string[] = [];
    const job = (owner: string, index: number): Promise<void> =>
      fair.tokenize(target, TEXTS.cjk, owner, live()).then(() => void order.push(`${owner}${index}`));
    const flood = [0, 1, 2, 3, 4].map((index) => job('a', index));
    const single = job('b', 0);
    await Promise.all([...flood, single]);
    // a0 was running when b0 arrived; b0 comes right after it, ahead of a's other four.
    expect(order.indexOf('b0')).toBeLessThanOrEqual(2);
    // One owner's prompts are served in the order they came.
    expect(order.filter((entry) => entry.startsWith('a'))).toEqual(['a0', 'a1', 'a2', 'a3', 'a4']);
  });

  it('refuses past its queue with overloaded and drops an aborted waiter', async () => {
    const small = tokenizer({ maxQueue: 1 });
    const running = small.tokenize(target, TEXTS.cjk, 'a', live());
    const controller = new AbortController();
    const waiting = small.tokenize(target, TEXTS.cjk, 'b', controller.signal);
    await expect(small.tokenize(target, TEXTS.cjk, 'c', live())).rejects.toMatchObject({ code: 'overloaded' });
    controller.abort(new Error('client left'));
    await expect(waiting).rejects.toThrow('client left');
    expect(small.queued).toBe(0);
    expect(await running).toEqual(Array.from(model.tokenize(TEXTS.cjk)));
  });

  it('stops the worker when idle and starts a fresh one for the next long prompt', async () => {
    const idle = tokenizer({ idleMs: 50 });
    await idle.tokenize(target, TEXTS.ascii, 'a', live());
    expect(idle.workerRunning).toBe(true);
    await waitFor(() => !idle.workerRunning, 10_000, 'the idle worker to stop');
    expect(await idle.tokenize(target, TEXTS.ascii, 'a', live())).toEqual(Array.from(model.tokenize(TEXTS.ascii)));
  });

  it('fails a job whose model file cannot be read with internal, and recovers', async () => {
    const worker = tokenizer();
    const missing = { ...target, path: '/nonexistent/model.gguf' };
    const failure = await worker.tokenize(missing, TEXTS.ascii, 'a', live()).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ServiceError);
    expect(failure).toMatchObject({ code: 'internal' });
    expect(await worker.tokenize(target, TEXTS.ascii, 'a', live())).toHaveLength(model.tokenize(TEXTS.ascii).length);
  });

  it('refuses long prompts with shutting_down once closed', async () => {
    const closing = tokenizer();
    await closing.close();
    await expect(closing.tokenize(target, TEXTS.ascii, 'a', live())).rejects.toMatchObject({ code: 'shutting_down' });
  });
});

describe('the length bound', () => {
  it('never exceeds the real token count, whatever the text', () => {
    const pieces = model.fileInfo.metadata.tokenizer?.ggml?.tokens as string[];
    const bytesPerToken = maxTokenBytes(pieces);
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 400 }), (text) => minTokenCount(text, bytesPerToken) <= model.tokenize(text).length),
      { numRuns: 300 },
    );
  });
});

describe('through the server', () => {
  let service: Service;

  beforeAll(async () => {
    service = await startTestService();
  });

  afterAll(async () => {
    await service.shutdown(1000);
  });

  it('refuses a prompt that cannot fit from its length alone, naming the bound', async () => {
    const client = await connectClient(service);
    const stream = client.generate({ prompt: 'x'.repeat(120_000), maxTokens: 8 });
    await expect(stream.end).rejects.toMatchObject({ code: 'prompt_too_long', details: { promptTokensAtLeast: expect.any(Number) as number } });
    client.close();
  });

  it('generates from a long prompt tokenized in the worker, counting the prompt tokens the engine counts', async () => {
    const client = await connectClient(service);
    const long = 'The rabbit ran. '.repeat(200);
    const { end } = await client.generate({ prompt: long, maxTokens: 8, temperature: 0 }).text();
    const bos = model.tokens.bos !== null && model.tokens.shouldPrependBosToken ? 1 : 0;
    expect(end.usage.promptTokens).toBe(model.tokenize(long).length + bos);
    client.close();
  });
});
