import { spawn } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { finishedLocalBuilds, localBuildsDir } from '../../server/engine/native-build.js';
import { tempDir } from '../helpers/service.js';

/*
 * `npm run build:engine` up to the point where it would compile: a machine without the tools gets a
 * clear refusal and exit code 2 before anything is touched, and `--check` says whether a native
 * build loads. (The build itself takes tens of minutes: docs/performance.md has its run.)
 */

const ROOT = path.resolve(import.meta.dirname, '../..');
const dirs: string[] = [];

afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function buildEngine(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'scripts/build-engine.ts'), ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
}

const localBuildsNow = (): string[] => {
  try {
    return readdirSync(localBuildsDir()).sort();
  } catch {
    return [];
  }
};

describe('npm run build:engine', () => {
  it('refuses with exit code 2, naming every missing tool, where cmake and the compilers are not installed', async () => {
    const emptyPath = tempDir('no-tools');
    dirs.push(emptyPath);
    const before = localBuildsNow();
    const { CXX: _cxx, CC: _cc, ...env } = process.env;
    const result = await buildEngine([], { ...env, PATH: emptyPath });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('build:engine: cannot build, missing: cmake; a C++ compiler (c++ or g++ or clang++); a C compiler (cc or gcc or clang); a build tool (make or ninja); git, to clone the source bundle (git).');
    expect(result.stderr).toContain('apt-get install cmake g++ make git');
    expect(localBuildsNow()).toEqual(before);
  });

  it('asks for the GPU toolchain too when a GPU backend is asked for', async () => {
    const emptyPath = tempDir('no-tools');
    dirs.push(emptyPath);
    const { CUDACXX: _nvcc, ...env } = process.env;
    const result = await buildEngine(['--gpu', 'cuda'], { ...env, PATH: emptyPath });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('the CUDA compiler (nvcc)');
  });

  it('refuses an unknown option or backend with its usage', async () => {
    for (const args of [['--gpu', 'tpu'], ['--fast']]) {
      const result = await buildEngine(args);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain('usage: npm run build:engine');
    }
  });

  it('--check says whether a native build loads, and exits 1 when none does', async () => {
    const present = finishedLocalBuilds().includes(`${process.platform === 'darwin' ? 'mac' : process.platform}-${process.arch}`);
    const result = await buildEngine(['--check']);
    if (present) {
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(/^Native build present: cpu, CPU library native, llama\.cpp \S+\. The server loads it with ENGINE_BUILD=auto/m);
    } else {
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/^No usable native build: ENGINE_BUILD: native: no native engine build for the CPU in .*run `npm run build:engine` first/m);
    }
  });
});
