import { ErrorCode, type ChatFrame, type GenFrame, type GenParams } from '../../protocol/index.js';
import type { ToolRun } from '../chat/chat-run.js';
import type { SamplingParams } from '../engine/generate.js';
import { ServiceError } from '../errors.js';
import type { LoadedModel } from '../pool/loaded-model.js';

/** The prompt of a request on one model, and what else shapes its reply besides sampling. */
export interface PreparedPrompt {
  tokens: number[];
  /** Stop sequences besides the request's own (a chat template's end of turn, a grammar's end). */
  stops: readonly string[];
  /** Constrains the reply (a JSON schema). */
  grammar?: SamplingParams['grammar'];
  /** How the reply may call tools. */
  tools?: ToolRun;
  /** What the reply depends on besides the sampling, for the response cache; undefined: never cached. */
  cacheText: string | undefined;
}

/**
 * What a request generates from: a `gen` frame's prompt, or a `chat` frame's messages rendered with
 * the model's template. Transport-free: anything that admits a request (the WebSocket session, an
 * HTTP route) can build one from a validated frame.
 */
export interface RequestSource {
  /** The sampling and length fields the request gave. */
  readonly params: GenParams;
  /** Tokenizes (and for a chat, renders) the prompt on `model`; `reserve` tokens must stay free. */
  prepare(model: LoadedModel, options: { reserve: number; owner: string; signal: AbortSignal }): Promise<PreparedPrompt>;
}

/** The source of a validated `gen` or `chat` frame. */
export function requestSourceOf(frame: GenFrame | ChatFrame): RequestSource {
  return frame.t === 'gen' ? promptSource(frame) : chatSource(frame);
}

function promptSource(frame: GenFrame): RequestSource {
  return {
    params: frame,
    async prepare(model, options) {
      const tokens = await model.tokenizePrompt(frame.prompt, options);
      if (tokens.length === 0) throw new ServiceError(ErrorCode.invalidParams, '"prompt" is empty and the model has no BOS token to start from');
      return { tokens, stops: [], cacheText: frame.prompt };
    },
  };
}

function chatSource(frame: ChatFrame): RequestSource {
  return {
    params: frame,
    async prepare(model, options) {
      const chat = await model.renderChat(frame, options);
      const tools: ToolRun | undefined = chat.tools && { plan: chat.tools, continueTokens: chat.continueTokens, contextSize: model.contextSize };
      return {
        tokens: chat.tokens,
        stops: chat.stops,
        ...(chat.grammar && { grammar: chat.grammar }),
        ...(tools && { tools }),
        // A tool call is not text the cache could replay.
        cacheText: tools ? undefined : chat.cacheText,
      };
    },
  };
}

/**
 * The sampling of a request on `model`: its own values, else the model's defaults. Without an
 * explicit maxTokens the default shrinks to what the context still holds; a prompt that leaves too
 * little room is refused with prompt_too_long.
 */
export function samplingParamsFor(model: LoadedModel, params: GenParams, prepared: PreparedPrompt, maxTokensDefault: number): SamplingParams {
  const promptTokens = prepared.tokens.length;
  const room = model.contextSize - promptTokens;
  const maxTokens = params.maxTokens ?? Math.min(maxTokensDefault, room);
  if (room < 1 || maxTokens > room) {
    throw new ServiceError(
      ErrorCode.promptTooLong,
      `prompt (${promptTokens} tokens) + maxTokens (${maxTokens}) exceed the context of ${model.contextSize} tokens`,
      { details: { promptTokens, maxTokens, contextSize: model.contextSize } },
    );
  }
  const defaults = model.sampling;
  const repeat = params.repeatPenalty ?? defaults.repeatPenalty ?? 1;
  const frequency = params.frequencyPenalty ?? defaults.frequencyPenalty ?? 0;
  const presence = params.presencePenalty ?? defaults.presencePenalty ?? 0;
  const penalize = repeat !== 1 || frequency !== 0 || presence !== 0;
  return {
    maxTokens,
    temperature: params.temperature ?? defaults.temperature,
    topK: params.topK ?? defaults.topK,
    topP: params.topP ?? defaults.topP,
    minP: params.minP ?? defaults.minP,
    ...(params.seed !== undefined && { seed: params.seed }),
    stop: [...(params.stop ?? []), ...prepared.stops],
    ...(penalize && { penalties: { repeat, frequency, presence, lastTokens: defaults.penaltyLastTokens ?? 64 } }),
    ...(prepared.grammar && { grammar: prepared.grammar }),
  };
}
