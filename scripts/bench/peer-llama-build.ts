import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, homedir } from 'node:os';
import path from 'node:path';

/*
 * llama.cpp's own llama-server, built once from the llama.cpp source node-llama-cpp ships
 * (`node_modules/node-llama-cpp/llama/gitRelease.bundle`) and kept in a cache folder outside the
 * repository, so the peer benchmark compares the service with the same llama.cpp release.
 */

const ROOT = path.resolve(import.meta.dirname, '../..');
const LLAMA_SOURCE_DIR = path.join(ROOT, 'node_modules/node-llama-cpp/llama');

/** cmake options: CPU only, tuned for this machine (as llama.cpp's own build guide does), no network. */
const CMAKE_OPTIONS = [
  '-DCMAKE_BUILD_TYPE=Release',
  '-DLLAMA_CURL=OFF',
  '-DLLAMA_BUILD_TESTS=OFF',
  '-DLLAMA_BUILD_EXAMPLES=OFF',
  '-DGGML_NATIVE=ON',
  // One self-contained binary: no libllama.so / libggml*.so to find at run time.
  '-DBUILD_SHARED_LIBS=OFF',
];

/** A build that cannot start or failed; its message says what to do. */
export class LlamaServerBuildError extends Error {
  override name = 'LlamaServerBuildError';
}

/** Where llama-server is (or will be) and from which llama.cpp release. */
export interface LlamaServerLocation {
  /** The llama.cpp release tag of the shipped source. */
  release: string;
  /** The cache folder: `src/` (the clone), `build/` and `build.log`. */
  dir: string;
  binary: string;
  /** True when LLAMA_SERVER_BIN named the binary: nothing is built. */
  external: boolean;
}

/**
 * Where llama-server lives: LLAMA_SERVER_BIN (a binary used as is), else
 * `$LLAMA_SERVER_DIR/build/bin/llama-server`, LLAMA_SERVER_DIR defaulting to
 * `${XDG_CACHE_HOME:-~/.cache}/llm-stream/llama-server-<release>`.
 */
export function llamaServerLocation(env: NodeJS.ProcessEnv = process.env): LlamaServerLocation {
  const release = shippedRelease();
  if (env.LLAMA_SERVER_BIN) {
    const binary = path.resolve(env.LLAMA_SERVER_BIN);
    return { release, dir: path.dirname(binary), binary, external: true };
  }
  const cacheHome = env.XDG_CACHE_HOME || path.join(homedir(), '.cache');
  const dir = path.resolve(env.LLAMA_SERVER_DIR || path.join(cacheHome, 'llm-stream', `llama-server-${release}`));
  return { release, dir, binary: path.join(dir, 'build', 'bin', 'llama-server'), external: false };
}

/**
 * Returns the path of a runnable llama-server, building it first when the cache has none
 * (about 10 minutes on 2 cores; progress goes to `build.log` in the cache folder).
 */
export async function ensureLlamaServer(log: (line: string) => void = (line) => console.error(line)): Promise<string> {
  const location = llamaServerLocation();
  if (isExecutable(location.binary)) return location.binary;
  if (location.external) throw new LlamaServerBuildError(`LLAMA_SERVER_BIN=${location.binary} is not an executable file`);
  await buildLlamaServer(location, log);
  return location.binary;
}

async function buildLlamaServer(location: LlamaServerLocation, log: (line: string) => void): Promise<void> {
  checkTools();
  mkdirSync(location.dir, { recursive: true });
  const lock = takeBuildLock(location.dir);
  try {
    const source = path.join(location.dir, 'src');
    const logFile = path.join(location.dir, 'build.log');
    log(`building llama-server ${location.release} in ${location.dir} (once; about 10 minutes on 2 cores; log: ${logFile})`);
    if (!existsSync(path.join(source, 'CMakeLists.txt'))) {
      // Cloned beside, then renamed: an interrupted clone never passes for a finished one.
      const partial = `${source}.partial`;
      rmSync(partial, { recursive: true, force: true });
      await runLogged('git', ['clone', '--quiet', path.join(LLAMA_SOURCE_DIR, 'gitRelease.bundle'), partial], logFile);
      renameSync(partial, source);
    }
    const build = path.join(location.dir, 'build');
    await runLogged('cmake', ['-S', source, '-B', build, ...CMAKE_OPTIONS], logFile);
    await runLogged('cmake', ['--build', build, '--target', 'llama-server', '--parallel', String(availableParallelism())], logFile);
    if (!isExecutable(location.binary)) throw new LlamaServerBuildError(`the build finished but ${location.binary} is missing; see ${logFile}`);
    log(`llama-server built: ${location.binary}`);
  } finally {
    rmSync(lock, { force: true });
  }
}

