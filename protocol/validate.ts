import { ClientFrameType, ErrorCode, WireLimits } from './constants.js';
import type { ClientFrame, GenFrame, ResumeFrame } from './frames.js';
import { readChatFrame } from './validate-chat.js';
import { Invalid, integer, isValidId, readGenParams, text, type Fields } from './validate-fields.js';

/** Why a decoded value is not a valid client frame; `id` is set when the frame named a usable one. */
export interface FrameProblem {
  code: ErrorCode;
  message: string;
  id?: string;
}

export type ParsedClientFrame = { ok: true; frame: ClientFrame } | { ok: false; problem: FrameProblem };

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
    case ClientFrameType.chat:
      return parseChat(fields);
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
    case ClientFrameType.resume:
      return parseResume(fields);
    default:
      return fail(ErrorCode.unknownType, `unknown frame type "${type.slice(0, 32)}"`);
  }
}

function parseGen(fields: Fields): ParsedClientFrame {
  const id = fields.id;
  if (!isValidId(id)) return fail(ErrorCode.invalidParams, `"id" must be a string of 1 to ${WireLimits.maxIdLength} characters`);
  try {
    const frame: GenFrame = { t: 'gen', id, prompt: text(fields, 'prompt', WireLimits.maxPromptChars, 0) };
    readGenParams(fields, frame);
    return { ok: true, frame };
  } catch (error) {
    if (error instanceof Invalid) return fail(ErrorCode.invalidParams, error.message, id);
    throw error;
  }
}

function parseChat(fields: Fields): ParsedClientFrame {
  const id = fields.id;
  if (!isValidId(id)) return fail(ErrorCode.invalidParams, `"id" must be a string of 1 to ${WireLimits.maxIdLength} characters`);
  try {
    return { ok: true, frame: readChatFrame(fields, id) };
  } catch (error) {
    if (error instanceof Invalid) return fail(ErrorCode.invalidParams, error.message, id);
    throw error;
  }
}

/** Problems carry no `id`: an err with one would read as the terminal frame of a request of this connection. */
function parseResume(fields: Fields): ParsedClientFrame {
  if (!isValidId(fields.id)) return fail(ErrorCode.invalidParams, `"id" must be a string of 1 to ${WireLimits.maxIdLength} characters`);
  try {
    const frame: ResumeFrame = {
      t: 'resume',
      id: fields.id,
      session: text(fields, 'session', WireLimits.maxIdLength, 1),
      token: text(fields, 'token', WireLimits.maxIdLength, 1),
      fromSeq: integer(fields, 'fromSeq', 1, Number.MAX_SAFE_INTEGER),
    };
    return { ok: true, frame };
  } catch (error) {
    if (error instanceof Invalid) return fail(ErrorCode.invalidParams, error.message);
    throw error;
  }
}

function fail(code: ErrorCode, message: string, id?: string): ParsedClientFrame {
  return { ok: false, problem: id === undefined ? { code, message } : { code, message, id } };
}
