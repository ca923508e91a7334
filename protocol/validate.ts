import { ClientFrameType, ErrorCode, WireLimits } from './constants.js';
import type { ClientFrame, GenFrame } from './frames.js';

/** Why a decoded value is not a valid client frame; `id` is set when the frame named a usable one. */
export interface FrameProblem {
  code: ErrorCode;
  message: string;
  id?: string;
}

export type ParsedClientFrame = { ok: true; frame: ClientFrame } | { ok: false; problem: FrameProblem };

type Fields = Record<string, unknown>;

class Invalid extends Error {}

/** Validates a decoded value into a typed client frame, or says exactly what is wrong with it. */
export function parseClientFrame(value: unknown): ParsedClientFrame {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return fail(ErrorCode.badFrame, 'a frame must be a map');
  }
  const fields = value as Fields;
  const type = fields.t;
  if (typeof type !== 'string') return fail(ErrorCode.badFrame, 'a frame needs a string type tag "t"');
  switch (type) {
    case ClientFrameType.gen:
      return parseGen(fields);
    case ClientFrameType.cancel: {
      const id = fields.id;
      if (!isValidId(id)) return fail(ErrorCode.invalidParams, `"id" must be a string of 1 to ${WireLimits.maxIdLength} characters`);
      return { ok: true, frame: { t: 'cancel', id } };
    }
    case ClientFrameType.ping: {
      const ts = fields.ts ?? undefined;
      if (ts !== undefined && (typeof ts !== 'number' || !Number.isFinite(ts))) return fail(ErrorCode.invalidParams, '"ts" must be a finite number');
      return { ok: true, frame: ts === undefined ? { t: 'ping' } : { t: 'ping', ts } };
    }
    case ClientFrameType.models:
      return { ok: true, frame: { t: 'models' } };
    default:
      return fail(ErrorCode.unknownType, `unknown frame type "${type.slice(0, 32)}"`);
  }
}

function parseGen(fields: Fields): ParsedClientFrame {
  const id = fields.id;
  if (!isValidId(id)) return fail(ErrorCode.invalidParams, `"id" must be a string of 1 to ${WireLimits.maxIdLength} characters`);
  try {
    const frame: GenFrame = { t: 'gen', id, prompt: text(fields, 'prompt', WireLimits.maxPromptChars, 0) };
    const model = optional(fields, 'model', () => text(fields, 'model', WireLimits.maxModelNameLength, 1));
    if (model !== undefined) frame.model = model;
    const maxTokens = optional(fields, 'maxTokens', () => integer(fields, 'maxTokens', 1, 1_000_000));
    if (maxTokens !== undefined) frame.maxTokens = maxTokens;
    const temperature = optional(fields, 'temperature', () => number(fields, 'temperature', 0, 10));
    if (temperature !== undefined) frame.temperature = temperature;
    const topK = optional(fields, 'topK', () => integer(fields, 'topK', 0, 1_000_000));
    if (topK !== undefined) frame.topK = topK;
    const topP = optional(fields, 'topP', () => number(fields, 'topP', 0, 1));
    if (topP !== undefined) frame.topP = topP;
    const minP = optional(fields, 'minP', () => number(fields, 'minP', 0, 1));
    if (minP !== undefined) frame.minP = minP;
    const seed = optional(fields, 'seed', () => integer(fields, 'seed', 0, 0xffffffff));
    if (seed !== undefined) frame.seed = seed;
    const stop = optional(fields, 'stop', () => stopList(fields.stop));
    if (stop !== undefined) frame.stop = stop;
    return { ok: true, frame };
  } catch (error) {
    if (error instanceof Invalid) return fail(ErrorCode.invalidParams, error.message, id);
    throw error;
  }
}

function isValidId(id: unknown): id is string {
  return typeof id === 'string' && id.length > 0 && id.length <= WireLimits.maxIdLength;
}

function optional<T>(fields: Fields, name: string, read: () => T): T | undefined {
  return fields[name] === undefined || fields[name] === null ? undefined : read();
}

function text(fields: Fields, name: string, maxLength: number, minLength: number): string {
  const value = fields[name];
  if (typeof value !== 'string') throw new Invalid(`"${name}" must be a string`);
  if (value.length < minLength || value.length > maxLength) {
    throw new Invalid(`"${name}" must have ${minLength} to ${maxLength} characters (got ${value.length})`);
  }
  return value;
}

function number(fields: Fields, name: string, min: number, max: number): number {
  const value = fields[name];
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw new Invalid(`"${name}" must be a number from ${min} to ${max}`);
  }
  return value;
}

function integer(fields: Fields, name: string, min: number, max: number): number {
  const value = number(fields, name, min, max);
  if (!Number.isInteger(value)) throw new Invalid(`"${name}" must be an integer from ${min} to ${max}`);
  return value;
}

function stopList(value: unknown): string[] {
  if (!Array.isArray(value)) throw new Invalid('"stop" must be an array of strings');
  if (value.length > WireLimits.maxStopSequences) throw new Invalid(`"stop" may hold at most ${WireLimits.maxStopSequences} sequences`);
  for (const item of value) {
    if (typeof item !== 'string' || item.length === 0 || item.length > WireLimits.maxStopLength) {
      throw new Invalid(`each "stop" sequence must be a string of 1 to ${WireLimits.maxStopLength} characters`);
    }
  }
  return value as string[];
}

function fail(code: ErrorCode, message: string, id?: string): ParsedClientFrame {
  return { ok: false, problem: id === undefined ? { code, message } : { code, message, id } };
}
