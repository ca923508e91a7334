import { parseClientFrame, type GenFrame } from '../../protocol/index.js';
import { ApiError } from './api-error.js';
import type { JsonFields } from './request-body.js';
import { present, readSharedFields, type ReplyMode } from './shared-fields.js';

/** A legacy completion request, as the `gen` frame the WebSocket protocol would carry. */
export interface CompletionRequest extends ReplyMode {
  frame: GenFrame;
}

/**
 * Translates a `POST /v1/completions` body into a `gen` frame and validates it with the protocol's
 * own validator. One prompt per request (a string, or an array holding one); `echo`, `suffix` and
 * `best_of` above 1 are refused.
 */
export function readCompletionRequest(body: JsonFields, id: string): CompletionRequest {
  const frame: Record<string, unknown> = { t: 'gen', id };
  const mode = readSharedFields(body, frame);
  const prompt = Array.isArray(body.prompt) && body.prompt.length === 1 ? body.prompt[0] : body.prompt;
  if (typeof prompt !== 'string') throw ApiError.invalid('"prompt" must be a string (or an array of one string)', 'prompt');
  frame.prompt = prompt;
  if (body.echo === true) throw ApiError.invalid('"echo" is not supported', 'echo', 'unsupported');
  if (present(body.suffix) && body.suffix !== '') throw ApiError.invalid('"suffix" is not supported', 'suffix', 'unsupported');
  if (present(body.best_of) && body.best_of !== 1) throw ApiError.invalid('"best_of" must be 1', 'best_of', 'unsupported');
  const parsed = parseClientFrame(frame);
  if (!parsed.ok) throw ApiError.of(parsed.problem);
  return { ...mode, frame: parsed.frame as GenFrame };
}
