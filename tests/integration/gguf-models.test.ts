import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getLlama, LlamaCompletion, readGgufFileInfo, type Llama, type LlamaModel } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { planBigramModel } from '../../server/model-maker/demo/bigram-model.js';
import { readCorpus } from '../../server/model-maker/demo/corpus.js';
import {
  DEMO_MODEL_FILE, DEMO_MULTIBYTE_EXPECTED, DEMO_MULTIBYTE_PROMPT, ensureDemoModel, writeDemoModel,
} from '../../server/model-maker/demo/demo-model.js';
import { SHAPE_PRESETS, shapeParameterCount, writeShapeModel } from '../../server/model-maker/demo/shape-model.js';
import { SpmTokenizer } from '../../server/model-maker/demo/spm-tokenizer.js';
import { float16BitsToNumber, float32ToFloat16Bits } from '../../server/model-maker/gguf/f16.js';
import { inspectGgufHeader } from '../../server/pool/gguf-header.js';
import { writeGgufFile } from '../../server/model-maker/gguf/gguf-writer.js';

let dir: string;
let llama: Llama;
let corpus: string;
const paths = { demo: '', tinyF16: '', tinyQ8: '' };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gguf-models-'));
  corpus = await readCorpus();
  paths.demo = join(dir, 'demo.gguf');
  paths.tinyF16 = join(dir, 'tiny-f16.gguf');
  paths.tinyQ8 = join(dir, 'tiny-q8_0.gguf');
  await writeDemoModel(paths.demo, { seed: 1 });
  await writeShapeModel(paths.tinyF16, SHAPE_PRESETS.tiny, { quant: 'f16', seed: 1 });
  await writeShapeModel(paths.tinyQ8, SHAPE_PRESETS.tiny, { quant: 'q8_0', seed: 1 });
  llama = await getLlama({ gpu: false });
});

afterAll(async () => {
  await llama?.dispose();
  await rm(dir, { recursive: true, force: true });
});

// Loads a model with a single-threaded context: more threads than cores makes llama.cpp crawl here.
async function withCompletion<T>(
  modelPath: string,
  use: (completion: LlamaCompletion, model: LlamaModel) => Promise<T>,
): Promise<T> {
  const model = await llama.loadModel({ modelPath });
  const context = await model.createContext({ contextSize: 1024, threads: 1 });
  try {
    return await use(new LlamaCompletion({ contextSequence: context.getSequence() }), model);
  } finally {
    await context.dispose();
    await model.dispose();
  }
}

function corpusWords(text: string): Set<string> {
  return new Set((text.toLowerCase().match(/\p{L}{3,}/gu) ?? []));
}

