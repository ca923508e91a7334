import type { ChatMessage, LlmClient } from '../../protocol/index.js';
import type { StreamRun } from './measure-stream.js';

/*
 * One chat reply through each front door, timed from the client's side the same way: from sending
 * the request to the first text (TTFT), and generated tokens per second between the first and the
 * last text. Both sample with the same seed, so both doors generate the same tokens.
 */

const SAMPLING = { temperature: 0.8, seed: 7 } as const;

/** Over the WebSocket protocol: a `chat` frame on an open connection. */
export async function measureSocketChat(client: LlmClient, messages: ChatMessage[], maxTokens: number): Promise<StreamRun> {
  const started = performance.now();
  let first = 0;
  let last = 0;
  const stream = client.chat({ messages, maxTokens, ...SAMPLING });
  for await (const _piece of stream) {
    last = performance.now();
    if (first === 0) first = last;
  }
  const end = await stream.end;
  return runOf(end.usage.completionTokens, started, first, last);
}

/**
 * Over `POST /v1/chat/completions` with `stream: true`: server-sent events read as they arrive,
 * on a kept-alive HTTP connection (fetch pools them), as a browser or the `openai` package would.
 */
export async function measureSseChat(httpUrl: string, messages: ChatMessage[], maxTokens: number): Promise<StreamRun> {
  const started = performance.now();
  const response = await fetch(`${httpUrl}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ messages, max_tokens: maxTokens, ...SAMPLING, stream: true, stream_options: { include_usage: true } }),
  });
  if (!response.ok || !response.body) throw new Error(`/v1/chat/completions answered ${response.status}: ${await response.text()}`);
  let first = 0;
  let last = 0;
  let tokens = 0;
  let buffered = '';
  const decoder = new TextDecoder();
  const reader = response.body.getReader();
  for (let read = await reader.read(); !read.done; read = await reader.read()) {
    buffered += decoder.decode(read.value, { stream: true });
    let end: number;
    while ((end = buffered.indexOf('\n\n')) >= 0) {
      const event = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      if (!event.startsWith('data: ') || event === 'data: [DONE]') continue;
      const chunk = JSON.parse(event.slice(6)) as { choices: { delta: { content?: string } }[]; usage?: { completion_tokens: number } | null };
      if (chunk.choices[0]?.delta.content) {
        last = performance.now();
        if (first === 0) first = last;
      }
      if (chunk.usage) tokens = chunk.usage.completion_tokens;
    }
  }
  return runOf(tokens, started, first, last);
}

function runOf(tokens: number, started: number, first: number, last: number): StreamRun {
  return { tokens, ttftMs: first - started, tokensPerSecond: tokens > 1 && last > first ? ((tokens - 1) * 1000) / (last - first) : Number.NaN };
}
