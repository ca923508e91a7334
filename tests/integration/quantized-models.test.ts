import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getLlama, LlamaCompletion, readGgufFileInfo, type Llama, type LlamaModel } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeDemoModel } from '../../server/model-maker/demo/demo-model.js';
import { SHAPE_PRESETS, writeShapeModel } from '../../server/model-maker/demo/shape-model.js';
import { llamaTensorSlots, type LlamaWeightType } from '../../server/model-maker/gguf/llama-gguf.js';

const TYPES: readonly LlamaWeightType[] = ['f16', 'q8_0', 'q4_0'];
const FILE_TYPE = { f16: 1, q8_0: 7, q4_0: 2 } as const;
const GGML_TYPE = { f32: 0, f16: 1, q4_0: 2, q8_0: 8 } as const;
const PROMPTS = ['Alice was beginning to get', 'The Rabbit', 'It is a truth', 'In the beginning', 'Holmes', 'She said'];

let dir: string;
let llama: Llama;
const tiny = {} as Record<LlamaWeightType | 'otherSeed', { path: string; bytes: number }>;
const demo = {} as Record<'f16' | 'q8_0', { path: string; bytes: number }>;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'quantized-models-'));
  for (const type of TYPES) {
    const path = join(dir, `tiny-${type}.gguf`);
    tiny[type] = { path, bytes: (await writeShapeModel(path, SHAPE_PRESETS.tiny, { quant: type, seed: 1 })).bytes };
  }
  const otherSeed = join(dir, 'tiny-f16-seed2.gguf');
  tiny.otherSeed = { path: otherSeed, bytes: (await writeShapeModel(otherSeed, SHAPE_PRESETS.tiny, { quant: 'f16', seed: 2 })).bytes };
  for (const type of ['f16', 'q8_0'] as const) {
    const path = join(dir, `demo-${type}.gguf`);
    demo[type] = { path, bytes: (await writeDemoModel(path, { seed: 1, type })).bytes };
  }
  llama = await getLlama({ gpu: false });
});

afterAll(async () => {
  await llama?.dispose();
  await rm(dir, { recursive: true, force: true });
});

async function withModel<T>(path: string, use: (model: LlamaModel) => Promise<T>): Promise<T> {
  const model = await llama.loadModel({ modelPath: path });
  try {
    return await use(model);
  } finally {
    await model.dispose();
  }
}

/** Natural-log probabilities of every next token after each prompt (no sampling filter), one map per prompt. */
async function nextTokenLogProbs(path: string, prompts: readonly string[]): Promise<Map<number, number>[]> {
  return withModel(path, async (model) => {
    const context = await model.createContext({ contextSize: 256, threads: 1 });
    try {
      const results: Map<number, number>[] = [];
      const sequence = context.getSequence();
      for (const prompt of prompts) {
        await sequence.clearHistory();
        const tokens = model.tokenize(prompt, true);
        const output = await sequence.controlledEvaluate([
          ...tokens.slice(0, -1),
          [tokens.at(-1)!, { generateNext: { probabilities: true, options: { temperature: 1, topK: 0, topP: 1, minP: 0 } } }],
        ]);
        const probabilities = output.at(-1)?.next?.probabilities ?? new Map<number, number>();
        results.push(new Map([...probabilities].map(([token, p]) => [token as number, Math.log(p)])));
      }
      return results;
    } finally {
      await context.dispose();
    }
  });
}

/** Pearson correlation of two log-probability maps over the tokens either gives a non-negligible probability. */
function correlation(a: Map<number, number>, b: Map<number, number>): number {
  const tokens = [...new Set([...a.keys(), ...b.keys()])].filter((token) => (a.get(token) ?? -Infinity) > -25 || (b.get(token) ?? -Infinity) > -25);
  const xs = tokens.map((token) => a.get(token) ?? -30);
  const ys = tokens.map((token) => b.get(token) ?? -30);
  const mean = (values: number[]) => values.reduce((sum, value) => sum + value, 0) / values.length;
  const [mx, my] = [mean(xs), mean(ys)];
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < xs.length; i++) {
    sxy += (xs[i]! - mx) * (ys[i]! - my);
    sxx += (xs[i]! - mx) ** 2;
    syy += (ys[i]! - my) ** 2;
  }
  return sxy / Math.sqrt(sxx * syy);
}

const topToken = (logProbs: Map<number, number>) => [...logProbs].reduce((best, entry) => (entry[1] > best[1] ? entry : best))[0];

