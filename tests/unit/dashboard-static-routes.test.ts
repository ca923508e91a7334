import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultDashboardRoot, resolveStaticPath, staticRoutes } from '../../server/http/static-routes.js';
import { listen } from '../../server/transport/uws-server.js';
import type { HttpServer } from '../../server/transport/types.js';

/** A raw GET, so paths like `/../x` reach the server as written (fetch would normalise them). */
function get(port: number, rawPath: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const request = http.request({ host: '127.0.0.1', port, path: rawPath, method: 'GET', headers }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
    });
    request.on('error', reject);
    request.end();
  });
}

describe('static dashboard routes', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'dashboard-dist-'));
  let server: HttpServer;
  let emptyServer: HttpServer;

  beforeAll(async () => {
    mkdirSync(path.join(root, 'assets'));
    writeFileSync(path.join(root, 'index.html'), '<!doctype html><title>dash</title>');
    writeFileSync(path.join(root, 'assets', 'index-abc123.js'), 'console.log(1)');
    writeFileSync(path.join(root, 'assets', 'index-abc123.css'), 'body{}');
    writeFileSync(path.join(root, 'favicon.svg'), '<svg/>');
    writeFileSync(path.join(path.dirname(root), `${path.basename(root)}-secret.txt`), 'secret');
    const health = { method: 'get' as const, pattern: '/healthz', handle: () => ({ status: 200, body: 'ok' }) };
    server = await listen({ host: '127.0.0.1', port: 0, maxBodyBytes: 1024, sockets: [], faults: { report: () => undefined }, routes: [health, ...staticRoutes({ root })] });
    emptyServer = await listen({ host: '127.0.0.1', port: 0, maxBodyBytes: 1024, sockets: [], faults: { report: () => undefined }, routes: staticRoutes({ root: path.join(root, 'missing') }) });
  });

  afterAll(() => {
    for (const s of [server, emptyServer]) {
      s?.stopListening();
      s?.closeAll();
    }
  });

  it('serves index.html at / with a revalidating cache policy', async () => {
    const reply = await get(server.port, '/');
    expect(reply.status).toBe(200);
    expect(reply.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(reply.headers['cache-control']).toBe('no-cache');
    expect(reply.body).toContain('<title>dash</title>');
  });

  it('serves hashed assets with their content type, cached for a year', async () => {
    const js = await get(server.port, '/assets/index-abc123.js');
    expect(js.status).toBe(200);
    expect(js.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(js.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(js.headers['x-content-type-options']).toBe('nosniff');
    expect(js.body).toBe('console.log(1)');
    const css = await get(server.port, '/assets/index-abc123.css');
    expect(css.headers['content-type']).toBe('text/css; charset=utf-8');
    const svg = await get(server.port, '/favicon.svg');
    expect(svg.headers['content-type']).toBe('image/svg+xml');
    expect(svg.headers['cache-control']).toBe('no-cache');
  });

  it('answers 304 to a matching If-None-Match', async () => {
    const first = await get(server.port, '/assets/index-abc123.js');
    const again = await get(server.port, '/assets/index-abc123.js', { 'if-none-match': first.headers.etag as string });
    expect(again.status).toBe(304);
    expect(again.body).toBe('');
  });

  it('answers client routes with index.html, but missing files and API paths with 404', async () => {
    for (const route of ['/models', '/connections/', '/playground?x=1']) {
      const reply = await get(server.port, route);
      expect(reply.status, route).toBe(200);
      expect(reply.body).toContain('<title>dash</title>');
    }
    expect((await get(server.port, '/assets/missing-123.js')).status).toBe(404);
    const api = await get(server.port, '/api/nothing');
    expect(api.status).toBe(404);
    expect(api.headers['content-type']).toBe('application/json');
    expect((await get(server.port, '/v1/unknown')).status).toBe(404);
    expect((await get(server.port, '/healthz')).body).toBe('ok'); // routes before it still answer
  });

  it.each([
    '/../' + 'x',
    `/../${path.basename(root)}-secret.txt`,
    `/assets/../../${path.basename(root)}-secret.txt`,
    `/%2e%2e/${path.basename(root)}-secret.txt`,
    `/assets/%2e%2e%2f%2e%2e%2f${path.basename(root)}-secret.txt`,
    '/..%5c..%5cetc%5cpasswd',
    '/%00index.html',
    '/%E0%A4%A',
  ])('never leaves the dashboard folder: %s', async (rawPath) => {
    const reply = await get(server.port, rawPath);
    expect(reply.body).not.toContain('secret');
    expect([400, 404]).toContain(reply.status);
  });

  it('resolveStaticPath keeps every path inside the root', () => {
    expect(resolveStaticPath('/srv/dist', '/assets/a.js')).toBe(path.resolve('/srv/dist/assets/a.js'));
    expect(resolveStaticPath('/srv/dist', '/a%20b.js')).toBe(path.resolve('/srv/dist/a b.js'));
    expect(resolveStaticPath('/srv/dist', '/../etc/passwd')).toBeUndefined();
    expect(resolveStaticPath('/srv/dist', '/a/%2e%2e/%2e%2e/x')).toBeUndefined();
    expect(resolveStaticPath('/srv/dist', '/a\\..\\x')).toBeUndefined();
    expect(resolveStaticPath('/srv/dist', '/%zz')).toBeUndefined();
    expect(resolveStaticPath('/srv/dist', 'relative')).toBeUndefined();
  });

  it('says how to build when the dashboard is not built', async () => {
    const reply = await get(emptyServer.port, '/');
    expect(reply.status).toBe(503);
    expect(reply.body).toMatch(/build:dashboard/);
  });

  it('finds dashboard/dist of this package by default', () => {
    expect(defaultDashboardRoot()).toBe(path.resolve(import.meta.dirname, '../../dashboard/dist'));
  });
});
