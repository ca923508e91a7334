import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GenerationOutcome, SamplingParams, TextSink } from '../../server/engine/generate.js';
import type { LoadedModel, SlotLease } from '../../server/pool/loaded-model.js';
import { loadDemoEngine, type DemoEngine } from '../helpers/demo-engine.js';

const CHUNK = 16;

/** A sink that records text and when each token arrived, relative to other events. */
class Recorder implements TextSink {
  text = '';
  tokens = 0;
  paused: Promise<void> | undefined;
  constructor(private readonly timeline: string[], private readonly label: string) {}
  write(piece: string): void {
    this.text += piece;
  }
  waitWritable(): Promise<void> | undefined {
    return this.paused;
  }
  onToken(): void {
    this.tokens++;
    this.timeline.push(this.label);
  }
}

const params = (overrides: Partial<SamplingParams> = {}): SamplingParams => ({ maxTokens: 40, temperature: 0, stop: [], ...overrides });

/** A prompt of about `words` demo-vocabulary words (several tokens each). */
const longPrompt = (words: number, salt = ''): string => Array.from({ length: words }, (_, i) => `${salt}word${i % 97} river stone`).join(' ');

describe('engine: chunked prefill, batching across slots, prefix-aware slot choice (demo model)', () => {
  let engine: DemoEngine;
  let model: LoadedModel;

  beforeAll(async () => {
    engine = await loadDemoEngine({ sequences: 3, prefillChunkTokens: CHUNK });
    model = engine.model;
  }, 120_000);

  afterAll(async () => {
    await engine?.close();
  });

  const tokenize = (prompt: string): Promise<number[]> => model.tokenizePrompt(prompt, { reserve: 64, owner: 'test', signal: new AbortController().signal });

  async function run(prompt: string, sink: TextSink, signal = new AbortController().signal, sampling = params()): Promise<{ outcome: GenerationOutcome; lease: SlotLease; tokens: number[] }> {
    const tokens = await tokenize(prompt);
    const lease = await model.acquire({ owner: 'test', signal, promptTokens: tokens });
    const outcome = await lease.generate(tokens, sampling, sink, signal);
    void outcome.settled.then(() => lease.release());
    return { outcome, lease, tokens };
  }

  it('keeps a running stream decoding between the chunks of another request\'s long prompt', async () => {
    const timeline: string[] = [];
    const runner = new Recorder(timeline, 'runner');
    const runnerDone = run('the river', runner, undefined, params({ maxTokens: 400, temperature: 0.8, seed: 3 }));
    while (runner.tokens < 3) await new Promise((resolve) => setTimeout(resolve, 5));

    const prompt = await tokenize(longPrompt(150));
    const chunks = Math.ceil(prompt.length / CHUNK) - 1;
    expect(chunks).toBeGreaterThan(20);
    const late = new Recorder(timeline, 'late');
    timeline.push('late-start');
    const lateDone = run(longPrompt(150), late, undefined, params({ maxTokens: 5 }));
    await lateDone;
    await runnerDone;

    const start = timeline.indexOf('late-start');
    const firstLate = timeline.indexOf('late');
    const runnerDuringPrefill = timeline.slice(start, firstLate).filter((label) => label === 'runner').length;
    // One runner step joins each prompt chunk's batch; allow for steps that land beside two chunks.
    expect(runnerDuringPrefill).toBeGreaterThanOrEqual(Math.floor(chunks / 2));
    expect(late.tokens).toBe(5);
  }, 120_000);

  it('frees a sequence at the next chunk boundary when its request is cancelled during the prompt', async () => {
    const timeline: string[] = [];
    const runner = new Recorder(timeline, 'runner');
    const controller = new AbortController();
    const runnerDone = run('stone', runner, controller.signal, params({ maxTokens: 2000, temperature: 0.8, seed: 5 }));
    while (runner.tokens < 2) await new Promise((resolve) => setTimeout(resolve, 5));

    const tokens = await tokenize(longPrompt(200, 'x'));
    const cancel = new AbortController();
    const lease = await model.acquire({ owner: 'test', signal: cancel.signal, promptTokens: tokens });
    const pending = lease.generate(tokens, params(), new Recorder(timeline, 'cancelled'), cancel.signal);
    // Cancel a few batches in: the runner's steps share batches with the prompt's chunks.
    const base = runner.tokens;
    while (runner.tokens < base + 4) await new Promise((resolve) => setImmediate(resolve));
    cancel.abort();
    const outcome = await pending;
    await outcome.settled;
    lease.release();
    expect(outcome.reason).toBe('aborted');
    expect(outcome.completionTokens).toBe(0);

    // The sequence holds the chunks evaluated before the cancel, never the whole prompt.
    const reuse = await model.acquire({ owner: 'test', signal: new AbortController().signal, promptTokens: tokens });
    const held = await reuse.generate(tokens, params({ maxTokens: 1 }), new Recorder(timeline, 'probe'), new AbortController().signal);
    await held.settled;
    reuse.release();
    expect(held.reusedPromptTokens).toBeGreaterThanOrEqual(CHUNK);
    expect(held.reusedPromptTokens).toBeLessThan(tokens.length / 2);
    controller.abort();
    await (await runnerDone).outcome.settled;
  }, 120_000);

  it('gives a conversation\'s next turn the sequence that already holds its beginning', async () => {
    const first = longPrompt(40, 'conv');
    const a = await run(first, new Recorder([], 'a'));
    await a.outcome.settled;
    // Other prompts pass through the other sequences (least recently used first).
    for (const salt of ['o1', 'o2']) {
      const other = await run(longPrompt(30, salt), new Recorder([], salt));
      await other.outcome.settled;
    }
    const nextTurn = await run(`${first} and then the next question`, new Recorder([], 'next'));
    await nextTurn.outcome.settled;
    expect(nextTurn.outcome.reusedPromptTokens).toBeGreaterThanOrEqual(a.tokens.length - 1);
  }, 120_000);
});
