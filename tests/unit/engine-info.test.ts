import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import type { EngineInfo } from '../../protocol/index.js';
import { engineLabel } from '../../dashboard/src/lib/engine-label.js';
import { cpuVariantOf } from '../../server/engine/engine-info.js';
import { buildForThisCpu, engineLoadOptions } from '../../server/engine/llama-runtime.js';
import { buildHostOf, finishedLocalBuilds, foreignBuilds, recordBuildHost } from '../../server/engine/native-build.js';
import { registerEngineInfo } from '../../server/telemetry/engine-info-metric.js';
import { createLogger } from '../../server/telemetry/logger.js';
import { Observability } from '../../server/telemetry/observability.js';
import { parseExposition } from '../helpers/exposition.js';
import { tempDir } from '../helpers/service.js';

/** Lines as they appear in /proc/<pid>/maps. */
const mapsLine = (file: string): string => `7f3a1c000000-7f3a1c200000 r-xp 00000000 fd:01 1234567                    ${file}`;
const PREBUILT = '/app/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64';
const NATIVE = '/app/node_modules/node-llama-cpp/llama/localBuilds/linux-x64/Release';

const info: EngineInfo = { build: 'native', backend: 'cpu', cpuVariant: 'native', llamaCppRelease: 'b1234' };

describe('CPU library of a process', () => {
  it('names the variant a multi-variant build kept loaded', () => {
    const maps = [mapsLine(`${PREBUILT}/libggml-base.so`), mapsLine(`${PREBUILT}/libggml-cpu-zen4.so`), mapsLine(`${PREBUILT}/llama-addon.node`), '7ffd1000-7ffd2000 rw-p 00000000 00:00 0   [stack]'].join('\n');
    expect(cpuVariantOf(maps, 'prebuilt')).toBe('zen4');
  });

  it('reads a versioned file name, and a library replaced on disk while it stays mapped', () => {
    expect(cpuVariantOf(mapsLine(`${PREBUILT}/libggml-cpu-haswell.so.0.9.4`), 'prebuilt')).toBe('haswell');
    expect(cpuVariantOf(`${mapsLine(`${PREBUILT}/libggml-cpu-x64.so`)} (deleted)`, 'prebuilt')).toBe('x64');
  });

  it('calls a native build native, whether its CPU code is a library of its own or linked in', () => {
    expect(cpuVariantOf(mapsLine(`${NATIVE}/libggml-cpu.so`), 'native')).toBe('native');
    expect(cpuVariantOf(mapsLine(`${NATIVE}/llama-addon.node`), 'native')).toBe('native');
    expect(cpuVariantOf(undefined, 'native')).toBe('native');
  });

  it('says generic or unknown where a prebuilt engine maps no variant or the maps are unreadable', () => {
    expect(cpuVariantOf(mapsLine(`${PREBUILT}/libggml-cpu.so`), 'prebuilt')).toBe('generic');
    expect(cpuVariantOf(mapsLine('/usr/lib/libc.so.6'), 'prebuilt')).toBe('unknown');
    expect(cpuVariantOf(undefined, 'prebuilt')).toBe('unknown');
  });
});

describe('engine load options', () => {
  it('never build nor download, whatever the choice', () => {
    for (const choice of ['auto', 'native', 'prebuilt'] as const) {
      expect(engineLoadOptions(choice)).toMatchObject({ build: 'never', skipDownload: true });
    }
  });

  it('native refuses the prebuilt binaries; prebuilt looks for local builds under a name none has', () => {
    expect(engineLoadOptions('native').usePrebuiltBinaries).toBe(false);
    expect(engineLoadOptions('prebuilt').cmakeOptions).toEqual({ GGML_NATIVE: 'OFF' });
    expect(engineLoadOptions('auto')).toEqual({ build: 'never', skipDownload: true });
  });
});

describe('finished local builds', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it('lists only folders node-llama-cpp marked done with their addon in place', () => {
    const dir = tempDir('local-builds');
    dirs.push(dir);
    const folder = (name: string, files: string[]): void => {
      for (const file of files) {
        mkdirSync(path.dirname(path.join(dir, name, file)), { recursive: true });
        writeFileSync(path.join(dir, name, file), '');
      }
    };
    folder('linux-x64', ['buildDone.status', 'Release/llama-addon.node']);
    folder('linux-x64-vulkan', ['Release/llama-addon.node']); // interrupted: never marked done
    folder('linux-x64-cuda', ['buildDone.status']); // marked, but the addon is gone
    expect(finishedLocalBuilds(dir)).toEqual(['linux-x64']);
    expect(finishedLocalBuilds(path.join(dir, 'absent'))).toEqual([]);
  });
});

