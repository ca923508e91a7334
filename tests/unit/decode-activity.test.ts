import { describe, expect, it } from 'vitest';
import { DecodeActivity } from '../../server/engine/decode-activity.js';

const activity = (): DecodeActivity => new DecodeActivity({ chunkTokens: 16, soloChunkTokens: 512 });
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const later = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('DecodeActivity', () => {
  it('takes small prompt chunks while a sequence generates and whole batches when none does', () => {
    const a = activity();
    expect(a.chunkSize()).toBe(512);
    const leave = a.enter();
    expect(a.active).toBe(1);
    expect(a.chunkSize()).toBe(16);
    leave();
    leave();
    expect(a.active).toBe(0);
    expect(a.chunkSize()).toBe(512);
  });

  it('starts the next steps of all sequences together, once the slowest step of the last batch returned', async () => {
    const a = activity();
    const batches: string[][] = [];
    let current: string[] | undefined;
    const work = (label: string, ms: number) => async (): Promise<string> => {
      // Steps started in the same turn belong to one batch.
      if (!current) {
        current = [];
        batches.push(current);
        setImmediate(() => (current = undefined));
      }
      current.push(label);
      await later(ms);
      return label;
    };
    // Three sequences whose steps return at different times (as sampling does).
    const run = async (label: string, ms: number, steps: number): Promise<void> => {
      for (let i = 0; i < steps; i++) await a.step(work(label, ms));
    };
    await Promise.all([run('a', 1, 4), run('b', 8, 4), run('c', 3, 4)]);
    expect(batches).toHaveLength(4);
    for (const batch of batches) expect([...batch].sort()).toEqual(['a', 'b', 'c']);
  });

  it('passes a failed step\'s error to its caller and keeps serving the others', async () => {
    const a = activity();
    const failed = a.step(() => Promise.reject(new Error('decode failed')));
    const ok = a.step(async () => 'fine');
    await expect(failed).rejects.toThrow('decode failed');
    await expect(ok).resolves.toBe('fine');
    await turn();
    await expect(a.step(async () => 'next')).resolves.toBe('next');
  });

  it('starts a step at once when nothing is in flight', async () => {
    const a = activity();
    let started = false;
    const done = a.step(async () => {
      started = true;
    });
    await turn();
    expect(started).toBe(true);
    await done;
  });
});
