// Rebuilds the compiled server and the dashboard only when a source file is newer than the
// build, so `npm start` is quick after the first time and never serves stale code.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');

function newestMtime(target) {
  if (!existsSync(target)) return 0;
  const info = statSync(target);
  if (!info.isDirectory()) return info.mtimeMs;
  let newest = 0;
  for (const entry of readdirSync(target)) {
    if (entry === 'node_modules' || entry === 'dist') continue;
    newest = Math.max(newest, newestMtime(path.join(target, entry)));
  }
  return newest;
}

function buildIfStale(name, sources, output, command) {
  const outputTime = existsSync(output) ? statSync(output).mtimeMs : 0;
  const sourceTime = Math.max(...sources.map((source) => newestMtime(path.join(root, source))));
  if (outputTime >= sourceTime) return;
  console.error(`[start] building ${name}...`);
  execFileSync(process.execPath, command, { cwd: root, stdio: 'inherit' });
}

const bin = (pkg, file) => path.join(root, 'node_modules', pkg, file);
// `node scripts/build-if-stale.mjs dashboard` builds only the dashboard (what the browser tests need).
const only = process.argv[2];
if (only !== 'dashboard') buildIfStale('server', ['server', 'protocol', 'tsconfig.json', 'package.json'], path.join(root, 'dist/server/main.js'), [bin('typescript', 'bin/tsc'), '-p', 'tsconfig.json']);
if (existsSync(path.join(root, 'dashboard/index.html'))) {
  buildIfStale('dashboard', ['dashboard', 'protocol'], path.join(root, 'dashboard/dist/index.html'), [bin('vite', 'bin/vite.js'), 'build', 'dashboard']);
}