describe('native builds and the CPU they were made for', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  const X86_CPUINFO = 'processor\t: 0\nmodel name\t: AMD EPYC 9454\nflags\t\t: fpu sse sse2 ssse3 hypervisor avx avx2 fma avx512f avx512_vnni constant_tsc\n\nprocessor\t: 1\n';
  const OLD_X86 = { cpuModel: 'Intel Xeon E5', cpuFlags: ['sse', 'sse2', 'ssse3', 'avx', 'avx2', 'fma'] };
  const builtDir = (...folders: string[]): string => {
    const dir = tempDir('local-builds');
    dirs.push(dir);
    for (const folder of folders) {
      mkdirSync(path.join(dir, folder, 'Release'), { recursive: true });
      writeFileSync(path.join(dir, folder, 'buildDone.status'), '');
      writeFileSync(path.join(dir, folder, 'Release', 'llama-addon.node'), '');
    }
    return dir;
  };

  it('records the instruction sets of the CPU, not the flags that differ between machines running the same code', () => {
    expect(buildHostOf(X86_CPUINFO)).toEqual({ cpuModel: 'AMD EPYC 9454', cpuFlags: ['sse', 'sse2', 'ssse3', 'avx', 'avx2', 'fma', 'avx512f', 'avx512_vnni'] });
    expect(buildHostOf('processor\t: 0\nFeatures\t: fp asimd sve2 i8mm\nCPU part\t: 0xd4f\n')).toEqual({ cpuModel: 'unknown', cpuFlags: ['fp', 'asimd', 'sve2', 'i8mm'] });
  });

  it('finds a build made on a CPU with instructions this one lacks', () => {
    const dir = builtDir('linux-x64', 'linux-x64-vulkan', 'linux-x64-cuda');
    recordBuildHost('linux-x64', buildHostOf(X86_CPUINFO), dir);
    recordBuildHost('linux-x64-vulkan', OLD_X86, dir);
    // linux-x64-cuda has no record (built by node-llama-cpp's CLI directly): trusted.
    expect(foreignBuilds(OLD_X86, dir)).toEqual([{ folder: 'linux-x64', missing: ['avx512f', 'avx512_vnni'] }]);
    expect(foreignBuilds(buildHostOf(X86_CPUINFO), dir)).toEqual([]);
    expect(foreignBuilds(undefined, dir)).toEqual([]);
  });

  it('auto passes over a foreign build for the prebuilt engine, saying why; native refuses it', () => {
    const foreign = [{ folder: 'linux-x64', missing: ['avx512f', 'avx512_vnni'] }];
    expect(buildForThisCpu('auto', [], '/lb')).toEqual({ build: 'auto' });
    expect(buildForThisCpu('native', [], '/lb')).toEqual({ build: 'native' });
    const auto = buildForThisCpu('auto', foreign, '/lb');
    expect(auto.build).toBe('prebuilt');
    expect(auto.notice).toBe('the native build in /lb was made on a CPU with instructions this one lacks (linux-x64: avx512f, avx512_vnni): the prebuilt engine is loaded instead; run `npm run build:engine` on this machine to use a native one');
    expect(() => buildForThisCpu('native', foreign, '/lb')).toThrow(/^ENGINE_BUILD: native: the native build in \/lb was made on a CPU with instructions this one lacks \(linux-x64: avx512f, avx512_vnni\); run `npm run build:engine` on this machine, or set ENGINE_BUILD=prebuilt$/);
  });
});

describe('llm_engine_info', () => {
  it('is 1 with the engine in its labels', async () => {
    const registry = new Registry();
    registerEngineInfo(registry, { build: 'prebuilt', backend: 'cpu', cpuVariant: 'zen4', llamaCppRelease: 'b1234' });
    const family = parseExposition(await registry.metrics()).get('llm_engine_info');
    expect(family?.type).toBe('gauge');
    expect(family?.samples).toEqual([{ name: 'llm_engine_info', labels: { build: 'prebuilt', backend: 'cpu', cpu_variant: 'zen4', llama_cpp_release: 'b1234' }, value: 1 }]);
  });

  it('is scraped with the service metrics and carried in every feed snapshot', async () => {
    const obs = new Observability({ metrics: true, feedHistoryS: 10, models: () => [], connections: () => 0, engine: info, logger: createLogger('silent') });
    try {
      const family = parseExposition(await obs.metrics!.prometheus.text()).get('llm_engine_info');
      expect(family?.samples[0]?.labels).toEqual({ build: 'native', backend: 'cpu', cpu_variant: 'native', llama_cpp_release: 'b1234' });
      const resources = obs.metrics!.monitor.latest;
      expect(obs.metrics!.feed.snapshot(resources).snapshot.engine).toEqual(info);
    } finally {
      obs.stop();
    }
  });

  it('is absent when the service was started without engine facts', async () => {
    const obs = new Observability({ metrics: true, feedHistoryS: 10, models: () => [], connections: () => 0, logger: createLogger('silent') });
    try {
      expect(parseExposition(await obs.metrics!.prometheus.text()).has('llm_engine_info')).toBe(false);
      expect(obs.metrics!.feed.snapshot(obs.metrics!.monitor.latest).snapshot).not.toHaveProperty('engine');
    } finally {
      obs.stop();
    }
  });
});

describe("the dashboard's engine tile", () => {
  it('shows the build, with backend, CPU library and release below', () => {
    expect(engineLabel(info)).toEqual({ value: 'native', sub: 'cpu · native · b1234' });
    expect(engineLabel({ build: 'prebuilt', backend: 'cuda', cpuVariant: 'zen4', llamaCppRelease: 'b1234' })).toEqual({ value: 'prebuilt', sub: 'cuda · zen4 · b1234' });
  });

  it('shows a dash for a server that does not report its engine', () => {
    expect(engineLabel(undefined)).toEqual({ value: '—', sub: '' });
  });
});
