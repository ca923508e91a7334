import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

/*
 * Where node-llama-cpp keeps engines built on this machine: `llama/localBuilds/<folder>/` inside
 * the package, one folder per backend (`linux-x64`, `linux-x64-cuda`, ...), finished when it holds
 * `buildDone.status` beside `Release/llama-addon.node`. `npm run build:engine` (node-llama-cpp's
 * `source build`) writes there, and `getLlama()` looks there before its prebuilt binaries.
 */

/** The package's `llama/` folder (source bundle, local builds, lastBuild.json). */
export function llamaPackageDir(): string {
  // Resolves to <package>/dist/index.js.
  const entry = createRequire(import.meta.url).resolve('node-llama-cpp');
  return path.resolve(path.dirname(entry), '..', 'llama');
}

/** Folder of node-llama-cpp's local builds. */
export function localBuildsDir(): string {
  return path.join(llamaPackageDir(), 'localBuilds');
}

/** Names of the finished local builds in `dir` (e.g. `linux-x64`); none when the folder is absent. */
export function finishedLocalBuilds(dir: string = localBuildsDir()): string[] {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return [];
  }
  return entries
    .filter((name) => existsSync(path.join(dir, name, 'buildDone.status')) && existsSync(path.join(dir, name, 'Release', 'llama-addon.node')))
    .sort();
}

/** Written beside a build by `npm run build:engine`: the CPU it was built on (`-march=native`). */
export const BUILD_HOST_FILE = 'build-host.json';

export interface BuildHost {
  cpuModel: string;
  /** The CPU's feature flags (`flags` on x86, `Features` on Arm) as /proc/cpuinfo lists them. */
  cpuFlags: string[];
}

/*
 * x86 flags of instruction sets a compiler may use with -march=native; the others (hypervisor,
 * constant_tsc, ...) differ between machines that run the same code. Arm's `Features` are all
 * instruction sets.
 */
const X86_ISA_FLAG = /^(mmx|sse|ssse3|avx|fma|f16c|bmi|popcnt|abm|lzcnt|movbe|aes|vaes|pclmulqdq|vpclmulqdq|gfni|sha_ni|adx|xop|tbm|cx16|xsave|rdrand|rdseed|3dnowprefetch|clflushopt|clwb|serialize|amx|movdir|waitpkg)/;

/** The first CPU's model and instruction-set flags from the text of /proc/cpuinfo. */
export function buildHostOf(cpuinfo: string): BuildHost {
  const field = (name: string): string | undefined => new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm').exec(cpuinfo)?.[1]?.trim();
  const x86 = field('flags');
  const flags = (x86 ?? field('Features') ?? '').split(/\s+/).filter(Boolean);
  return { cpuModel: field('model name') ?? field('Model') ?? 'unknown', cpuFlags: x86 === undefined ? flags : flags.filter((flag) => X86_ISA_FLAG.test(flag)) };
}

/** This machine's CPU; undefined where there is no /proc/cpuinfo. */
export function thisHost(): BuildHost | undefined {
  try {
    return buildHostOf(readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    return undefined;
  }
}

/** Records the CPU a local build was made for, so a copy of it on another CPU is recognised. */
export function recordBuildHost(folder: string, host: BuildHost | undefined = thisHost(), dir: string = localBuildsDir()): void {
  if (host) writeFileSync(path.join(dir, folder, BUILD_HOST_FILE), `${JSON.stringify(host, null, 2)}\n`);
}

/** A local build and the instruction sets of its build machine this CPU lacks. */
export interface ForeignBuild {
  folder: string;
  missing: string[];
}

/**
 * Finished local builds this CPU cannot run: built with `-march=native` on a CPU with features
 * this one lacks (an image or a node_modules copied to another machine), which would die of an
 * illegal instruction. Builds without a record (made by node-llama-cpp's CLI directly) are trusted.
 */
export function foreignBuilds(host: BuildHost | undefined = thisHost(), dir: string = localBuildsDir()): ForeignBuild[] {
  if (!host || host.cpuFlags.length === 0) return [];
  const have = new Set(host.cpuFlags);
  const foreign: ForeignBuild[] = [];
  for (const folder of finishedLocalBuilds(dir)) {
    let recorded: BuildHost;
    try {
      recorded = JSON.parse(readFileSync(path.join(dir, folder, BUILD_HOST_FILE), 'utf8')) as BuildHost;
    } catch {
      continue;
    }
    const missing = (recorded.cpuFlags ?? []).filter((flag) => !have.has(flag));
    if (missing.length > 0) foreign.push({ folder, missing });
  }
  return foreign;
}
