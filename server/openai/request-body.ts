import { ApiError } from './api-error.js';

/** Deepest nesting of arrays and objects a body may have: far beyond any real request or schema. */
const MAX_DEPTH = 80;

/** A JSON object's fields before validation. */
export type JsonFields = Record<string, unknown>;

/** The body as a JSON object, or an ApiError saying why it is not one (`invalid_json`). */
export function readJsonObject(body: Uint8Array): JsonFields {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    throw ApiError.invalid('the request body is not valid UTF-8', null, 'invalid_json');
  }
  if (text.trim() === '') throw ApiError.invalid('the request body is empty: send a JSON object', null, 'invalid_json');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw ApiError.invalid(`the request body is not valid JSON: ${(error as Error).message}`, null, 'invalid_json');
  }
  if (!isObject(value)) throw ApiError.invalid('the request body must be a JSON object', null, 'invalid_json');
  if (depthOf(value) > MAX_DEPTH) throw ApiError.invalid(`the request body nests more than ${MAX_DEPTH} levels deep`, null, 'invalid_json');
  return value;
}

export function isObject(value: unknown): value is JsonFields {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Nesting depth, measured without recursion (a hostile body must not exhaust the stack here). */
function depthOf(root: unknown): number {
  let deepest = 0;
  const stack: [unknown, number][] = [[root, 1]];
  while (stack.length > 0) {
    const [value, depth] = stack.pop()!;
    if (typeof value !== 'object' || value === null) continue;
    deepest = Math.max(deepest, depth);
    if (deepest > MAX_DEPTH) return deepest;
    for (const child of Array.isArray(value) ? value : Object.values(value)) stack.push([child, depth + 1]);
  }
  return deepest;
}
