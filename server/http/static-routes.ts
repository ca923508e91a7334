import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { HttpReply, HttpRequestInfo, HttpRoute } from '../transport/types.js';

/*
 * Serves the built dashboard (dashboard/dist) at `/`. Vite names assets with a content hash, so
 * `/assets/*` is cached for a year; index.html is revalidated every time so a new build shows at
 * once. Any other path without a file extension is a client-side route and gets index.html.
 */

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
  '.wasm': 'application/wasm',
};

const IMMUTABLE = 'public, max-age=31536000, immutable';
const REVALIDATE = 'no-cache';
/** Path prefixes owned by the API: a miss there is a 404, never the dashboard's index.html. */
const API_PREFIXES = ['/api/', '/v1/', '/metrics', '/healthz', '/readyz'];

const NOT_FOUND: HttpReply = { status: 404, headers: { 'content-type': 'application/json' }, body: '{"error":"not_found"}' };

function isApiPath(urlPath: string): boolean {
  return API_PREFIXES.some((prefix) => urlPath === prefix.replace(/\/$/, '') || urlPath.startsWith(prefix));
}

export interface StaticOptions {
  /** Folder of the built dashboard. Default: `dashboard/dist` of the package this file belongs to. */
  root?: string;
}

/** The folder holding package.json above this file, in source (server/http) or built (dist/server/http) form. */
function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) return process.cwd();
    dir = parent;
  }
}

export function defaultDashboardRoot(): string {
  return path.join(packageRoot(), 'dashboard', 'dist');
}

const text = (status: number, body: string, headers: Record<string, string> = {}): HttpReply => ({
  status,
  headers: { 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff', ...headers },
  body,
});

/**
 * Maps a URL path to a file under `root`, or undefined when it would leave `root` (`..`, encoded
 * slashes or backslashes, NUL) or is malformed. Exported for the traversal tests.
 */
export function resolveStaticPath(root: string, urlPath: string): string | undefined {
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return undefined;
  }
  if (decoded.includes('\0') || decoded.includes('\\') || !decoded.startsWith('/')) return undefined;
  if (decoded.split('/').some((segment) => segment === '..')) return undefined;
  const base = path.resolve(root);
  const file = path.resolve(base, `.${decoded}`);
  return file === base || file.startsWith(base + path.sep) ? file : undefined;
}

/** `GET /*`: the dashboard's files. Register it after every other route. */
export function staticRoutes(options: StaticOptions = {}): HttpRoute[] {
  const root = path.resolve(options.root ?? defaultDashboardRoot());

  async function fileReply(file: string, request: HttpRequestInfo, cacheControl: string): Promise<HttpReply | undefined> {
    let info;
    try {
      info = await stat(file);
    } catch {
      return undefined;
    }
    if (!info.isFile()) return undefined;
    const etag = `W/"${info.size.toString(16)}-${Math.floor(info.mtimeMs).toString(16)}"`;
    const headers: Record<string, string> = {
      'cache-control': cacheControl,
      etag,
      'x-content-type-options': 'nosniff',
    };
    if (request.headers['if-none-match'] === etag) return { status: 304, headers };
    const body = await readFile(file);
    const type = CONTENT_TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
    return { status: 200, headers: { 'content-type': type, ...headers }, body: new Uint8Array(body.buffer, body.byteOffset, body.byteLength) };
  }

  async function index(request: HttpRequestInfo): Promise<HttpReply> {
    const reply = await fileReply(path.join(root, 'index.html'), request, REVALIDATE);
    return reply ?? text(503, 'The dashboard is not built. Run `npm run build:dashboard` (npm start does it for you).\n');
  }

  return [
    {
      // Any other method: the API's paths are not found, the dashboard's pages are read-only.
      method: 'any',
      pattern: '/*',
      handle(request) {
        if (isApiPath(request.path)) return NOT_FOUND;
        return { status: 405, headers: { 'content-type': 'application/json', allow: 'GET, HEAD' }, body: '{"error":"method_not_allowed","message":"use GET or HEAD"}' };
      },
    },
    {
      method: 'get',
      pattern: '/*',
      async handle(request) {
        const urlPath = request.path || '/';
        if (isApiPath(urlPath)) return NOT_FOUND;
        if (urlPath === '/' || urlPath === '/index.html') return index(request);
        const file = resolveStaticPath(root, urlPath);
        if (file === undefined) return text(400, 'bad path\n');
        const hashed = urlPath.startsWith('/assets/');
        const reply = await fileReply(file, request, hashed ? IMMUTABLE : REVALIDATE);
        if (reply) return reply;
        // A path with an extension names a file that is not there; anything else is a page route.
        if (path.extname(urlPath) !== '') return text(404, 'not found\n');
        return index(request);
      },
    },
  ];
}