describe('quantized shape models', () => {
  it('record the file type, and store norms in f32 and every matrix in the chosen type', async () => {
    for (const type of TYPES) {
      const info = await readGgufFileInfo(tiny[type].path, { readTensorInfo: true });
      expect(info.metadata.general.file_type).toBe(FILE_TYPE[type]);
      for (const tensor of info.fullTensorInfo ?? []) {
        expect([tensor.name, tensor.ggmlType]).toEqual([tensor.name, tensor.dimensions.length === 1 ? GGML_TYPE.f32 : GGML_TYPE[type]]);
      }
    }
  });

  it('shrink by the block sizes: 2 bytes a weight in f16, 34/32 in q8_0, 18/32 in q4_0', () => {
    const spec = SHAPE_PRESETS.tiny;
    const matrixValues = llamaTensorSlots(spec, spec.vocabSize, spec.tiedOutput)
      .filter((slot) => slot.dims.length > 1)
      .reduce((sum, slot) => sum + slot.dims.reduce((product, dim) => product * dim, 1), 0);
    // The headers and the f32 norms are the same in all three files, so the differences are the matrices alone.
    expect(tiny.f16.bytes - tiny.q8_0.bytes).toBe((matrixValues * (64 - 34)) / 32);
    expect(tiny.q8_0.bytes - tiny.q4_0.bytes).toBe((matrixValues * (34 - 18)) / 32);
  });

  it.each(TYPES)('%s loads in node-llama-cpp and generates', async (type) => {
    const tokens = await withModel(tiny[type].path, async (model) => {
      const context = await model.createContext({ contextSize: 256, threads: 1 });
      try {
        let count = 0;
        await new LlamaCompletion({ contextSequence: context.getSequence() }).generateCompletion('Hello', {
          maxTokens: 24, temperature: 0.7, seed: 1, onToken: (chunk) => (count += chunk.length),
        });
        return count;
      } finally {
        await context.dispose();
      }
    });
    expect(tokens).toBeGreaterThan(0);
  });

  it('predict what the f16 model predicts, as llama.cpp dequantizes the blocks', async () => {
    const prompts = PROMPTS.slice(0, 2);
    const f16 = await nextTokenLogProbs(tiny.f16.path, prompts);
    const q8 = await nextTokenLogProbs(tiny.q8_0.path, prompts);
    const q4 = await nextTokenLogProbs(tiny.q4_0.path, prompts);
    const other = await nextTokenLogProbs(tiny.otherSeed.path, prompts);
    for (let prompt = 0; prompt < prompts.length; prompt++) {
      expect(correlation(f16[prompt]!, q8[prompt]!)).toBeGreaterThan(0.999);
      expect(correlation(f16[prompt]!, q4[prompt]!)).toBeGreaterThan(0.95);
      // Other weights of the same shape: the measure tells models apart.
      expect(correlation(f16[prompt]!, other[prompt]!)).toBeLessThan(0.5);
    }
  });

  it('refuse rows that are not whole blocks before writing anything', async () => {
    const path = join(dir, 'odd.gguf');
    const odd = { ...SHAPE_PRESETS.tiny, ff: 100 };
    await expect(writeShapeModel(path, odd, { quant: 'q4_0' })).rejects.toThrow('q4_0 stores weights in blocks of 32 values: ff (100) must be a multiple of 32');
    await expect(writeShapeModel(path, { ...odd, embd: 48, heads: 4 }, { quant: 'q8_0' })).rejects.toThrow(/embd \(48\), ff \(100\), heads x head width \(48\) must be multiples of 32/);
    expect((await readdir(dir)).filter((name) => name.startsWith('odd'))).toEqual([]);
    // f16 has no blocks: the same shape is fine.
    await expect(writeShapeModel(path, odd, { quant: 'f16' })).resolves.toMatchObject({ path });
  });
});

describe('the demo model in q8_0', () => {
  it('is smaller than in f16 and says so in its file type', async () => {
    expect(demo.q8_0.bytes).toBeLessThan(demo.f16.bytes * 0.6);
    expect((await readGgufFileInfo(demo.q8_0.path)).metadata.general.file_type).toBe(FILE_TYPE.q8_0);
    expect((await readGgufFileInfo(demo.f16.path)).metadata.general.file_type).toBe(FILE_TYPE.f16);
  });

  it('predicts nearly what the f16 demo model predicts', async () => {
    const f16 = await nextTokenLogProbs(demo.f16.path, PROMPTS);
    const q8 = await nextTokenLogProbs(demo.q8_0.path, PROMPTS);
    let sameGreedy = 0;
    for (let prompt = 0; prompt < PROMPTS.length; prompt++) {
      expect(correlation(f16[prompt]!, q8[prompt]!)).toBeGreaterThan(0.98);
      if (topToken(f16[prompt]!) === topToken(q8[prompt]!)) sameGreedy++;
    }
    // Quantizing the log-probabilities moves them by a few hundredths of a nat: near ties may swap, no more.
    expect(sameGreedy).toBeGreaterThanOrEqual(PROMPTS.length - 2);
  });
});
