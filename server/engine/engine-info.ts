import { readFileSync } from 'node:fs';
import type { Llama } from 'node-llama-cpp';
import type { EngineInfo } from '../../protocol/index.js';

/**
 * `libggml-cpu-zen4.so` (a variant of a multi-variant build) or `libggml-cpu.so` (a single CPU
 * library), maybe versioned, maybe ` (deleted)`: replaced on disk while it stays mapped.
 */
const CPU_LIBRARY = /\/libggml-cpu(?:-([A-Za-z0-9_]+))?\.so(?:\.[0-9.]+)?(?: \(deleted\))?$/;

/**
 * The CPU library a process mapped, from the text of its `/proc/<pid>/maps`: the variant name of a
 * multi-variant build's `libggml-cpu-<variant>.so` (ggml keeps only the best one it scored loaded);
 * `native` for a native build, whose CPU code is one library built with `-march=native` or linked
 * into the addon; `unknown` when the mappings could not be read or name no CPU library.
 */
export function cpuVariantOf(maps: string | undefined, build: EngineInfo['build']): string {
  if (maps === undefined) return build === 'native' ? 'native' : 'unknown';
  let generic = false;
  for (const line of maps.split('\n')) {
    const match = CPU_LIBRARY.exec(line.trimEnd());
    if (!match) continue;
    if (match[1]) return match[1];
    generic = true;
  }
  if (build === 'native') return 'native';
  return generic ? 'generic' : 'unknown';
}

/** This process's memory mappings; undefined where there is no /proc (macOS, Windows). */
function ownMaps(): string | undefined {
  try {
    return readFileSync('/proc/self/maps', 'utf8');
  } catch {
    return undefined;
  }
}

/** What engine a loaded runtime is: its build, backend, CPU library and llama.cpp release. */
export function engineInfoOf(llama: Llama, maps: string | undefined = ownMaps()): EngineInfo {
  // node-llama-cpp loads a local build (llama/localBuilds, what `npm run build:engine` writes) or its prebuilt binaries.
  const build = llama.buildType === 'localBuild' ? 'native' : 'prebuilt';
  return {
    build,
    backend: llama.gpu === false ? 'cpu' : llama.gpu,
    cpuVariant: cpuVariantOf(maps, build),
    llamaCppRelease: llama.llamaCppRelease.release,
  };
}
