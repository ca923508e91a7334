import { WireLimits } from './constants.js';
import type { GenParams } from './frames.js';

/** A decoded frame's fields, before validation. */
export type Fields = Record<string, unknown>;

/** A field is wrong; the message names it and says what it must be. */
export class Invalid extends Error {}

export function isValidId(id: unknown): id is string {
  return typeof id === 'string' && id.length > 0 && id.length <= WireLimits.maxIdLength;
}

export function isMap(value: unknown): value is Fields {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Reads a field that may be absent (or null); `read` validates it when present. */
export function optional<T>(fields: Fields, name: string, read: () => T): T | undefined {
  return fields[name] === undefined || fields[name] === null ? undefined : read();
}

/** `label` names the field in messages when it is not a top-level one (`messages[2].content`). */
export function text(fields: Fields, name: string, maxLength: number, minLength: number, label = name): string {
  const value = fields[name];
  if (typeof value !== 'string') throw new Invalid(`"${label}" must be a string`);
  if (value.length < minLength || value.length > maxLength) {
    throw new Invalid(`"${label}" must have ${minLength} to ${maxLength} characters (got ${value.length})`);
  }
  return value;
}

export function number(fields: Fields, name: string, min: number, max: number): number {
  const value = fields[name];
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw new Invalid(`"${name}" must be a number from ${min} to ${max}`);
  }
  return value;
}

export function integer(fields: Fields, name: string, min: number, max: number): number {
  const value = number(fields, name, min, max);
  if (!Number.isInteger(value)) throw new Invalid(`"${name}" must be an integer from ${min} to ${max}`);
  return value;
}

export function stopList(value: unknown): string[] {
  if (!Array.isArray(value)) throw new Invalid('"stop" must be an array of strings');
  if (value.length > WireLimits.maxStopSequences) throw new Invalid(`"stop" may hold at most ${WireLimits.maxStopSequences} sequences`);
  for (const item of value) {
    if (typeof item !== 'string' || item.length === 0 || item.length > WireLimits.maxStopLength) {
      throw new Invalid(`each "stop" sequence must be a string of 1 to ${WireLimits.maxStopLength} characters`);
    }
  }
  return value as string[];
}

/** Ranges of the penalties: llama.cpp takes any value; past these they only garble the text. */
const PENALTY_RANGES = { repeatPenalty: [0.1, 10], frequencyPenalty: [-2, 2], presencePenalty: [-2, 2] } as const;

/** Copies the sampling and length fields a `gen` and a `chat` share into `into`, validating each. */
export function readGenParams(fields: Fields, into: GenParams & { model?: string }): void {
  const model = optional(fields, 'model', () => text(fields, 'model', WireLimits.maxModelNameLength, 1));
  if (model !== undefined) into.model = model;
  const maxTokens = optional(fields, 'maxTokens', () => integer(fields, 'maxTokens', 1, 1_000_000));
  if (maxTokens !== undefined) into.maxTokens = maxTokens;
  const temperature = optional(fields, 'temperature', () => number(fields, 'temperature', 0, 10));
  if (temperature !== undefined) into.temperature = temperature;
  const topK = optional(fields, 'topK', () => integer(fields, 'topK', 0, 1_000_000));
  if (topK !== undefined) into.topK = topK;
  const topP = optional(fields, 'topP', () => number(fields, 'topP', 0, 1));
  if (topP !== undefined) into.topP = topP;
  const minP = optional(fields, 'minP', () => number(fields, 'minP', 0, 1));
  if (minP !== undefined) into.minP = minP;
  const seed = optional(fields, 'seed', () => integer(fields, 'seed', 0, 0xffffffff));
  if (seed !== undefined) into.seed = seed;
  const stop = optional(fields, 'stop', () => stopList(fields.stop));
  if (stop !== undefined) into.stop = stop;
  for (const [name, [min, max]] of Object.entries(PENALTY_RANGES) as [keyof typeof PENALTY_RANGES, readonly [number, number]][]) {
    const value = optional(fields, name, () => number(fields, name, min, max));
    if (value !== undefined) into[name] = value;
  }
}