describe('GGUF writer', () => {
  it('round-trips every metadata type and tensor type through node-llama-cpp\'s reader', async () => {
    const path = join(dir, 'kinds.gguf');
    const summary = await writeGgufFile(path, {
      'test.string': { type: 'string', value: 'héllo 東京' },
      'test.uint32': { type: 'uint32', value: 4000000000 },
      'test.int32': { type: 'int32', value: -7 },
      'test.float32': { type: 'float32', value: 0.5 },
      'test.bool': { type: 'bool', value: true },
      'test.strings': { type: 'string[]', value: ['a', '▁b', ''] },
      'test.floats': { type: 'float32[]', value: [1.5, -2] },
      'test.ints': { type: 'int32[]', value: [1, -1] },
    }, [
      { name: 'a', dims: [3], type: 'f32', values: () => [new Float32Array([1, 2, 3])] },
      { name: 'b', dims: [5, 2], type: 'f16', values: () => [new Float32Array(4), new Float32Array(6)] },
      { name: 'c', dims: [64, 3], type: 'q8_0', values: () => [new Float32Array(128), new Float32Array(64)] },
    ]);
    expect(summary).toMatchObject({ tensorCount: 3, parameterCount: 3 + 10 + 192 });
    const info = await readGgufFileInfo(path, { readTensorInfo: true });
    const test = (info.metadata as unknown as { test: Record<string, unknown> }).test;
    expect(test).toEqual({
      string: 'héllo 東京', uint32: 4000000000, int32: -7, float32: 0.5, bool: true,
      strings: ['a', '▁b', ''], floats: [1.5, -2], ints: [1, -1],
    });
    const tensors = info.fullTensorInfo?.map((tensor) => [tensor.name, tensor.dimensions.map(Number), tensor.ggmlType]);
    expect(tensors).toEqual([['a', [3], 0], ['b', [5, 2], 1], ['c', [64, 3], 8]]);
    expect(info.fullTensorInfo?.every((tensor) => Number(tensor.offset) % 32 === 0)).toBe(true);
    // A tensor that yields the wrong number of values fails, and leaves no file behind.
    const broken = join(dir, 'broken.gguf');
    await expect(
      writeGgufFile(broken, {}, [{ name: 'x', dims: [4], type: 'f32', values: () => [new Float32Array(3)] }]),
    ).rejects.toThrow(/produced 3 values, expected 4/);
    expect((await readdir(dir)).filter((name) => name.startsWith('broken'))).toEqual([]);
  });

  it('converts to half precision with round-to-nearest-even', () => {
    expect(float32ToFloat16Bits(1)).toBe(0x3c00);
    expect(float32ToFloat16Bits(-2)).toBe(0xc000);
    expect(float32ToFloat16Bits(65504)).toBe(0x7bff);
    expect(float32ToFloat16Bits(1e6)).toBe(0x7c00);
    expect(float32ToFloat16Bits(2 ** -24)).toBe(0x0001);
    expect(float32ToFloat16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie goes to even
    expect(float32ToFloat16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(float16BitsToNumber(float32ToFloat16Bits(0.1))).toBeCloseTo(0.1, 3);
    expect(Number.isNaN(float16BitsToNumber(float32ToFloat16Bits(NaN)))).toBe(true);
  });
});

describe('demo model', () => {
  it('is a small valid llama GGUF', async () => {
    const header = await inspectGgufHeader(paths.demo);
    expect(header.fileSize).toBeLessThan(8 * 1024 * 1024);
    const info = await readGgufFileInfo(paths.demo);
    expect(info.metadata.general.architecture).toBe('llama');
    expect(info.metadata.tokenizer.ggml.model).toBe('llama');
  });

  it('counts its statistics with exactly the tokenization llama.cpp applies', async () => {
    const tokenizer = new SpmTokenizer(planBigramModel(corpus).vocab);
    const samples = [...corpus.split('\n\n').filter((paragraph) => /[^\x00-\x7f]/.test(paragraph)), corpus.slice(0, 3000)];
    expect(samples.length).toBeGreaterThan(3);
    const model = await llama.loadModel({ modelPath: paths.demo });
    try {
      for (const sample of samples) expect([...model.tokenize(sample)]).toEqual(tokenizer.tokenize(sample));
    } finally {
      await model.dispose();
    }
  });

  it('generates language-like text from the corpus when sampling', async () => {
    const { text, stopReason, tokens } = await withCompletion(paths.demo, async (completion) => {
      let tokens = 0;
      const { response, metadata } = await completion.generateCompletionWithMeta('Alice was', {
        maxTokens: 400, temperature: 0.8, seed: 42, onToken: (chunk) => (tokens += chunk.length),
      });
      return { text: response, stopReason: metadata.stopReason, tokens };
    });
    // EOS is practically never sampled, so generation runs to maxTokens.
    expect(stopReason).toBe('maxTokens');
    expect(tokens).toBe(400);
    const plain = [...text].filter((char) => /[\p{L}\s.,;:!?'"()\-—]/u.test(char)).length;
    expect(plain / [...text].length).toBeGreaterThanOrEqual(0.85);
    const known = corpusWords(corpus);
    const used = [...corpusWords(text)].filter((word) => known.has(word));
    expect(used.length).toBeGreaterThanOrEqual(15);
    expect(text).not.toContain('\uFFFD');
  });

  it('emits a multi-byte character spelled with byte-fallback tokens intact at temperature 0', async () => {
    const text = await withCompletion(paths.demo, (completion) =>
      completion.generateCompletion(DEMO_MULTIBYTE_PROMPT, { maxTokens: 20, temperature: 0 }),
    );
    expect(text).toContain(DEMO_MULTIBYTE_EXPECTED);
    expect(text).not.toContain('\uFFFD');
  });

  it('does not fall into a short loop at temperature 0', async () => {
    const text = await withCompletion(paths.demo, (completion) =>
      completion.generateCompletion('The Rabbit', { maxTokens: 300, temperature: 0 }),
    );
    const words = text.split(/\s+/).filter(Boolean);
    expect(new Set(words).size).toBeGreaterThan(40);
  });

  it('is byte-identical for the same seed and differs for another seed', async () => {
    const again = join(dir, 'demo-again.gguf');
    const other = join(dir, 'demo-other.gguf');
    await writeDemoModel(again, { seed: 1 });
    await writeDemoModel(other, { seed: 2 });
    const [first, second, third] = await Promise.all([paths.demo, again, other].map((path) => readFile(path)));
    expect(second!.equals(first!)).toBe(true);
    expect(third!.equals(first!)).toBe(false);
    expect(third!.length).toBe(first!.length);
  });
});

describe('shape models', () => {
  it.each([
    ['f16', () => paths.tinyF16],
    ['q8_0', () => paths.tinyQ8],
  ])('tiny %s loads and generates', async (quant, pathOf) => {
    const info = await readGgufFileInfo(pathOf(), { readTensorInfo: true });
    expect(info.metadata.llama?.block_count).toBe(SHAPE_PRESETS.tiny.layers);
    expect(info.metadata.general.file_type).toBe(quant === 'f16' ? 1 : 7);
    const { tokens, text } = await withCompletion(pathOf(), async (completion) => {
      let tokens = 0;
      const text = await completion.generateCompletion('Hello', {
        maxTokens: 64, temperature: 0.7, seed: 1, onToken: (chunk) => (tokens += chunk.length),
      });
      return { tokens, text };
    });
    // Random weights produce noise, and may even pick EOS early; what matters is that the forward pass runs.
    expect(tokens).toBeGreaterThan(0);
    expect(text.length).toBeGreaterThan(0);
  });

  it('is byte-identical for the same seed and differs for another seed', async () => {
    const again = join(dir, 'tiny-again.gguf');
    const other = join(dir, 'tiny-other.gguf');
    await writeShapeModel(again, SHAPE_PRESETS.tiny, { quant: 'f16', seed: 1 });
    await writeShapeModel(other, SHAPE_PRESETS.tiny, { quant: 'f16', seed: 2 });
    const [first, second, third] = await Promise.all([paths.tinyF16, again, other].map((path) => readFile(path)));
    expect(second!.equals(first!)).toBe(true);
    expect(third!.equals(first!)).toBe(false);
  });

  it('presets match the parameter counts of the models they stand in for', () => {
    expect(shapeParameterCount(SHAPE_PRESETS['135m']) / 1e6).toBeCloseTo(134.5, 0);
    expect(shapeParameterCount(SHAPE_PRESETS['1b']) / 1e9).toBeCloseTo(1.236, 2);
    expect(shapeParameterCount(SHAPE_PRESETS['100m']) / 1e6).toBeGreaterThan(90);
    expect(shapeParameterCount(SHAPE_PRESETS['100m']) / 1e6).toBeLessThan(130);
  });
});

describe('ensureDemoModel', () => {
  it('writes demo.gguf into an empty or missing directory, then leaves it alone', async () => {
    const modelsDir = join(dir, 'fresh', 'models');
    const first = await ensureDemoModel(modelsDir);
    expect(first).toEqual({ path: join(modelsDir, DEMO_MODEL_FILE), created: true });
    await expect(inspectGgufHeader(first.path)).resolves.toMatchObject({ version: 3 });
    const second = await ensureDemoModel(modelsDir);
    expect(second).toEqual({ path: first.path, created: false });
    expect(await readdir(modelsDir)).toEqual([DEMO_MODEL_FILE]);
  });

  it('writes nothing when the directory already holds a model', async () => {
    const modelsDir = join(dir, 'has-model');
    await mkdir(modelsDir);
    await writeFile(join(modelsDir, 'notes.txt'), 'not a model');
    await writeFile(join(modelsDir, 'Real.GGUF'), 'pretend model');
    const result = await ensureDemoModel(modelsDir);
    expect(result).toEqual({ path: join(modelsDir, 'Real.GGUF'), created: false });
    expect((await readdir(modelsDir)).sort()).toEqual(['Real.GGUF', 'notes.txt']);
  });
});
