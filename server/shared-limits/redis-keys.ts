/** Every Redis key the service writes starts with this, so one Redis can hold other data too. */
export const KEY_PREFIX = 'llm-stream';

/** The Redis keys of one API key's shared state. */
export interface KeySpace {
  /** Hash `{l: level, t: ms}` of the request bucket. */
  readonly requests: string;
  /** Hash `{l: level, t: ms}` of the generated-token bucket. */
  readonly tokens: string;
  /** Hash replica id → `count:expiresAtMs` of open connections. */
  readonly connections: string;
  /** Hash replica id → `count:expiresAtMs` of streams in flight. */
  readonly streams: string;
}

/**
 * The keys of an API key by its name (names are safe to store; the key itself never is). All four
 * share one hash tag, so a script touching them stays in one slot of a Redis Cluster too.
 */
export function keySpace(name: string): KeySpace {
  const base = `${KEY_PREFIX}:{${encodeURIComponent(name)}}`;
  return { requests: `${base}:requests`, tokens: `${base}:tokens`, connections: `${base}:connections`, streams: `${base}:streams` };
}
