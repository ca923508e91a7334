import { LRUCache } from 'lru-cache';
import type { Usage } from '../../protocol/index.js';
import type { SamplingParams } from '../engine/generate.js';

/** A finished generation that can be replayed for an identical request. */
export interface CachedResponse {
  text: string;
  reason: 'stop' | 'length';
  usage: Usage;
}

export interface ResponseCacheOptions {
  /** Most responses kept; 0 turns the cache off. */
  maxEntries: number;
  /** Most characters of text kept across all responses (counted as 2 bytes each). */
  maxBytes: number;
}

/** Bytes counted for an entry besides its text (key, usage, bookkeeping). */
const ENTRY_OVERHEAD_BYTES = 256;

/**
 * Responses of deterministic requests — greedy decoding, or sampling with an explicit seed — by
 * model file version, prompt and parameters. An identical request is answered from here at once,
 * without a slot; the least recently used responses go first when full.
 */
export class ResponseCache {
  private readonly entries: LRUCache<string, CachedResponse> | undefined;
  hits = 0;
  misses = 0;

  constructor(options: ResponseCacheOptions) {
    this.entries =
      options.maxEntries > 0
        ? new LRUCache<string, CachedResponse>({
            max: options.maxEntries,
            maxSize: options.maxBytes,
            sizeCalculation: (response, key) => response.text.length * 2 + key.length * 2 + ENTRY_OVERHEAD_BYTES,
          })
        : undefined;
  }

  /**
   * The cache key, or undefined when the request is not deterministic (or the cache is off). A
   * grammar is not read: `prompt` must name what constrains the reply (a chat's response format).
   */
  keyFor(fingerprint: string, prompt: string, params: SamplingParams): string | undefined {
    if (!this.entries || (params.temperature > 0 && params.seed === undefined)) return undefined;
    const { maxTokens, temperature, topK, topP, minP, seed, stop, penalties } = params;
    return JSON.stringify([fingerprint, prompt, maxTokens, temperature, topK, topP, minP, seed, stop, penalties ?? null]);
  }

  get(key: string): CachedResponse | undefined {
    const response = this.entries?.get(key);
    if (response) this.hits++;
    else this.misses++;
    return response;
  }

  set(key: string, response: CachedResponse): void {
    this.entries?.set(key, response);
  }

  get size(): number {
    return this.entries?.size ?? 0;
  }
}
