/**
 * Builds node-llama-cpp's engine from the llama.cpp source the package ships, for this very CPU
 * (GGML_NATIVE=ON), into `node_modules/node-llama-cpp/llama/localBuilds/`, where the server finds it
 * at start (ENGINE_BUILD=auto or native). Nothing is downloaded: the source is cloned from the
 * package's git bundle, and cmake and the compilers must be installed.
 * Usage: npm run build:engine [-- --gpu cuda|vulkan|metal] [-- --slim] [-- --check]
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createLlamaRuntime, type RuntimeOptions } from '../server/engine/llama-runtime.js';
import { BUILD_HOST_FILE, llamaPackageDir, localBuildsDir, recordBuildHost } from '../server/engine/native-build.js';

const USAGE = `usage: npm run build:engine [-- --gpu cuda|vulkan|metal] [-- --slim] [-- --check]
  Builds the engine for this CPU from the llama.cpp source node-llama-cpp ships (no download)
  into node_modules/node-llama-cpp/llama/localBuilds/; the server loads it at the next start.
  --gpu    build with a GPU backend, its CPU part native too (needs the GPU toolchain: nvcc for
           cuda, the Vulkan SDK for vulkan); default: CPU only
  --slim   then delete the build tree and the cloned source, keeping only what the server loads
           (for images; a later build starts from scratch anyway)
  --check  build nothing: say whether a native build is present and loads, exit 1 when not
Needs cmake, a C and a C++ compiler, make or ninja, and git. Takes tens of minutes on 2 cores; while
it runs, servers and tests that start from this node_modules wait for it (node-llama-cpp's build lock).`;

/** Exit codes: 1 the build or the check failed, 2 a tool is missing or the command line is wrong. */
const EXIT_FAILED = 1;
const EXIT_UNUSABLE = 2;

class UsageError extends Error {
  override name = 'UsageError';
}

type Gpu = 'false' | 'cuda' | 'vulkan' | 'metal';

async function main(): Promise<number> {
  const { gpu, check, slim, help } = parseCommandLine();
  if (help) {
    console.log(USAGE);
    return 0;
  }
  if (check) return (await verify(gpu)) ? 0 : EXIT_FAILED;

  const missing = missingTools(gpu);
  if (missing.length > 0) {
    console.error(`build:engine: cannot build, missing: ${missing.join('; ')}.`);
    console.error('On Debian or Ubuntu: sudo apt-get install cmake g++ make git (the server keeps using the prebuilt engine meanwhile).');
    return EXIT_UNUSABLE;
  }
  const bundleProblem = sourceBundleProblem();
  if (bundleProblem) {
    console.error(`build:engine: ${bundleProblem}`);
    return EXIT_UNUSABLE;
  }

  console.log(`Building the engine for this CPU${gpu === 'false' ? '' : ` and ${gpu}`}: servers and tests starting from this node_modules wait until it is done.`);
  const started = performance.now();
  if (!sourceCloned()) {
    console.log('Cloning the llama.cpp source from the package bundle...');
    await runCli(['source', 'download', '--skipBuild', '--noUsageExample']);
  }
  await runCli(['source', 'build', '--gpu', gpu, '--noUsageExample']);
  const seconds = (performance.now() - started) / 1000;

  const folder = lastBuildFolder();
  if (!folder) {
    console.error('build:engine: node-llama-cpp reported success but recorded no build (llama/lastBuild.json)');
    return EXIT_FAILED;
  }
  // -march=native: a copy of this build on a CPU with fewer instructions must not be loaded.
  recordBuildHost(folder);
  const releaseDir = path.join(localBuildsDir(), folder, 'Release');
  console.log(`\nBuilt in ${formatDuration(seconds)}: ${releaseDir} (${formatMiB(folderBytes(releaseDir))})`);
  if (!(await verify(gpu))) return EXIT_FAILED;
  if (slim) console.log(`Deleted the build tree and the cloned source: ${formatMiB(slimDown(folder))}.`);
  return 0;
}

/**
 * Keeps of a build only what node-llama-cpp loads (`Release/`, `buildDone.status`) and the build
 * host record; node-llama-cpp deletes the rest before any rebuild, and clones the source again.
 * Returns the bytes freed.
 */
function slimDown(folder: string): number {
  const keep = new Set(['Release', 'buildDone.status', BUILD_HOST_FILE]);
  const buildDir = path.join(localBuildsDir(), folder);
  const doomed = [...readdirSync(buildDir).filter((name) => !keep.has(name)).map((name) => path.join(buildDir, name)), path.join(llamaPackageDir(), 'llama.cpp')];
  let freed = 0;
  for (const target of doomed) {
    freed += existsSync(target) && statSync(target).isDirectory() ? folderBytes(target) : existsSync(target) ? statSync(target).size : 0;
    rmSync(target, { recursive: true, force: true });
  }
  return freed;
}

