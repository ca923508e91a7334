import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChatCorpusError, IM_END, IM_START, parseChatCorpus, renderChatML } from '../../server/model-maker/demo/chatml.js';
import { readChatCorpus } from '../../server/model-maker/demo/corpus.js';
import { readGgufHeadStrings } from '../../server/model-maker/gguf/gguf-strings.js';
import { writeGgufFile } from '../../server/model-maker/gguf/gguf-writer.js';

const turn = (role: string, content: string) => `${IM_START}${role}\n${content}${IM_END}\n`;

describe('parseChatCorpus', () => {
  it('reads conversations separated by blank lines, and renders them back byte for byte', () => {
    const first = turn('system', 'Be brief.') + turn('user', 'Hi!') + turn('assistant', 'Hello.\nHow are you?');
    const second = turn('user', 'Bye.') + turn('assistant', 'Goodbye!');
    const conversations = parseChatCorpus(`${first}\n${second}`);
    expect(conversations).toEqual([
      [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi!' }, { role: 'assistant', content: 'Hello.\nHow are you?' }],
      [{ role: 'user', content: 'Bye.' }, { role: 'assistant', content: 'Goodbye!' }],
    ]);
    expect(conversations.map(renderChatML)).toEqual([first, second]);
  });

  it.each([
    ['text outside a turn', `hello\n${turn('user', 'Hi')}${turn('assistant', 'Hello')}`, /malformed ChatML at line 1/],
    ['an unknown role', turn('tool', 'x') + turn('assistant', 'y'), /malformed ChatML/],
    ['a missing end marker', `${IM_START}user\nHi\n${turn('assistant', 'Hello')}`, /holds a marker/],
    ['an empty message', turn('user', '') + turn('assistant', 'Hello'), /line 1 is empty, padded or holds a marker/],
    ['a padded message', turn('user', ' Hi') + turn('assistant', 'Hello'), /padded/],
    ['a conversation that ends with the user', `${turn('user', 'Hi')}${turn('assistant', 'Hello')}\n${turn('user', 'Still there?')}`, /conversation 2 does not end with an assistant reply/],
  ])('refuses %s', (_name, text, message) => {
    expect(() => parseChatCorpus(text)).toThrow(ChatCorpusError);
    expect(() => parseChatCorpus(text)).toThrow(message);
  });

  it('accepts the repository corpus: many conversations, some with several turns, all ending with a reply', async () => {
    const conversations = parseChatCorpus(await readChatCorpus());
    expect(conversations.length).toBeGreaterThanOrEqual(40);
    expect(conversations.filter((messages) => messages.length > 3).length).toBeGreaterThanOrEqual(3);
    expect(conversations.every((messages) => messages.at(-1)!.role === 'assistant')).toBe(true);
  });
});

describe('readGgufHeadStrings', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gguf-strings-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('finds string values behind values of every kind, and skips keys it was not asked for or that are not strings', async () => {
    const path = join(dir, 'kinds.gguf');
    await writeGgufFile(path, {
      'a.uint32': { type: 'uint32', value: 7 },
      'a.strings': { type: 'string[]', value: ['x', 'yy', ''] },
      'a.floats': { type: 'float32[]', value: [1, 2, 3] },
      'a.bool': { type: 'bool', value: true },
      'general.name': { type: 'string', value: 'named' },
      'general.version': { type: 'uint32', value: 2 },
      'a.ints': { type: 'int32[]', value: [1] },
      'general.description': { type: 'string', value: 'héllo' },
    }, [{ name: 't', dims: [2], type: 'f32', values: () => [new Float32Array(2)] }]);
    expect(await readGgufHeadStrings(path, ['general.name', 'general.version', 'general.description', 'missing'])).toEqual({
      'general.name': 'named', 'general.description': 'héllo',
    });
  });

  it('answers nothing for a file that is not GGUF, and what it found before a head that is cut short', async () => {
    const notGguf = join(dir, 'not.gguf');
    await writeFile(notGguf, 'plain text, not a model');
    expect(await readGgufHeadStrings(notGguf, ['general.name'])).toEqual({});
    const long = join(dir, 'long.gguf');
    await writeGgufFile(long, {
      'general.name': { type: 'string', value: 'first' },
      'a.big': { type: 'string[]', value: Array.from({ length: 20_000 }, (_, i) => `piece-${i}`) },
      'general.version': { type: 'string', value: 'beyond 64 KiB' },
    }, [{ name: 't', dims: [2], type: 'f32', values: () => [new Float32Array(2)] }]);
    expect(await readGgufHeadStrings(long, ['general.name', 'general.version'])).toEqual({ 'general.name': 'first' });
  });
});
