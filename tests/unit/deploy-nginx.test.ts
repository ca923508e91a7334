import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderSiteConfig, SHIPPED_SITE_CONFIG, writeNginxConfig } from '../helpers/nginx.js';
import { tempDir } from '../helpers/service.js';
import { missingBinaries, requireBinary } from '../helpers/system-binary.js';

/*
 * The shipped nginx config (docker/nginx/llm-stream.conf) as written: what a WebSocket token
 * stream behind a balancer needs, and nginx's own syntax check. tests/integration/scale-out.test.ts
 * runs it in front of real replicas.
 */

const site = readFileSync(SHIPPED_SITE_CONFIG, 'utf8');
/** The directives of one `location` block. */
const location = (prefix: string): string => {
  const start = site.indexOf(`location ${prefix} {`);
  if (start < 0) throw new Error(`no location ${prefix}`);
  return site.slice(start, site.indexOf('\n    }', start));
};

describe('the nginx config', () => {
  it('balances by open connections and takes failing or draining replicas out, retrying elsewhere', () => {
    expect(site).toMatch(/upstream llm_stream \{[^}]*least_conn;/);
    for (const server of site.matchAll(/^\s*server\s+\S+:\d+([^;]*);/gm)) expect(server[1]).toMatch(/max_fails=\d+ fail_timeout=\d+s/);
    expect(site).toMatch(/proxy_next_upstream error timeout[^;]*http_503;/);
  });

  it('upgrades WebSockets with long timeouts and streams HTTP answers unbuffered', () => {
    const stream = location('/v1/stream');
    expect(stream).toContain('proxy_set_header Upgrade $http_upgrade;');
    expect(stream).toContain('proxy_set_header Connection $llm_connection;');
    expect(stream).toMatch(/proxy_read_timeout 1h;/);
    expect(stream).toContain('proxy_buffering off;');
    const api = location('/');
    expect(api).toContain('proxy_buffering off;');
    expect(api).toMatch(/proxy_read_timeout 1h;/);
    expect(site).toContain('proxy_http_version 1.1;');
  });

  it('is pointed at other replicas keeping the shipped server parameters', () => {
    const rendered = renderSiteConfig(site, 18080, [9001, 9002]);
    expect(rendered).toContain('server 127.0.0.1:9001 max_fails=1 fail_timeout=5s;');
    expect(rendered).toContain('server 127.0.0.1:9002 max_fails=1 fail_timeout=5s;');
    expect(rendered).not.toContain('llm-stream-1:8080');
    expect(rendered).toContain('listen 127.0.0.1:18080;');
  });

  const skipReason = missingBinaries(['nginx']);
  it.skipIf(skipReason !== undefined)(`passes nginx -t${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
    const dir = tempDir('llm-nginx-check');
    const main = writeNginxConfig(dir, 18080, [9001, 9002, 9003]);
    const check = spawnSync(requireBinary('nginx'), ['-t', '-e', path.join(dir, 'error.log'), '-p', dir, '-c', main], { encoding: 'utf8' });
    expect(check.status, check.stderr).toBe(0);
    expect(check.stderr).toContain('syntax is ok');
  });
});
