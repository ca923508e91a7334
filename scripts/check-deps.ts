/**
 * Fails when an import points against the layers of the service, closes a cycle, or brings in a
 * package that only one layer may use (uWebSockets.js, node-llama-cpp).
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
  ['server/auth', 'server/scheduling', 'server/engine', 'server/shared-limits'],
  ['server/tokenize', 'server/cache', 'server/chat'],
  ['server/pool'],
  ['server/gateway'],
  ['server/http', 'server/openai'],
  ['server/app.ts', 'server/main.ts'],
];

/** Packages only these places may import: the rest of the service sees them through their interfaces. */
const PACKAGE_OWNERS: Record<string, readonly string[]> = {
  'uWebSockets.js': ['server/transport/uws-server.ts'],
  'node-llama-cpp': ['server/engine', 'server/tokenize', 'server/pool', 'server/chat'],
  ioredis: ['server/shared-limits'],
};

const ROOT = path.resolve(import.meta.dirname, '..');
const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|(?:^|\n)\s*import\s+['"]([^'"]+)['"]/g;

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return filesUnder(full);
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [full] : [];
  });
}

function layerOf(file: string): number {
  const relative = relativeName(file);
  const index = LAYERS.findIndex((layer) => layer.some((entry) => relative === entry || relative.startsWith(`${entry}/`)));
  if (index < 0) throw new Error(`${relative} belongs to no layer: add it to LAYERS in scripts/check-deps.ts`);
  return index;
}

const relativeName = (file: string): string => path.relative(ROOT, file).split(path.sep).join('/');
const problems: string[] = [];

/** The project files a file imports (relative specifiers; `.js` written, `.ts` on disk); checks package owners on the way. */
function importsOf(file: string): string[] {
  const source = readFileSync(file, 'utf8');
  const targets: string[] = [];
  for (const match of source.matchAll(IMPORT)) {
    const specifier = match[1] ?? match[2] ?? match[3]!;
    if (!specifier.startsWith('.')) {
      const owners = PACKAGE_OWNERS[specifier];
      const relative = relativeName(file);
      if (owners && !owners.some((owner) => relative === owner || relative.startsWith(`${owner}/`))) problems.push(`${relative} imports ${specifier}, which only ${owners.join(', ')} may import`);
      continue;
    }
    targets.push(path.resolve(path.dirname(file), specifier.replace(/\.js$/, '.ts')));
  }
  return targets;
}

const files = [...filesUnder(path.join(ROOT, 'protocol')), ...filesUnder(path.join(ROOT, 'server'))];
const graph = new Map(files.map((file) => [file, importsOf(file)]));
const name = relativeName;

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
