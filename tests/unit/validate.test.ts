import { describe, expect, it } from 'vitest';
import { ErrorCode, WireLimits } from '../../protocol/constants.js';
import type { ClientFrame } from '../../protocol/frames.js';
import { parseClientFrame } from '../../protocol/validate.js';

const gen = (fields: Record<string, unknown>): Record<string, unknown> => ({ t: 'gen', id: 'req-1', prompt: 'hi', ...fields });

function expectProblem(value: unknown, code: ErrorCode): { code: ErrorCode; message: string; id?: string } {
  const result = parseClientFrame(value);
  expect(result.ok).toBe(false);
  if (result.ok) throw new Error('unreachable');
  expect(result.problem.code).toBe(code);
  expect(typeof result.problem.message).toBe('string');
  expect(result.problem.message.length).toBeGreaterThan(0);
  return result.problem;
}

function expectFrame(value: unknown): ClientFrame {
  const result = parseClientFrame(value);
  if (!result.ok) throw new Error(`expected a valid frame, got ${result.problem.code}: ${result.problem.message}`);
  return result.frame;
}

describe('parseClientFrame: bad_frame', () => {
  it.each<[string, unknown]>([
    ['null', null],
    ['undefined', undefined],
    ['a number', 42],
    ['a string', 'gen'],
    ['a boolean', true],
    ['an array', [{ t: 'ping' }]],
    ['an empty array', []],
    ['a map without t', { id: 'x' }],
    ['an empty map', {}],
    ['t null', { t: null }],
    ['t a number', { t: 1 }],
    ['t an array', { t: ['gen'] }],
    ['t a map', { t: { gen: true } }],
    ['t a boolean', { t: true }],
  ])('%s', (_name, value) => {
    const problem = expectProblem(value, 'bad_frame');
    expect(problem.id).toBeUndefined();
  });
});

describe('parseClientFrame: unknown_type', () => {
  it.each(['', 'GEN', 'generate', 'pong', 'tok', 'hello', ' gen', '__proto__', 'constructor', 'x'.repeat(1000)])('t = %j', (t) => {
    const problem = expectProblem({ t, id: 'x', prompt: 'p' }, 'unknown_type');
    // The echoed tag is bounded.
    expect(problem.message.length).toBeLessThan(100);
  });
});

const longId = 'i'.repeat(WireLimits.maxIdLength + 1);

describe('parseClientFrame: invalid gen id (no id in the problem)', () => {
  it.each<[string, Record<string, unknown>]>([
    ['id missing', { t: 'gen', prompt: 'p' }],
    ['id empty', gen({ id: '' })],
    ['id too long', gen({ id: longId })],
    ['id a number', gen({ id: 7 })],
    ['id null', gen({ id: null })],
    ['id an array', gen({ id: ['a'] })],
  ])('%s', (_name, value) => {
    const problem = expectProblem(value, 'invalid_params');
    expect(problem.id).toBeUndefined();
    expect(problem.message).toMatch(/"id"/);
  });
});

describe('parseClientFrame: invalid gen params (problem carries the id)', () => {
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ['prompt missing', { t: 'gen', id: 'req-1' }, 'prompt'],
    ['prompt null', gen({ prompt: null }), 'prompt'],
    ['prompt a number', gen({ prompt: 5 }), 'prompt'],
    ['prompt an array', gen({ prompt: ['a', 'b'] }), 'prompt'],
    ['prompt too long', gen({ prompt: 'p'.repeat(WireLimits.maxPromptChars + 1) }), 'prompt'],
    ['model empty', gen({ model: '' }), 'model'],
    ['model too long', gen({ model: 'm'.repeat(WireLimits.maxModelNameLength + 1) }), 'model'],
    ['model a number', gen({ model: 3 }), 'model'],
    ['maxTokens 0', gen({ maxTokens: 0 }), 'maxTokens'],
    ['maxTokens negative', gen({ maxTokens: -5 }), 'maxTokens'],
    ['maxTokens a float', gen({ maxTokens: 1.5 }), 'maxTokens'],
    ['maxTokens a string', gen({ maxTokens: '10' }), 'maxTokens'],
    ['maxTokens too large', gen({ maxTokens: 1_000_001 }), 'maxTokens'],
    ['maxTokens Infinity', gen({ maxTokens: Infinity }), 'maxTokens'],
    ['temperature negative', gen({ temperature: -0.1 }), 'temperature'],
    ['temperature too large', gen({ temperature: 10.5 }), 'temperature'],
    ['temperature NaN', gen({ temperature: NaN }), 'temperature'],
    ['temperature Infinity', gen({ temperature: Infinity }), 'temperature'],
    ['temperature a string', gen({ temperature: '0.5' }), 'temperature'],
    ['temperature a boolean', gen({ temperature: true }), 'temperature'],
    ['topK a float', gen({ topK: 2.5 }), 'topK'],
    ['topK negative', gen({ topK: -1 }), 'topK'],
    ['topP above 1', gen({ topP: 1.01 }), 'topP'],
    ['topP negative', gen({ topP: -0.5 }), 'topP'],
    ['minP below 0', gen({ minP: -0.01 }), 'minP'],
    ['minP above 1', gen({ minP: 2 }), 'minP'],
    ['seed negative', gen({ seed: -1 }), 'seed'],
    ['seed a float', gen({ seed: 1.5 }), 'seed'],
    ['seed above 2^32-1', gen({ seed: 2 ** 32 }), 'seed'],
    ['seed a string', gen({ seed: '42' }), 'seed'],
    ['stop a string', gen({ stop: 'END' }), 'stop'],
    ['stop a map', gen({ stop: { 0: 'END' } }), 'stop'],
    ['stop too many', gen({ stop: Array.from({ length: WireLimits.maxStopSequences + 1 }, (_, i) => `s${i}`) }), 'stop'],
    ['stop with an empty string', gen({ stop: ['ok', ''] }), 'stop'],
    ['stop with a too long string', gen({ stop: ['s'.repeat(WireLimits.maxStopLength + 1)] }), 'stop'],
    ['stop with a number', gen({ stop: ['a', 1] }), 'stop'],
    ['stop with null', gen({ stop: [null] }), 'stop'],
  ];

  it.each(cases)('%s', (_name, value, field) => {
    const problem = expectProblem(value, 'invalid_params');
    expect(problem.id).toBe('req-1');
    expect(problem.message).toContain(`"${field}"`);
  });
});

