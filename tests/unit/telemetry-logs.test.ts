import { existsSync, mkdtempSync, readFileSync, readdirSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../server/config/config.js';
import { configSummary } from '../../server/telemetry/config-summary.js';
import { attachLogFiles, createLogger } from '../../server/telemetry/logger.js';
import { RotatingFile } from '../../server/telemetry/rotating-file.js';

const tempDir = (): string => mkdtempSync(path.join(os.tmpdir(), 'telemetry-logs-'));
const linesOf = (file: string): string[] => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : []);

describe('RotatingFile', () => {
  it('rotates before a line would pass the size limit and keeps the newest files only', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'app.log');
    const rotating = new RotatingFile({ file, maxBytes: 1000, keep: 2 });
    const line = (i: number): string => `${JSON.stringify({ i, pad: 'x'.repeat(80) })}\n`;
    const size = Buffer.byteLength(line(10));
    for (let i = 10; i < 60; i++) rotating.write(line(i));
    await rotating.close();

    expect(readdirSync(dir).sort()).toEqual(['app.log', 'app.log.1', 'app.log.2']);
    const perFile = Math.floor(1000 / size);
    for (const name of ['app.log.1', 'app.log.2']) {
      expect(statSync(path.join(dir, name)).size).toBe(perFile * size);
    }
    // Whole lines only, in order across the kept files, ending with the last one written.
    const kept = [...linesOf(`${file}.2`), ...linesOf(`${file}.1`), ...linesOf(file)].map((text) => (JSON.parse(text) as { i: number }).i);
    expect(kept.at(-1)).toBe(59);
    expect(kept).toEqual(Array.from({ length: kept.length }, (_, k) => 59 - kept.length + 1 + k));
    expect(kept.length).toBe(2 * perFile + (50 % perFile || perFile));
  });

  it('continues the live file across restarts, counting what it already holds', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'access.log');
    const first = new RotatingFile({ file, maxBytes: 100, keep: 1 });
    first.write(`${'a'.repeat(59)}\n`);
    await first.close();
    const second = new RotatingFile({ file, maxBytes: 100, keep: 1 });
    expect(second.bytes).toBe(60);
    second.write(`${'b'.repeat(59)}\n`);
    await second.close();
    expect(linesOf(`${file}.1`)).toEqual(['a'.repeat(59)]);
    expect(linesOf(file)).toEqual(['b'.repeat(59)]);
  });

  it('with keep 0 drops the full file', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'x.log');
    const rotating = new RotatingFile({ file, maxBytes: 10, keep: 0 });
    rotating.write('123456789\n');
    rotating.write('abcdefghi\n');
    await rotating.close();
    expect(readdirSync(dir)).toEqual(['x.log']);
    expect(linesOf(file)).toEqual(['abcdefghi']);
  });
});

describe('log files', () => {
  it('app.log takes the logger’s level, error.log warnings and errors with stacks, access.log its own lines', async () => {
    const dir = tempDir();
    const logger = createLogger('info', { stdout: false });
    const files = attachLogFiles(logger, { dir, level: 'info', maxBytes: 1024 * 1024, keep: 2 });
    logger.debug('not at this level');
    logger.info({ prompt: 'secret prompt text', adminToken: 'tok' }, 'lifecycle');
    logger.warn('careful');
    logger.error({ err: new Error('kaput') }, 'failed');
    files.access!.info({ event: 'request' }, 'request');
    await files.close();
    logger.info('after close: stdout only, nowhere');

    const app = linesOf(path.join(dir, 'app.log')).map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(app.map((record) => record.msg)).toEqual(['lifecycle', 'careful', 'failed']);
    expect(app[0]).toMatchObject({ prompt: '[redacted]', adminToken: '[redacted]' });
    const errors = linesOf(path.join(dir, 'error.log')).map((line) => JSON.parse(line) as { msg: string; level: number; err?: { stack: string } });
    expect(errors.map((record) => record.msg)).toEqual(['careful', 'failed']);
    expect(errors[1]!.err!.stack).toMatch(/Error: kaput\n\s+at /);
    expect(linesOf(path.join(dir, 'access.log')).map((line) => (JSON.parse(line) as { msg: string }).msg)).toEqual(['request']);
    const everything = readdirSync(dir).map((name) => readFileSync(path.join(dir, name), 'utf8')).join('');
    expect(everything).not.toContain('secret prompt text');
  });

  it('logs the configuration with secrets shown only as set or unset', () => {
    const summary = configSummary(loadConfig({ ADMIN_TOKEN: 'hunter2-admin', LOG_DIR: '/var/log/llm' }));
    expect(summary.ADMIN_TOKEN).toBe('set');
    expect(summary.LOG_DIR).toBe('/var/log/llm');
    expect(JSON.stringify(summary)).not.toContain('hunter2');
    expect(configSummary(loadConfig({})).ADMIN_TOKEN).toBe('unset');
  });
});
