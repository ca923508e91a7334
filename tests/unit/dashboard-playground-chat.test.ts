import { describe, expect, it, vi } from 'vitest';
import { LlmError, type ChatRequest, type EndFrame } from '../../protocol/index.js';
import { PlaygroundStore, responseFormatOf, type PlaygroundClient, type PlaygroundStream } from '../../dashboard/src/lib/stores/playground.svelte.js';

/*
 * The playground's chat mode: the conversation the store keeps and sends, replies joining it as
 * they end, regenerate, stop, and the JSON schema box. The client is a stand-in that records
 * requests and lets the test feed each stream; the real client and server are covered by the
 * integration tests and the e2e suite.
 */

/** A stream the test feeds by hand. */
class FedStream implements PlaygroundStream {
  private readonly pieces: string[] = [];
  private wake: (() => void) | undefined;
  private done = false;
  private failure: Error | undefined;
  cancelled = false;
  private settle!: { resolve: (frame: EndFrame) => void; reject: (error: Error) => void };
  readonly end = new Promise<EndFrame>((resolve, reject) => (this.settle = { resolve, reject }));
  push(text: string): void {
    this.pieces.push(text);
    this.wake?.();
  }
  finish(reason: EndFrame['reason']): void {
    this.done = true;
    this.settle.resolve({ t: 'end', id: 'r', reason, usage: { promptTokens: 9, completionTokens: 2 }, timings: { queueMs: 1, ttftMs: 5, totalMs: 50 } });
    this.wake?.();
  }
  fail(error: Error): void {
    this.done = true;
    this.failure = error;
    this.end.catch(() => undefined);
    this.settle.reject(error);
    this.wake?.();
  }
  cancel(): void {
    this.cancelled = true;
  }
  async *[Symbol.asyncIterator](): AsyncIterator<string> {
    for (;;) {
      if (this.pieces.length > 0) {
        yield this.pieces.shift()!;
        continue;
      }
      if (this.done) {
        if (this.failure) throw this.failure;
        return;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }
}

function setup() {
  const requests: ChatRequest[] = [];
  const streams: FedStream[] = [];
  const client: PlaygroundClient = {
    hello: { models: [{ name: 'demo', state: 'loaded', default: true }] },
    generate: () => {
      throw new Error('prompt mode is not used here');
    },
    chat: (request) => {
      requests.push(request);
      const stream = new FedStream();
      streams.push(stream);
      return stream;
    },
    close: vi.fn(),
  };
  const store = new PlaygroundStore({ connect: async () => client, schedule: (flush) => queueMicrotask(flush) });
  store.mode = 'chat';
  return { store, requests, streams };
}

const tick = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 0));

/** Lets the store take what the stream was fed. */
async function reply(stream: FedStream, text: string, reason: EndFrame['reason'] = 'stop'): Promise<void> {
  stream.push(text);
  await tick();
  stream.finish(reason);
}

describe('PlaygroundStore chat mode', () => {
  it('sends the system prompt and the conversation, and keeps each reply', async () => {
    const { store, requests, streams } = setup();
    await store.prepare();
    Object.assign(store, { systemPrompt: 'Be brief.', draft: '  Who is Alice?  ', temperature: 0, maxTokens: 40 });
    const first = store.send();
    await tick();
    expect(store.draft).toBe('');
    expect(requests[0]).toEqual({
      messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Who is Alice?' }],
      model: 'demo',
      maxTokens: 40,
      temperature: 0,
    });
    await reply(streams[0]!, 'A girl.');
    await first;
    expect(store.conversation).toEqual([{ role: 'user', content: 'Who is Alice?' }, { role: 'assistant', content: 'A girl.' }]);
    expect(store.end?.reason).toBe('stop');

    store.draft = 'And the Rabbit?';
    const second = store.send();
    await tick();
    expect(requests[1]!.messages.map((message) => message.content)).toEqual(['Be brief.', 'Who is Alice?', 'A girl.', 'And the Rabbit?']);
    await reply(streams[1]!, 'He is late.');
    await second;
    expect(store.conversation).toHaveLength(4);
  });

  it('regenerates the last reply in its place', async () => {
    const { store, requests, streams } = setup();
    Object.assign(store, { systemPrompt: '', draft: 'Hello' });
    const sent = store.send();
    await tick();
    await reply(streams[0]!, 'Hi.');
    await sent;
    const again = store.regenerate();
    await tick();
    // No system message when the box is empty; the old reply is not sent.
    expect(requests[1]!.messages).toEqual([{ role: 'user', content: 'Hello' }]);
    await reply(streams[1]!, 'Hello there.');
    await again;
    expect(store.conversation).toEqual([{ role: 'user', content: 'Hello' }, { role: 'assistant', content: 'Hello there.' }]);
  });

  it('keeps a reply stopped midway, and leaves the user message to retry after an error', async () => {
    const { store, streams } = setup();
    store.draft = 'Tell a story.';
    const sent = store.send();
    await tick();
    streams[0]!.push('Once upon');
    await tick();
    store.cancel();
    expect(streams[0]!.cancelled).toBe(true);
    streams[0]!.finish('cancelled');
    await sent;
    expect(store.conversation.at(-1)).toEqual({ role: 'assistant', content: 'Once upon' });

    store.draft = 'More.';
    const failed = store.send();
    await tick();
    streams[1]!.fail(new LlmError({ code: 'overloaded', message: 'busy' }));
    await failed;
    expect(store.error).toMatch(/overloaded: busy/);
    expect(store.conversation.at(-1)).toEqual({ role: 'user', content: 'More.' });

    store.clearConversation();
    expect(store.conversation).toEqual([]);
  });

  it('sends a JSON schema from its box, and refuses one that is not JSON without sending', async () => {
    const { store, requests, streams } = setup();
    Object.assign(store, { schema: '{"type": "object", "properties": {"ok": {"type": "boolean"}}}', draft: 'JSON please' });
    const sent = store.send();
    await tick();
    expect(requests[0]!.responseFormat).toEqual({ type: 'json_schema', schema: { type: 'object', properties: { ok: { type: 'boolean' } } } });
    await reply(streams[0]!, '{"ok": true}');
    await sent;

    store.schema = '{"type": ';
    await store.regenerate();
    expect(requests).toHaveLength(1);
    expect(store.error).toMatch(/not valid JSON/);
    expect(responseFormatOf('[1]')).toEqual({ error: expect.stringMatching(/must be a JSON object/) });
    expect(responseFormatOf('   ')).toBeUndefined();
  });
});
