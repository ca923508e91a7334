// Runs artillery.yml against a running service. Installs tests/load/ (artillery, kept out of the main
// install) on first use and builds dist/protocol for the engine. Refuses non-loopback targets
// unless --allow-remote is given: load tests are for your own hosts.
// Usage: npm run soak [-- --environment soak] [--target ws://127.0.0.1:8080] [--allow-remote]
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const args = process.argv.slice(2);
const allowRemote = args.includes('--allow-remote');
const passThrough = args.filter((arg) => arg !== '--allow-remote');
const targetIndex = passThrough.indexOf('--target');
const target = targetIndex >= 0 ? passThrough[targetIndex + 1] : 'ws://127.0.0.1:8080';
const host = new URL(target).hostname;
if (!allowRemote && !['127.0.0.1', 'localhost', '[::1]', '::1'].includes(host) && !host.startsWith('127.')) {
  console.error(`refusing to load-test ${host}: not loopback (pass --allow-remote for your own hosts)`);
  process.exit(2);
}
const env = { ...process.env, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: '1', NODE_PATH: path.join(root, 'tests/load/engines') };
if (!existsSync(path.join(root, 'tests/load/node_modules/.bin/artillery'))) {
  execFileSync('npm', ['ci', '--prefix', 'tests/load', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit', env });
}
execFileSync(process.execPath, ['scripts/build-if-stale.mjs'], { cwd: root, stdio: 'inherit' });
const result = spawnSync(path.join(root, 'tests/load/node_modules/.bin/artillery'), ['run', ...passThrough, 'artillery.yml'], { cwd: root, stdio: 'inherit', env });
process.exit(result.status ?? 1);
