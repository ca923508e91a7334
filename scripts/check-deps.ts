/**
 * Fails when an import points against the layers of the service or closes a cycle.
 *
 * Layers, lowest first: a file may import files of its own layer or a lower one, never a higher
 * one; and no file may reach itself again through its imports (type-only imports count too: a
 * cycle of types is still two files that cannot be understood apart).
 * Usage: node --import tsx scripts/check-deps.ts
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

const LAYERS: readonly (readonly string[])[] = [
  ['protocol'],
  ['server/errors.ts', 'server/transport', 'server/limits', 'server/model-maker'],
  ['server/config'],
  ['server/telemetry'],
  ['server/auth', 'server/scheduling', 'server/engine'],
  ['server/tokenize', 'server/cache'],
  ['server/pool'],
  ['server/gateway'],
  ['server/http'],
  ['server/app.ts', 'server/main.ts'],
];

const ROOT = path.resolve(import.meta.dirname, '..');
const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return filesUnder(full);
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [full] : [];
  });
}

function layerOf(file: string): number {
  const relative = path.relative(ROOT, file).split(path.sep).join('/');
  const index = LAYERS.findIndex((layer) => layer.some((entry) => relative === entry || relative.startsWith(`${entry}/`)));
  if (index < 0) throw new Error(`${relative} belongs to no layer: add it to LAYERS in scripts/check-deps.ts`);
  return index;
}

/** The project files a file imports (relative specifiers only; `.js` written, `.ts` on disk). */
function importsOf(file: string): string[] {
  const source = readFileSync(file, 'utf8');
  const targets: string[] = [];
  for (const match of source.matchAll(IMPORT)) {
    const specifier = match[1] ?? match[2]!;
    if (!specifier.startsWith('.')) continue;
    targets.push(path.resolve(path.dirname(file), specifier.replace(/\.js$/, '.ts')));
  }
  return targets;
}

const files = [...filesUnder(path.join(ROOT, 'protocol')), ...filesUnder(path.join(ROOT, 'server'))];
const graph = new Map(files.map((file) => [file, importsOf(file)]));
const name = (file: string): string => path.relative(ROOT, file);
const problems: string[] = [];

for (const [file, targets] of graph) {
  for (const target of targets) {
    if (!graph.has(target)) {
      problems.push(`${name(file)} imports ${name(target)}, which is outside protocol/ and server/ or missing`);
      continue;
    }
    if (layerOf(target) > layerOf(file)) problems.push(`${name(file)} (layer ${layerOf(file)}) imports ${name(target)} (layer ${layerOf(target)}), a higher layer`);
  }
}

// Cycles: depth-first search with colours; each back edge is one cycle, reported once.
const state = new Map<string, 'visiting' | 'done'>();
const stack: string[] = [];
function visit(file: string): void {
  state.set(file, 'visiting');
  stack.push(file);
  for (const target of graph.get(file) ?? []) {
    if (!graph.has(target)) continue;
    if (state.get(target) === 'visiting') problems.push(`import cycle: ${[...stack.slice(stack.indexOf(target)), target].map(name).join(' -> ')}`);
    else if (!state.has(target)) visit(target);
  }
  stack.pop();
  state.set(file, 'done');
}
for (const file of graph.keys()) if (!state.has(file)) visit(file);

if (problems.length > 0) {
  console.error(`dependency check failed:\n${problems.map((problem) => `  ${problem}`).join('\n')}`);
  process.exit(1);
}
console.log(`dependency check: ${graph.size} files, ${[...graph.values()].reduce((sum, targets) => sum + targets.length, 0)} imports, layers and cycles ok`);