describe('parseClientFrame: invalid cancel and ping', () => {
  it.each<[string, Record<string, unknown>]>([
    ['cancel without id', { t: 'cancel' }],
    ['cancel with empty id', { t: 'cancel', id: '' }],
    ['cancel with too long id', { t: 'cancel', id: longId }],
    ['cancel with numeric id', { t: 'cancel', id: 12 }],
    ['ping with string ts', { t: 'ping', ts: '123' }],
    ['ping with boolean ts', { t: 'ping', ts: false }],
    ['ping with array ts', { t: 'ping', ts: [1] }],
    ['ping with NaN ts', { t: 'ping', ts: NaN }],
    ['ping with infinite ts', { t: 'ping', ts: -Infinity }],
  ])('%s', (_name, value) => {
    expectProblem(value, 'invalid_params');
  });
});

describe('parseClientFrame: valid frames', () => {
  it('parses a gen frame with every parameter', () => {
    const frame = {
      t: 'gen',
      id: 'req-1',
      model: 'tiny',
      prompt: 'Once upon a time',
      maxTokens: 64,
      temperature: 0.8,
      topK: 40,
      topP: 0.95,
      minP: 0.05,
      seed: 123,
      stop: ['\n', 'END'],
    };
    expect(expectFrame(frame)).toStrictEqual(frame);
  });

  it('parses a minimal gen frame and allows an empty prompt', () => {
    expect(expectFrame({ t: 'gen', id: 'a', prompt: '' })).toStrictEqual({ t: 'gen', id: 'a', prompt: '' });
  });

  it('accepts the boundary values', () => {
    const frame = {
      t: 'gen',
      id: 'i'.repeat(WireLimits.maxIdLength),
      model: 'm'.repeat(WireLimits.maxModelNameLength),
      prompt: 'p'.repeat(WireLimits.maxPromptChars),
      maxTokens: 1,
      temperature: 0,
      topK: 0,
      topP: 1,
      minP: 0,
      seed: 0xffffffff,
      stop: Array.from({ length: WireLimits.maxStopSequences }, (_, i) => String(i).padEnd(WireLimits.maxStopLength, 'x')),
    };
    expect(expectFrame(frame)).toStrictEqual(frame);
    expect(expectFrame({ ...frame, temperature: 10, seed: 0, topP: 0, minP: 1, maxTokens: 1_000_000 })).toMatchObject({
      temperature: 10,
      seed: 0,
      topP: 0,
      minP: 1,
      maxTokens: 1_000_000,
    });
  });

  it('drops unknown fields', () => {
    expect(expectFrame(gen({ extra: 1, __proto__x: 'y', temperature: 0.5, nested: { a: 1 } }))).toStrictEqual({
      t: 'gen',
      id: 'req-1',
      prompt: 'hi',
      temperature: 0.5,
    });
    expect(expectFrame({ t: 'cancel', id: 'c', reason: 'bored' })).toStrictEqual({ t: 'cancel', id: 'c' });
    expect(expectFrame({ t: 'ping', ts: 5, extra: true })).toStrictEqual({ t: 'ping', ts: 5 });
    expect(expectFrame({ t: 'models', id: 'ignored', all: true })).toStrictEqual({ t: 'models' });
  });

  it('treats null optional gen fields as absent', () => {
    const frame = expectFrame(
      gen({ model: null, maxTokens: null, temperature: null, topK: null, topP: null, minP: null, seed: null, stop: null }),
    );
    expect(frame).toStrictEqual({ t: 'gen', id: 'req-1', prompt: 'hi' });
    expect(Object.keys(frame).sort()).toEqual(['id', 'prompt', 't']);
  });

  it('treats undefined optional gen fields as absent', () => {
    const frame = expectFrame(gen({ model: undefined, stop: undefined, seed: undefined }));
    expect(Object.keys(frame).sort()).toEqual(['id', 'prompt', 't']);
  });

  it('parses cancel, ping (with and without ts) and models', () => {
    expect(expectFrame({ t: 'cancel', id: 'req-1' })).toStrictEqual({ t: 'cancel', id: 'req-1' });
    expect(expectFrame({ t: 'ping' })).toStrictEqual({ t: 'ping' });
    expect(expectFrame({ t: 'ping', ts: 1_712_345_678_901.25 })).toStrictEqual({ t: 'ping', ts: 1_712_345_678_901.25 });
    expect(expectFrame({ t: 'ping', ts: -3 })).toStrictEqual({ t: 'ping', ts: -3 });
    expect(expectFrame({ t: 'models' })).toStrictEqual({ t: 'models' });
  });

  // Like every optional field, a null ts counts as absent.
  it('treats a null ping ts as absent', () => {
    expect(parseClientFrame({ t: 'ping', ts: null })).toStrictEqual({ ok: true, frame: { t: 'ping' } });
  });

  it('keeps the stop strings in order', () => {
    const stop = ['b', 'a', '日本'];
    const frame = expectFrame(gen({ stop }));
    expect(frame).toMatchObject({ stop: ['b', 'a', '日本'] });
  });
});
