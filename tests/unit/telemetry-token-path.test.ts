import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');
const module = (file: string): string => pathToFileURL(path.join(ROOT, file)).href;
const TOKENS = 3_000_000;

/*
 * Runs the per-token and per-frame hooks millions of times in a fresh process with a 1 MB young
 * generation and --trace-gc, and counts the collections between two markers: 16 bytes per token
 * would show about 48 of them. The first token (time to first token, observed once per request
 * through prom-client) and JIT compilation happen in the warm-up, before the markers.
 */
function collectionsPerRun(step: string): number {
  const probe = `
import { Observability } from '${module('server/telemetry/observability.ts')}';
import { createLogger } from '${module('server/telemetry/logger.ts')}';
const obs = new Observability({ metrics: true, feedHistoryS: 10, models: () => [], connections: () => 0, logger: createLogger('silent') });
const telemetry = obs.telemetry;
const request = telemetry.request('demo', 'a', { session: 's', remoteAddress: '::1', keyName: 'anonymous' });
request.started(1);
let t = 0;
function run(n) { for (let i = 0; i < n; i++) { ${step} } }
for (let j = 0; j < 30; j++) run(10000);
console.log('MARK-START');
run(${TOKENS});
console.log('MARK-END');
obs.stop();
`;
  const output = execFileSync(process.execPath, ['--import', 'tsx', '--trace-gc', '--max-semi-space-size=1', '--input-type=module', '-e', probe], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 30_000,
  });
  expect(output).toContain('MARK-END');
  return output.slice(output.indexOf('MARK-START'), output.indexOf('MARK-END')).match(/Scavenge|Mark-Compact/g)?.length ?? 0;
}

describe('token path', () => {
  it('updates every per-token and per-frame metric without allocating', () => {
    // Integer times are small integers for V8: no boxed number even where the call is not inlined.
    expect(collectionsPerRun('request.tokenAt(++t); telemetry.frameOut(24); telemetry.frameIn(30);')).toBeLessThanOrEqual(2);
  });

  it('allocates no more than the clock reading itself with the real clock', () => {
    // performance.now() boxes its result in Node 20 (16 bytes per call); that and nothing more.
    const collections = collectionsPerRun('request.token(); telemetry.frameOut(24);');
    expect(collections).toBeLessThanOrEqual(Math.ceil((TOKENS * 16) / (1024 * 1024)) + 4);
  });
});
