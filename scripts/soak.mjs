// Runs artillery.yml against a running service. Installs tests/load/ (artillery, kept out of the main
// install) on first use and builds dist/protocol for the engine. Refuses non-loopback targets
// unless --allow-remote is given: load tests are for your own hosts. See USAGE.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

const USAGE = `Usage: npm run soak [-- options]

Runs the artillery scenario artillery.yml (chat turns, cancels, idle pings; msgpack over the
project's own client) against a running service. Installs tests/load/ on first use.

Options:
  --environment soak   the 11-minute soak phases instead of the 45-second default
  --target URL         the service: http://host:port or ws://host:port (default ws://127.0.0.1:8080)
  --allow-remote       allow a target that is not loopback (only your own hosts)
  -h, --help           print this and exit
  Other options go to "artillery run" as they are.

Environment:
  PORT                 without --target: the service at ws://127.0.0.1:PORT
  LLM_API_KEY          API key for a service that needs one (KEYS_FILE set)
`;

const root = path.resolve(import.meta.dirname, '..');
const args = process.argv.slice(2);
if (args.includes('--help') || args.includes('-h')) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const allowRemote = args.includes('--allow-remote');
const passThrough = args.filter((arg) => arg !== '--allow-remote');
let targetIndex = passThrough.indexOf('--target');
if (targetIndex < 0) {
  targetIndex = passThrough.push('--target', process.env.PORT ? `ws://127.0.0.1:${process.env.PORT}` : 'ws://127.0.0.1:8080') - 2;
}
// The engine appends /v1/stream to a ws:// origin; an http:// one is the same service.
const targetUrl = new URL(passThrough[targetIndex + 1] ?? '');
const target = `${targetUrl.protocol.replace('http', 'ws')}//${targetUrl.host}`;
passThrough[targetIndex + 1] = target;
const host = targetUrl.hostname;
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
