import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { StopMatcher } from '../../server/engine/stop-matcher.js';

/** Feeds pieces until a stop matches; returns every push result, the emitted text and the flush. */
function run(stops: string[], pieces: string[]): { outputs: string[]; text: string; stopped: boolean; flushed: string } {
  const matcher = new StopMatcher(stops);
  const outputs: string[] = [];
  let stopped = false;
  for (const piece of pieces) {
    const result = matcher.push(piece);
    outputs.push(result.text);
    if (result.stopped) {
      stopped = true;
      break;
    }
  }
  const flushed = matcher.flush();
  return { outputs, text: outputs.join(''), stopped, flushed };
}

describe('StopMatcher', () => {
  it('passes text through unchanged without stop sequences', () => {
    const matcher = new StopMatcher([]);
    for (const piece of ['Hello', ' ', 'wor', 'ld', '', '🙂']) {
      expect(matcher.push(piece)).toStrictEqual({ text: piece, stopped: false });
    }
    expect(matcher.flush()).toBe('');
  });

  it('passes text through when it cannot start a stop sequence', () => {
    const matcher = new StopMatcher(['STOP']);
    expect(matcher.push('hello ')).toStrictEqual({ text: 'hello ', stopped: false });
    expect(matcher.push('world')).toStrictEqual({ text: 'world', stopped: false });
    expect(matcher.flush()).toBe('');
  });

  it('cuts before a stop sequence inside one piece', () => {
    const matcher = new StopMatcher(['STOP']);
    expect(matcher.push('abc')).toStrictEqual({ text: 'abc', stopped: false });
    expect(matcher.push('defSTOPghi')).toStrictEqual({ text: 'def', stopped: true });
    expect(matcher.flush()).toBe('');
  });

  it('stops on a piece that is exactly the stop sequence', () => {
    const matcher = new StopMatcher(['\n\n']);
    expect(matcher.push('line')).toStrictEqual({ text: 'line', stopped: false });
    expect(matcher.push('\n\n')).toStrictEqual({ text: '', stopped: true });
  });

  it.each<[string, string[], string[]]>([
    ['2 pieces', ['Hello ST', 'OP there'], ['Hello ', '']],
    ['3 pieces', ['Hello S', 'T', 'OP'], ['Hello ', '', '']],
    ['4 pieces', ['x', 'S', 'TO', 'P!'], ['x', '', '', '']],
    ['4 single characters', ['S', 'T', 'O', 'P'], ['', '', '', '']],
  ])('holds back a stop split across %s and never emits part of it', (_name, pieces, expected) => {
    const { outputs, stopped, flushed } = run(['STOP'], pieces);
    expect(stopped).toBe(true);
    expect(outputs).toEqual(expected);
    for (const output of outputs) expect(output).not.toMatch(/[STOP]/);
    expect(flushed).toBe('');
  });

  it('holds back a multi-byte stop split across pieces', () => {
    const { outputs, stopped } = run(['日本語'], ['é—日', '本', '語🙂']);
    expect(stopped).toBe(true);
    expect(outputs).toEqual(['é—', '', '']);
  });

  it('lets the earliest of several stops win', () => {
    expect(run(['STOP', 'END', 'x'], ['hello END then STOP and x'])).toMatchObject({ text: 'hello ', stopped: true });
    expect(run(['STOP', 'END'], ['a STOP b END'])).toMatchObject({ text: 'a ', stopped: true });
    // A later, longer stop does not win over an earlier, shorter one.
    expect(run(['cdef', 'b'], ['abcdef'])).toMatchObject({ text: 'a', stopped: true });
  });

  it('lets the earliest stop win when both are completed by the same piece', () => {
    const { outputs, stopped } = run(['<end>', 'nd>'], ['text <e', 'nd> more']);
    expect(stopped).toBe(true);
    expect(outputs.join('')).toBe('text ');
  });

  it('releases a false start once it turns out not to be a stop', () => {
    const matcher = new StopMatcher(['STOP']);
    expect(matcher.push('abc ST')).toStrictEqual({ text: 'abc ', stopped: false });
    expect(matcher.push('O')).toStrictEqual({ text: '', stopped: false });
    expect(matcher.push('X')).toStrictEqual({ text: 'STOX', stopped: false });
    expect(matcher.flush()).toBe('');
  });

  it('releases only the part of a false start that can no longer begin a stop', () => {
    const matcher = new StopMatcher(['aab']);
    expect(matcher.push('aa')).toStrictEqual({ text: '', stopped: false });
    // "aaa": the last "aa" may still begin "aab".
    expect(matcher.push('a')).toStrictEqual({ text: 'a', stopped: false });
    expect(matcher.push('b')).toStrictEqual({ text: '', stopped: true });
  });

  it('keeps the longest pending prefix over all stops', () => {
    const matcher = new StopMatcher(['xy', 'abcd']);
    expect(matcher.push('--abc')).toStrictEqual({ text: '--', stopped: false });
    expect(matcher.push('x')).toStrictEqual({ text: 'abc', stopped: false });
    expect(matcher.push('y')).toStrictEqual({ text: '', stopped: true });
  });

  it('returns held text on flush, once', () => {
    const matcher = new StopMatcher(['STOP']);
    expect(matcher.push('the end ST')).toStrictEqual({ text: 'the end ', stopped: false });
    expect(matcher.flush()).toBe('ST');
    expect(matcher.flush()).toBe('');
    // After a flush nothing is held: a piece completing the old prefix does not stop.
    expect(matcher.push('OP')).toStrictEqual({ text: 'OP', stopped: false });
  });

  it('flush returns nothing when nothing is held', () => {
    const matcher = new StopMatcher(['zz']);
    matcher.push('abc');
    expect(matcher.flush()).toBe('');
  });

  describe('properties', () => {
    const alphabet = fc.constantFrom('a', 'b', 'c', 'é', '🙂');
    const text = fc.array(alphabet, { maxLength: 40 }).map((chars) => chars.join(''));
    const stop = fc.array(alphabet, { minLength: 1, maxLength: 5 }).map((chars) => chars.join(''));

    /** Splits `value` at the given points (taken modulo its length), keeping empty pieces possible. */
    function split(value: string, points: number[]): string[] {
      const cuts = [...new Set(points.map((point) => (value.length === 0 ? 0 : point % (value.length + 1))))].sort((a, b) => a - b);
      const pieces: string[] = [];
      let from = 0;
      for (const cut of cuts) {
        pieces.push(value.slice(from, cut));
        from = cut;
      }
      pieces.push(value.slice(from));
      return pieces;
    }

    it('emits exactly the text before the first occurrence of the stop (or all of it, with flush)', () => {
      fc.assert(
        fc.property(text, stop, fc.array(fc.nat(), { maxLength: 12 }), (value, stopText, points) => {
          const pieces = split(value, points);
          expect(pieces.join('')).toBe(value);
          const { text: emitted, stopped, flushed, outputs } = run([stopText], pieces);
          const at = value.indexOf(stopText);
          if (at >= 0) {
            expect(stopped).toBe(true);
            expect(emitted).toBe(value.slice(0, at));
          } else {
            expect(stopped).toBe(false);
            expect(emitted + flushed).toBe(value);
            // Only a proper prefix of the stop is ever held back.
            expect(flushed.length).toBeLessThan(stopText.length);
            expect(stopText.startsWith(flushed)).toBe(true);
          }
          // Everything emitted so far is always a prefix of the text before the stop.
          let sofar = '';
          const limit = at >= 0 ? value.slice(0, at) : value;
          for (const output of outputs) {
            sofar += output;
            expect(limit.startsWith(sofar)).toBe(true);
          }
        }),
        { numRuns: 2000 },
      );
    });

    it('with one-character pieces, stops at the first completed stop among several', () => {
      fc.assert(
        fc.property(text, fc.array(stop, { minLength: 1, maxLength: 3 }), (value, stops) => {
          const { text: emitted, stopped, flushed } = run(stops, Array.from(value));
          // The first position where any stop ends, and the earliest start among stops ending there.
          let expected: string | undefined;
          for (let end = 1; end <= value.length && expected === undefined; end++) {
            const head = value.slice(0, end);
            const starts = stops.filter((s) => head.endsWith(s)).map((s) => end - s.length);
            if (starts.length > 0) expected = value.slice(0, Math.min(...starts));
          }
          if (expected !== undefined) {
            expect(stopped).toBe(true);
            expect(emitted).toBe(expected);
          } else {
            expect(stopped).toBe(false);
            expect(emitted + flushed).toBe(value);
          }
        }),
        { numRuns: 1000 },
      );
    });
  });
});
