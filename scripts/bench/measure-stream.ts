import type { LlmClient } from '../../protocol/index.js';

/** One streamed generation as a client sees it. */
export interface StreamRun {
  tokens: number;
  /** From sending the request to the first text. */
  ttftMs: number;
  /** Generated tokens per second between the first and the last text. */
  tokensPerSecond: number;
}

/** Streams one generation (sampling with a fixed seed) and times it from the client's side. */
export async function measureStream(client: LlmClient, prompt: string, maxTokens: number): Promise<StreamRun> {
  const started = performance.now();
  let first = 0;
  let last = 0;
  const stream = client.generate({ prompt, maxTokens, temperature: 0.8, seed: 7 });
  for await (const _piece of stream) {
    last = performance.now();
    if (first === 0) first = last;
  }
  const end = await stream.end;
  const tokens = end.usage.completionTokens;
  return { tokens, ttftMs: first - started, tokensPerSecond: ((tokens - 1) * 1000) / (last - first) };
}