function parseCommandLine(): { gpu: Gpu; check: boolean; slim: boolean; help: boolean } {
  const { values } = parseArgs({
    options: {
      gpu: { type: 'string', default: 'false' },
      check: { type: 'boolean', default: false },
      slim: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  const gpu = values.gpu === 'cpu' ? 'false' : values.gpu;
  if (!['false', 'cuda', 'vulkan', 'metal'].includes(gpu)) throw new UsageError(`--gpu must be cuda, vulkan or metal (or false: CPU only), got "${gpu}"`);
  return { gpu: gpu as Gpu, check: values.check, slim: values.slim, help: values.help };
}

/** What the build needs and this machine lacks, each with what it is for. */
function missingTools(gpu: Gpu, env: NodeJS.ProcessEnv = process.env): string[] {
  const missing: string[] = [];
  const need = (what: string, names: string[], override?: string): void => {
    const candidates = override ? [override] : names;
    if (candidates.some((name) => findExecutable(name, env))) return;
    missing.push(candidates.length === 1 && candidates[0] === what ? what : `${what} (${candidates.join(' or ')})`);
  };
  // node-llama-cpp would download a cmake of its own when none is installed: not here.
  need('cmake', ['cmake']);
  need('a C++ compiler', ['c++', 'g++', 'clang++'], env.CXX);
  need('a C compiler', ['cc', 'gcc', 'clang'], env.CC);
  need('a build tool', ['make', 'ninja']);
  need('git, to clone the source bundle', ['git']);
  if (gpu === 'cuda') need('the CUDA compiler', ['nvcc'], env.CUDACXX);
  if (gpu === 'vulkan') need('the Vulkan shader compiler', ['glslc']);
  return missing;
}

/** Absolute path of an executable: `name` itself when it has a slash, else the first on PATH. */
function findExecutable(name: string, env: NodeJS.ProcessEnv): string | undefined {
  const candidates = name.includes('/') ? [name] : (env.PATH ?? '').split(path.delimiter).filter(Boolean).map((dir) => path.join(dir, name));
  return candidates.find((candidate) => {
    try {
      accessSync(candidate, constants.X_OK);
      return statSync(candidate).isFile();
    } catch {
      return false;
    }
  });
}

/**
 * Why the shipped source cannot be used without a download, if it cannot: node-llama-cpp clones
 * its git bundle only when the bundle is of the release it would build.
 */
function sourceBundleProblem(): string | undefined {
  if (sourceCloned()) return undefined;
  const dir = llamaPackageDir();
  if (!existsSync(path.join(dir, 'gitRelease.bundle'))) return `node-llama-cpp ships no llama.cpp source bundle (${dir}/gitRelease.bundle); reinstall node-llama-cpp`;
  const release = (JSON.parse(readFileSync(path.join(dir, 'binariesGithubRelease.json'), 'utf8')) as { release: string }).release;
  if (release === 'latest') return 'the package names no fixed llama.cpp release for its bundle; building would need a download';
  for (const name of ['NODE_LLAMA_CPP_REPO', 'NODE_LLAMA_CPP_REPO_RELEASE']) {
    if (process.env[name]) return `${name} is set: it asks for another llama.cpp source than the bundled one, which would be downloaded; unset it`;
  }
  return undefined;
}

/** True when the source was cloned already (a previous build). */
function sourceCloned(): boolean {
  return existsSync(path.join(llamaPackageDir(), 'llama.cpp', '.git'));
}

/**
 * Runs node-llama-cpp's CLI at a lower CPU priority, so a server running beside the build stays
 * responsive; git may read only local files, so nothing is fetched even if the bundle failed.
 */
function runCli(args: string[]): Promise<void> {
  const cli = path.join(llamaPackageDir(), '..', 'dist', 'cli', 'cli.js');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { stdio: 'inherit', env: { ...process.env, GIT_ALLOW_PROTOCOL: 'file', NODE_LLAMA_CPP_SKIP_DOWNLOAD: 'true' } });
    try {
      // Inherited by the compilers it starts.
      if (child.pid !== undefined) os.setPriority(child.pid, 10);
    } catch {
      // Not permitted here: the build runs at normal priority.
    }
    child.once('error', reject);
    child.once('exit', (code, signal) => (code === 0 ? resolve() : reject(new Error(`node-llama-cpp ${args.slice(0, 2).join(' ')} failed (${code ?? signal})`))));
  });
}

/** The folder node-llama-cpp recorded for its last build (`llama/lastBuild.json`). */
function lastBuildFolder(): string | undefined {
  try {
    return (JSON.parse(readFileSync(path.join(llamaPackageDir(), 'lastBuild.json'), 'utf8')) as { folderName?: string }).folderName;
  } catch {
    return undefined;
  }
}

/** Loads the native build as the server would (ENGINE_BUILD=native) and says what it is. */
async function verify(gpu: Gpu): Promise<boolean> {
  const options: RuntimeOptions = { gpu, build: 'native', maxThreads: 1 };
  try {
    const { llama, info } = await createLlamaRuntime(options);
    await llama.dispose();
    console.log(`Native build present: ${info.backend}, CPU library ${info.cpuVariant}, llama.cpp ${info.llamaCppRelease}. The server loads it with ENGINE_BUILD=auto (the default) or native.`);
    return true;
  } catch (error) {
    console.error(`No usable native build: ${error instanceof Error ? error.message : String(error)}`);
    return false;
  }
}

function folderBytes(dir: string): number {
  let total = 0;
  try {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      total += entry.isDirectory() ? folderBytes(full) : statSync(full).size;
    }
  } catch {
    // Absent: 0.
  }
  return total;
}

function formatDuration(seconds: number): string {
  const whole = Math.round(seconds);
  return whole < 120 ? `${whole} s` : `${Math.floor(whole / 60)} min ${whole % 60} s`;
}
const formatMiB = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

try {
  process.exitCode = await main();
} catch (error) {
  const usage = error instanceof UsageError || (error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS'));
  console.error(`build:engine: ${error instanceof Error ? error.message : String(error)}`);
  if (usage) console.error(USAGE);
  process.exitCode = usage ? EXIT_UNUSABLE : EXIT_FAILED;
}