/** A file holding this process's id; one left by a process that is gone is taken over. */
function takeBuildLock(dir: string): string {
  const lock = path.join(dir, '.building');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(lock, String(process.pid), { flag: 'wx' });
      return lock;
    } catch {
      const holder = Number(readFileSync(lock, 'utf8'));
      if (isRunning(holder)) throw new LlamaServerBuildError(`another build of llama-server (process ${holder}) runs in ${dir}; wait for it`);
      rmSync(lock, { force: true });
    }
  }
  throw new LlamaServerBuildError(`cannot take the build lock ${lock}`);
}

function isRunning(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The llama.cpp release of the source node-llama-cpp ships. */
function shippedRelease(): string {
  const infoFile = path.join(LLAMA_SOURCE_DIR, 'llama.cpp.info.json');
  try {
    const { tag } = JSON.parse(readFileSync(infoFile, 'utf8')) as { tag?: unknown };
    if (typeof tag === 'string' && /^[\w.-]+$/.test(tag)) return tag;
  } catch {
    // reported below
  }
  throw new LlamaServerBuildError(`cannot read the llama.cpp release from ${infoFile}; is node-llama-cpp installed (npm install)?`);
}

/** Fails with what to install when cmake, git or a C/C++ compiler is missing. */
function checkTools(): void {
  const missing = [
    ['cmake', '--version'],
    ['git', '--version'],
    [process.env.CC || 'cc', '--version'],
    [process.env.CXX || 'c++', '--version'],
  ].filter(([command, ...args]) => spawnSync(command!, args, { stdio: 'ignore' }).status !== 0).map(([command]) => command!);
  if (!existsSync(path.join(LLAMA_SOURCE_DIR, 'gitRelease.bundle'))) missing.push(`${LLAMA_SOURCE_DIR}/gitRelease.bundle (npm install)`);
  if (missing.length > 0) {
    throw new LlamaServerBuildError(`cannot build llama-server, missing: ${missing.join(', ')}. On Debian/Ubuntu: sudo apt-get install cmake git build-essential`);
  }
}

/** Runs a command with its output appended to the log file; a failure quotes the log's tail. */
function runLogged(command: string, args: string[], logFile: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const out = createWriteStream(logFile, { flags: 'a' });
    out.write(`\n$ ${command} ${args.join(' ')}\n`);
    // A process group of its own, ended as a whole with the benchmark (Ctrl-C goes through 'exit'):
    // no compiler goes on without it.
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const killChild = (): void => {
      try {
        process.kill(-child.pid!, 'SIGTERM');
      } catch {
        // already gone
      }
    };
    process.once('exit', killChild);
    child.once('exit', () => process.removeListener('exit', killChild));
    child.stdout.pipe(out, { end: false });
    child.stderr.pipe(out, { end: false });
    child.once('error', (error) => out.end(() => reject(new LlamaServerBuildError(`${command} could not start: ${error.message}`))));
    child.once('close', (code, signal) =>
      out.end(() => {
        if (code === 0) resolve();
        else reject(new LlamaServerBuildError(`${command} ${args[0]} failed (${code ?? signal}); last lines of ${logFile}:\n${logTail(logFile)}`));
      }),
    );
  });
}

function logTail(file: string): string {
  return readFileSync(file, 'utf8').split('\n').slice(-25).join('\n');
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
