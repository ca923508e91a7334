import type { GenerationOutcome, SamplingParams, TextSink } from '../engine/generate.js';
import { GRAMMAR_END, type ParsedToolCall } from './tool-call-grammar.js';
import type { ToolPlan } from './chat-plan.js';

/** Generates on one leased sequence (SlotLease.generate); may be called again once the last outcome settled. */
export type GenerateOn = (promptTokens: readonly number[], params: SamplingParams, sink: TextSink, signal: AbortSignal) => Promise<GenerationOutcome>;

/** A chat's tool calling, as the runner needs it. */
export interface ToolRun {
  plan: ToolPlan;
  /** The prompt's tokens followed by `reply` and the call's prefix (the prompt of the call phase). */
  continueTokens(promptTokens: readonly number[], reply: string): number[];
  /** Tokens per sequence: the call phase must fit in what the reply left. */
  contextSize: number;
}

/** How a chat generation ended: a generation's outcome, or `tool_calls` with the calls. */
export interface ChatOutcome extends Omit<GenerationOutcome, 'reason'> {
  reason: GenerationOutcome['reason'] | 'tool_calls';
  toolCalls: ParsedToolCall[];
}

/**
 * Runs a chat reply that may call tools. `forced`: the whole reply is one call under the tool-call
 * grammar (the prompt ends with the call prefix); nothing of it is streamed as text. `auto`: the
 * reply streams as text, with the call prefixes as extra stop sequences; when one of them ends it,
 * the call is generated on the same sequence under the grammar, the prompt being what the model
 * has seen plus the prefix (its cached tokens are reused). A call cut short by maxTokens makes no
 * call and ends with reason `length`. Without tools it is one plain generation.
 */
export async function runChat(
  generate: GenerateOn,
  promptTokens: readonly number[],
  params: SamplingParams,
  sink: TextSink,
  signal: AbortSignal,
  tools: ToolRun | undefined,
): Promise<ChatOutcome> {
  if (tools === undefined) return { ...(await generate(promptTokens, params, sink, signal)), toolCalls: [] };
  const { plan } = tools;
  if (plan.mode === 'forced') return callPhase(generate, promptTokens, params, sink, signal, plan, 0);
  const reply = new RecordingSink(sink);
  const first = await generate(promptTokens, { ...params, stop: [...params.stop, ...plan.triggers] }, reply, signal);
  if (first.reason !== 'stop' || first.stopSequence === undefined || !plan.triggers.includes(first.stopSequence)) return { ...first, toolCalls: [] };
  // The sequence takes the next generation only once the last step of this one is over.
  await first.settled;
  const tokens = tools.continueTokens(promptTokens, reply.text);
  const room = Math.min(params.maxTokens - first.completionTokens, tools.contextSize - tokens.length);
  if (room < 1) return { ...first, reason: 'length', toolCalls: [] };
  const call = await callPhase(generate, tokens, { ...params, maxTokens: room }, sink, signal, plan, first.completionTokens);
  return { ...call, reusedPromptTokens: first.reusedPromptTokens };
}

async function callPhase(
  generate: GenerateOn,
  tokens: readonly number[],
  params: SamplingParams,
  sink: TextSink,
  signal: AbortSignal,
  plan: ToolPlan,
  earlierTokens: number,
): Promise<ChatOutcome> {
  const call = new RecordingSink(sink, false);
  const { grammar: _text, ...rest } = params;
  const outcome = await generate(tokens, { ...rest, grammar: plan.grammar, stop: [GRAMMAR_END] }, call, signal);
  const completionTokens = outcome.completionTokens + earlierTokens;
  if (outcome.reason === 'aborted') return { ...outcome, completionTokens, toolCalls: [] };
  const parsed = outcome.reason === 'stop' ? plan.parse(call.text) : undefined;
  // Cut short by maxTokens (or, never with a grammar that fits its schema, arguments that do not validate): no call.
  if (parsed === undefined) return { ...outcome, completionTokens, toolCalls: [] };
  return { ...outcome, completionTokens, reason: 'tool_calls', toolCalls: [parsed] };
}

/** Keeps the text written through it; passes it on to `inner` unless `forward` is false (a call is not text). */
class RecordingSink implements TextSink {
  text = '';

  constructor(private readonly inner: TextSink, private readonly forward = true) {}

  write(piece: string): void {
    this.text += piece;
    if (this.forward) this.inner.write(piece);
  }

  waitWritable(): Promise<void> | undefined {
    return this.inner.waitWritable();
  }

  onToken(): void {
    this.inner.onToken();
  }
}
