import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { ensureDemoModel } from '../../server/model-maker/demo/demo-model.js';
import { SHAPE_PRESETS, writeShapeModel, type ShapePresetName, type ShapeQuant } from '../../server/model-maker/demo/shape-model.js';

/** Where benchmarks keep the models they generate. */
export const BENCH_DIR = path.resolve('bench-results');

/**
 * A models folder holding just one model: the demo model, or a shape-equivalent preset
 * (`100m`, `135m`, `1b`, `tiny`) written once and reused.
 */
export async function benchModelDir(name: string, quant: ShapeQuant = 'f16'): Promise<string> {
  const dir = path.join(BENCH_DIR, 'models', name === 'demo' ? 'demo' : `${name}-${quant}`);
  if (name === 'demo') {
    await ensureDemoModel(dir);
    return dir;
  }
  const spec = SHAPE_PRESETS[name as ShapePresetName];
  if (!spec) throw new Error(`unknown model preset ${name} (demo, ${Object.keys(SHAPE_PRESETS).join(', ')})`);
  const file = path.join(dir, `${name}.gguf`);
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true });
    console.error(`writing the ${name} shape-equivalent model (${quant}) to ${file}...`);
    await writeShapeModel(file, spec, { quant, seed: 1 });
  }
  return dir;
}
