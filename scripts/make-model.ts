import { parseArgs } from 'node:util';
import { writeDemoModel } from '../server/model-maker/demo/demo-model.js';
import {
  SHAPE_PRESETS, shapeParameterCount, writeShapeModel, type ShapeModelSpec, type ShapePresetName, type ShapeQuant,
} from '../server/model-maker/demo/shape-model.js';
import { GgufWriteError, type GgufWriteSummary } from '../server/model-maker/gguf/gguf-writer.js';
import { LlamaShapeError } from '../server/model-maker/gguf/llama-gguf.js';

const USAGE = `usage: tsx scripts/make-model.ts --preset demo|${Object.keys(SHAPE_PRESETS).join('|')} --out path.gguf
  [--quant f16|q8_0] [--seed N]
  shape overrides: [--layers N] [--embd N] [--ff N] [--heads N] [--kv-heads N] [--vocab N] [--ctx N]`;

class UsageError extends Error {
  override name = 'UsageError';
}

const SHAPE_OVERRIDES = {
  layers: 'layers', embd: 'embd', ff: 'ff', heads: 'heads', 'kv-heads': 'kvHeads', vocab: 'vocabSize', ctx: 'contextLength',
} as const satisfies Record<string, keyof ShapeModelSpec>;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      preset: { type: 'string' },
      out: { type: 'string' },
      quant: { type: 'string', default: 'f16' },
      seed: { type: 'string', default: '1' },
      help: { type: 'boolean', short: 'h' },
      layers: { type: 'string' },
      embd: { type: 'string' },
      ff: { type: 'string' },
      heads: { type: 'string' },
      'kv-heads': { type: 'string' },
      vocab: { type: 'string' },
      ctx: { type: 'string' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const preset = values.preset;
  const out = values.out;
  if (preset === undefined || out === undefined) throw new UsageError('--preset and --out are required');
  const seed = parsePositiveInt('seed', values.seed, true);
  const quant = values.quant;
  if (quant !== 'f16' && quant !== 'q8_0') throw new UsageError(`--quant must be f16 or q8_0, got ${quant}`);
  const overrides = (Object.keys(SHAPE_OVERRIDES) as (keyof typeof SHAPE_OVERRIDES)[]).flatMap((flag) => {
    const text = values[flag];
    return text === undefined ? [] : [{ flag, field: SHAPE_OVERRIDES[flag], text }];
  });

  const started = performance.now();
  let summary: GgufWriteSummary;
  if (preset === 'demo') {
    if (overrides.length > 0) throw new UsageError('the demo preset takes no shape overrides');
    summary = await writeDemoModel(out, { seed });
  } else if (preset in SHAPE_PRESETS) {
    const spec: ShapeModelSpec = { ...SHAPE_PRESETS[preset as ShapePresetName] };
    for (const { flag, field, text } of overrides) spec[field] = parsePositiveInt(flag, text);
    console.log(`writing ${preset} (${describe(spec)}, ${quant}, ~${formatCount(shapeParameterCount(spec))} params)...`);
    summary = await writeShapeModel(out, spec, { quant: quant as ShapeQuant, seed, name: `shape-${preset}-${quant}` });
  } else {
    throw new UsageError(`unknown preset ${preset}`);
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(
    `wrote ${summary.path}: ${formatCount(summary.parameterCount)} params, ${summary.tensorCount} tensors, ` +
      `${(summary.bytes / 1024 / 1024).toFixed(1)} MiB in ${seconds.toFixed(1)} s`,
  );
}

function parsePositiveInt(flag: string, text: string, allowZero = false): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < (allowZero ? 0 : 1)) throw new UsageError(`--${flag} must be an integer, got ${text}`);
  return value;
}

function describe(spec: ShapeModelSpec): string {
  return `${spec.layers} layers, embd ${spec.embd}, ff ${spec.ff}, heads ${spec.heads}/${spec.kvHeads}, vocab ${spec.vocabSize}, ctx ${spec.contextLength}`;
}

function formatCount(count: number): string {
  if (count >= 1e9) return `${(count / 1e9).toFixed(2)}B`;
  if (count >= 1e6) return `${(count / 1e6).toFixed(1)}M`;
  return `${(count / 1e3).toFixed(1)}K`;
}

main().catch((error: unknown) => {
  if (error instanceof UsageError) console.error(`${error.message}\n${USAGE}`);
  else if (error instanceof LlamaShapeError || error instanceof GgufWriteError) console.error(error.message);
  else console.error(error);
  process.exitCode = 1;
});
