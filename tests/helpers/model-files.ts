import { copyFile, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isCurrentDemoModel, writeDemoModel } from '../../server/model-maker/demo/demo-model.js';
import { SHAPE_PRESETS, writeShapeModel } from '../../server/model-maker/demo/shape-model.js';

const CACHE = path.join(os.tmpdir(), 'llm-stream-test-model-cache');

/** Model files the pool tests copy around: the demo model and the tiny shape model in two quantizations. */
export const MODEL_FILES = {
  demo: path.join(CACHE, 'demo.gguf'),
  /** The demo model written from another seed: a different file that behaves the same. */
  demoOtherSeed: path.join(CACHE, 'demo-seed2.gguf'),
  tinyF16: path.join(CACHE, 'tiny-f16.gguf'),
  tinyQ8: path.join(CACHE, 'tiny-q8.gguf'),
};

/** Writes the cached model files once per machine. */
export async function ensureModelFiles(): Promise<void> {
  await mkdir(CACHE, { recursive: true });
  // Demo models made by older code or from another corpus are written again.
  if (!(await isCurrentDemoModel(MODEL_FILES.demo))) await writeDemoModel(MODEL_FILES.demo, { seed: 1 });
  if (!(await isCurrentDemoModel(MODEL_FILES.demoOtherSeed))) await writeDemoModel(MODEL_FILES.demoOtherSeed, { seed: 2 });
  if (!existsSync(MODEL_FILES.tinyF16)) await writeShapeModel(MODEL_FILES.tinyF16, SHAPE_PRESETS.tiny, { quant: 'f16', seed: 1 });
  if (!existsSync(MODEL_FILES.tinyQ8)) await writeShapeModel(MODEL_FILES.tinyQ8, SHAPE_PRESETS.tiny, { quant: 'q8_0', seed: 2 });
}

/** Copies cached model files into `dir` under the given names (`name.gguf`). */
export async function placeModels(dir: string, files: Record<string, string>): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const [name, source] of Object.entries(files)) await copyFile(source, path.join(dir, `${name}.gguf`));
}
