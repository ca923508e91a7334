import { getLlama, LlamaLogLevel, NoBinaryFoundError, type Llama, type LlamaOptions } from 'node-llama-cpp';
import type { EngineInfo } from '../../protocol/index.js';
import { ConfigError } from '../config/settings.js';
import { engineInfoOf } from './engine-info.js';
import { finishedLocalBuilds, foreignBuilds, localBuildsDir, type ForeignBuild } from './native-build.js';

/** ENGINE_BUILD: which engine build to load. */
export type EngineBuildChoice = 'auto' | 'native' | 'prebuilt';

export interface RuntimeOptions {
  /** Backend: `auto` takes a GPU when one works, `false` forces the CPU. */
  gpu: 'auto' | 'false' | 'cuda' | 'vulkan' | 'metal';
  /** `native`: only a build made on this machine; `prebuilt`: only the package's binaries; `auto`: native when present. */
  build: EngineBuildChoice;
  /** Upper bound of CPU threads any context may use. */
  maxThreads: number;
  /** Forward llama.cpp warnings to this function; when absent, only errors are kept. */
  onEngineLog?: (level: string, message: string) => void;
}

/** The one node-llama-cpp runtime of the process, and what it is. */
export interface LlamaRuntime {
  llama: Llama;
  info: EngineInfo;
  /** Why ENGINE_BUILD=auto passed over the native build, when it did. */
  notice?: string;
}

type LoadOptions = Pick<LlamaOptions, 'build' | 'usePrebuiltBinaries' | 'cmakeOptions' | 'skipDownload'>;

/**
 * getLlama options that load the chosen build and never compile nor download anything, so a
 * start needs no compiler or network. For each backend it tries, node-llama-cpp looks for a local
 * build (`llama/localBuilds/<platform>-<arch>[-<gpu>][-<hash of custom cmake options>]`) before
 * its prebuilt binaries, which are found by the name without the hash.
 */
export function engineLoadOptions(build: EngineBuildChoice): LoadOptions {
  const never = { build: 'never', skipDownload: true } as const;
  switch (build) {
    case 'native':
      return { ...never, usePrebuiltBinaries: false };
    case 'prebuilt':
      // The prebuilt binaries are built with GGML_NATIVE=OFF; naming that option moves the
      // local-build lookup to a folder no native build uses, so only the prebuilt ones are found.
      return { ...never, cmakeOptions: { GGML_NATIVE: 'OFF' } };
    case 'auto':
      return never;
  }
}

/**
 * Starts the one node-llama-cpp runtime shared by every model, from the build ENGINE_BUILD names.
 * Throws a ConfigError (ENGINE_BUILD) when `native` is asked for and no native build for the
 * backend exists or it was built for a CPU with features this one lacks, or `prebuilt` and a local
 * build was loaded all the same. `auto` passes over a native build made for another CPU.
 */
export async function createLlamaRuntime(options: RuntimeOptions): Promise<LlamaRuntime> {
  const { build, notice } = buildForThisCpu(options.build, options.build === 'prebuilt' ? [] : foreignBuilds(), localBuildsDir());
  let llama: Llama;
  try {
    llama = await getLlama({
      gpu: options.gpu === 'false' ? false : options.gpu,
      ...engineLoadOptions(build),
      maxThreads: options.maxThreads,
      logLevel: options.onEngineLog ? LlamaLogLevel.warn : LlamaLogLevel.error,
      logger: (level, message) => options.onEngineLog?.(level, message.trimEnd()),
    });
  } catch (error) {
    if (options.build === 'native' && error instanceof NoBinaryFoundError) throw noNativeBuild(options.gpu);
    throw error;
  }
  const info = engineInfoOf(llama);
  if (build === 'prebuilt' && info.build !== 'prebuilt') {
    await llama.dispose();
    throw new ConfigError('ENGINE_BUILD', `prebuilt: node-llama-cpp loaded a local build from ${localBuildsDir()} instead (built with GGML_NATIVE=OFF?); remove it or set ENGINE_BUILD=auto`);
  }
  return { llama, info, ...(notice !== undefined && { notice }) };
}

/**
 * The build to load given the local builds this CPU cannot run (made with `-march=native` on a CPU
 * with more instructions: their code dies of SIGILL at its first use). `native` refuses them with a
 * ConfigError; `auto` takes the prebuilt engine instead, with a notice saying why.
 */
export function buildForThisCpu(requested: EngineBuildChoice, foreign: ForeignBuild[], dir: string): { build: EngineBuildChoice; notice?: string } {
  if (foreign.length === 0) return { build: requested };
  const lacking = foreign.map(({ folder, missing }) => `${folder}: ${missing.slice(0, 6).join(', ')}${missing.length > 6 ? ', ...' : ''}`).join('; ');
  const why = `the native build in ${dir} was made on a CPU with instructions this one lacks (${lacking})`;
  if (requested === 'native') throw new ConfigError('ENGINE_BUILD', `native: ${why}; run \`npm run build:engine\` on this machine, or set ENGINE_BUILD=prebuilt`);
  return { build: 'prebuilt', notice: `${why}: the prebuilt engine is loaded instead; run \`npm run build:engine\` on this machine to use a native one` };
}

function noNativeBuild(gpu: RuntimeOptions['gpu']): ConfigError {
  const dir = localBuildsDir();
  const present = finishedLocalBuilds(dir);
  const backend = gpu === 'false' ? 'the CPU' : gpu === 'auto' ? 'any usable backend' : gpu;
  return new ConfigError(
    'ENGINE_BUILD',
    `native: no native engine build for ${backend} in ${dir} (${present.length > 0 ? `found: ${present.join(', ')}` : 'none built'}); ` +
      `run \`npm run build:engine\`${gpu === 'cuda' || gpu === 'vulkan' ? ` -- --gpu ${gpu}` : ''} first, or set ENGINE_BUILD=auto`,
  );
}
