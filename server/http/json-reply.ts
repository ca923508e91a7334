import type { HttpReply } from '../transport/types.js';

/** A JSON reply with the right content type. */
export function jsonReply(status: number, body: unknown, headers: Record<string, string> = {}): HttpReply {
  return { status, headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) };
}
