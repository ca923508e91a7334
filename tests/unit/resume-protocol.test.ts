import { describe, expect, it } from 'vitest';
import { parseClientFrame } from '../../protocol/index.js';

const RESUME = { t: 'resume', id: 'r1', session: 'b2c9e3f0-session', token: 'x'.repeat(43), fromSeq: 5 };

describe('the resume frame', () => {
  it('parses into a typed frame, ignoring unknown fields', () => {
    expect(parseClientFrame({ ...RESUME, extra: true })).toStrictEqual({ ok: true, frame: RESUME });
  });

  it.each([
    ['no id', { id: undefined }, '"id" must be a string of 1 to 128 characters'],
    ['an empty session', { session: '' }, '"session" must have 1 to 128 characters (got 0)'],
    ['a token that is not a string', { token: 42 }, '"token" must be a string'],
    ['a token too long', { token: 'x'.repeat(129) }, '"token" must have 1 to 128 characters (got 129)'],
    ['fromSeq 0', { fromSeq: 0 }, `"fromSeq" must be a number from 1 to ${Number.MAX_SAFE_INTEGER}`],
    ['a fractional fromSeq', { fromSeq: 1.5 }, `"fromSeq" must be an integer from 1 to ${Number.MAX_SAFE_INTEGER}`],
    ['no fromSeq', { fromSeq: undefined }, `"fromSeq" must be a number from 1 to ${Number.MAX_SAFE_INTEGER}`],
  ])('refuses %s with invalid_params and no id (it would read as a terminal frame)', (_name, change, message) => {
    const parsed = parseClientFrame({ ...RESUME, ...change });
    expect(parsed).toStrictEqual({ ok: false, problem: { code: 'invalid_params', message } });
  });
});
