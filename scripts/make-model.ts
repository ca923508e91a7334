import { parseArgs } from 'node:util';
import { writeDemoModel } from '../server/model-maker/demo/demo-model.js';
import {
  checkShapeFitsType, SHAPE_PRESETS, shapeParameterCount, writeShapeModel, type ShapeModelSpec, type ShapePresetName,
} from '../server/model-maker/demo/shape-model.js';
import { GgufWriteError, type GgufWriteSummary } from '../server/model-maker/gguf/gguf-writer.js';
import { LLAMA_WEIGHT_TYPES, LlamaShapeError, type LlamaWeightType } from '../server/model-maker/gguf/llama-gguf.js';

const USAGE = `usage: tsx scripts/make-model.ts --preset demo|${Object.keys(SHAPE_PRESETS).join('|')} --out path.gguf
  [--type ${LLAMA_WEIGHT_TYPES.join('|')}] [--seed N]
  shape overrides: [--layers N] [--embd N] [--ff N] [--heads N] [--kv-heads N] [--vocab N] [--ctx N]
--type stores the 2-D weight matrices in f16 or in ggml's q8_0 / q4_0 blocks (norms stay f32); q8_0 and q4_0 need
  embd, ff and heads x head width to be multiples of 32. Shape models default to f16. The demo model defaults to
  q8_0 with an f16 output matrix; with q4_0 its output matrix stays q8_0. (--quant is the old name of --type.)`;

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
      type: { type: 'string' },
      quant: { type: 'string' },
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
  const type = parseType(values.type, values.quant);
  const overrides = (Object.keys(SHAPE_OVERRIDES) as (keyof typeof SHAPE_OVERRIDES)[]).flatMap((flag) => {
    const text = values[flag];
    return text === undefined ? [] : [{ flag, field: SHAPE_OVERRIDES[flag], text }];
  });

  const started = performance.now();
  let summary: GgufWriteSummary;
  if (preset === 'demo') {
    if (overrides.length > 0) throw new UsageError('the demo preset takes no shape overrides');
    summary = await writeDemoModel(out, { seed, ...(type !== undefined && { type }) });
  } else if (preset in SHAPE_PRESETS) {
    const spec: ShapeModelSpec = { ...SHAPE_PRESETS[preset as ShapePresetName] };
    for (const { flag, field, text } of overrides) spec[field] = parsePositiveInt(flag, text);
    const quant = type ?? 'f16';
    checkShapeFitsType(spec, quant);
    console.log(`writing ${preset} (${describe(spec)}, ${quant}, ~${formatCount(shapeParameterCount(spec))} params)...`);
    summary = await writeShapeModel(out, spec, { quant, seed, name: `shape-${preset}-${quant}` });
  } else {
    throw new UsageError(`unknown preset ${preset}`);
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(
    `wrote ${summary.path}: ${formatCount(summary.parameterCount)} params, ${summary.tensorCount} tensors, ` +
      `${(summary.bytes / 1024 / 1024).toFixed(1)} MiB in ${seconds.toFixed(1)} s`,
  );
}

function parseType(type: string | undefined, quant: string | undefined): LlamaWeightType | undefined {
  if (type !== undefined && quant !== undefined && type !== quant) throw new UsageError(`--type ${type} and --quant ${quant} disagree`);
  const chosen = type ?? quant;
  if (chosen === undefined) return undefined;
  if (!(LLAMA_WEIGHT_TYPES as readonly string[]).includes(chosen)) {
    throw new UsageError(`--type must be one of ${LLAMA_WEIGHT_TYPES.join(', ')}, got ${chosen}`);
  }
  return chosen as LlamaWeightType;
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
