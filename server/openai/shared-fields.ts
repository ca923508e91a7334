import { ApiError } from './api-error.js';
import { isObject, type JsonFields } from './request-body.js';

/** How the client wants the reply: one JSON object, or server-sent events, with a usage chunk at the end. */
export interface ReplyMode {
  stream: boolean;
  includeUsage: boolean;
}

/** Sampling fields whose OpenAI name maps to a frame field (the frame's validator checks the values). */
const SAMPLING: Record<string, string> = {
  model: 'model',
  temperature: 'temperature',
  top_p: 'topP',
  seed: 'seed',
  frequency_penalty: 'frequencyPenalty',
  presence_penalty: 'presencePenalty',
  // Not OpenAI's, but llama-server's and vLLM's: frontends made for them send these.
  top_k: 'topK',
  min_p: 'minP',
  repeat_penalty: 'repeatPenalty',
};

/** Longest `user` (an end-user id the service only accepts). */
const MAX_USER_LENGTH = 256;

/**
 * Copies the fields both endpoints share into `frame` (frame spelling), and reads how to reply.
 * Refuses, naming the field, what is malformed here or asks for what the service does not do
 * (`n` other than 1, log probabilities, logit bias).
 */
export function readSharedFields(body: JsonFields, frame: Record<string, unknown>): ReplyMode {
  for (const [name, field] of Object.entries(SAMPLING)) if (present(body[name])) frame[field] = body[name];
  const maxTokens = present(body.max_completion_tokens) ? body.max_completion_tokens : body.max_tokens;
  if (present(body.max_tokens) && present(body.max_completion_tokens) && body.max_tokens !== body.max_completion_tokens) {
    throw ApiError.invalid('"max_tokens" and "max_completion_tokens" differ: send one of them', 'max_completion_tokens');
  }
  if (present(maxTokens)) frame.maxTokens = maxTokens;
  if (typeof body.stop === 'string') frame.stop = [body.stop];
  else if (present(body.stop)) frame.stop = body.stop;
  if (present(body.n) && body.n !== 1) throw ApiError.invalid('"n" must be 1: one choice per request (send several requests for more)', 'n', 'unsupported');
  if (present(body.logprobs) && body.logprobs !== false && body.logprobs !== 0) throw ApiError.invalid('"logprobs" is not supported', 'logprobs', 'unsupported');
  if (present(body.top_logprobs) && body.top_logprobs !== 0) throw ApiError.invalid('"top_logprobs" is not supported', 'top_logprobs', 'unsupported');
  if (present(body.logit_bias) && !(isObject(body.logit_bias) && Object.keys(body.logit_bias).length === 0)) {
    throw ApiError.invalid('"logit_bias" is not supported', 'logit_bias', 'unsupported');
  }
  if (present(body.user) && (typeof body.user !== 'string' || body.user.length > MAX_USER_LENGTH)) {
    throw ApiError.invalid(`"user" must be a string of at most ${MAX_USER_LENGTH} characters`, 'user');
  }
  return readMode(body);
}

function readMode(body: JsonFields): ReplyMode {
  if (present(body.stream) && typeof body.stream !== 'boolean') throw ApiError.invalid('"stream" must be a boolean', 'stream');
  const options = body.stream_options;
  if (present(options) && !isObject(options)) throw ApiError.invalid('"stream_options" must be an object', 'stream_options');
  const includeUsage = isObject(options) ? options.include_usage : undefined;
  if (present(includeUsage) && typeof includeUsage !== 'boolean') throw ApiError.invalid('"stream_options.include_usage" must be a boolean', 'stream_options.include_usage');
  return { stream: body.stream === true, includeUsage: includeUsage === true };
}

/** OpenAI treats `null` as absent, as the protocol does. */
export function present(value: unknown): boolean {
  return value !== undefined && value !== null;
}
