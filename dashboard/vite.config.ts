import path from 'node:path';
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { defineConfig } from 'vite';

/*
 * `vite build dashboard` writes static files to dashboard/dist, which the server serves at `/`.
 * `npm run dev:dashboard` serves the sources with hot reload and proxies the API and both
 * WebSockets to a running backend: DASHBOARD_BACKEND, default http://127.0.0.1:8080.
 */
const root = import.meta.dirname;
const backend = process.env.DASHBOARD_BACKEND ?? 'http://127.0.0.1:8080';

export default defineConfig({
  root,
  base: '/',
  plugins: [svelte()],
  build: {
    outDir: path.join(root, 'dist'),
    emptyOutDir: true,
    target: 'es2022',
    // Hashed names under /assets/ are cached for a year by the server; index.html never is.
    assetsDir: 'assets',
    chunkSizeWarningLimit: 400,
  },
  server: {
    port: Number(process.env.DASHBOARD_PORT ?? 5173),
    // protocol/ lives beside the dashboard, outside its root.
    fs: { allow: [path.resolve(root, '..')] },
    // Host is passed through unchanged (no changeOrigin): the server's same-host Origin check on
    // WebSocket upgrades then sees the page's own host, as it does in production.
    proxy: {
      '/api': { target: backend },
      '/v1': { target: backend, ws: true },
      '/healthz': { target: backend },
      '/readyz': { target: backend },
    },
  },
  preview: { port: 4173 },
});
