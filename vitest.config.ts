import { svelte } from '@sveltejs/vite-plugin-svelte';
import { defineConfig } from 'vitest/config';

/** Dashboard unit tests: `.svelte.ts` stores compiled by the Svelte plugin for the browser runtime. */
const DASHBOARD_UNIT = 'tests/unit/dashboard-*.test.ts';

export default defineConfig({
  test: {
    // The engine is CPU bound on a 2-core machine: files run one at a time so timings stay meaningful.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Each project names its own files: a root `include` would be merged into every project.
    projects: [
      { extends: true, test: { name: 'node', include: ['tests/**/*.test.ts'], exclude: [DASHBOARD_UNIT, 'tests/e2e/**', '**/node_modules/**'] } },
      {
        extends: true,
        plugins: [svelte({ configFile: false, compilerOptions: { runes: true }, dynamicCompileOptions: () => ({ generate: 'client' }) })],
        resolve: { conditions: ['browser'] },
        test: { name: 'dashboard', include: [DASHBOARD_UNIT] },
      },
      // Real Chromium against the real server; skipped with a notice where no Chromium is installed.
      { extends: true, test: { name: 'e2e', include: ['tests/e2e/**/*.test.ts'] } },
    ],
    coverage: {
      provider: 'v8',
      include: ['server/**/*.ts', 'protocol/**/*.ts'],
      // Model-making code writes GGUF files for the demo and benchmarks; it is not the serving path.
      exclude: ['server/main.ts', 'server/model-maker/**', '**/*.d.ts'],
      reporter: ['text-summary', 'json-summary'],
      thresholds: { lines: 80 },
    },
  },
});
