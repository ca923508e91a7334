import { existsSync } from 'node:fs';
import path from 'node:path';

/*
 * Debian binaries some tests drive (redis-server, nginx, promtool). `.ci/run` installs them; a
 * developer without them sees those tests skipped with the reason, and CI (CI set) fails instead.
 */

/** Where Debian puts daemons, which a non-root PATH often lacks. */
const EXTRA_DIRS = ['/usr/sbin', '/usr/local/sbin', '/sbin'];

/** The absolute path of an executable on PATH (or in the sbin folders), or undefined. */
export function findBinary(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean), ...EXTRA_DIRS];
  return dirs.map((dir) => path.join(dir, name)).find((candidate) => existsSync(candidate));
}

/**
 * Why a suite that needs these binaries cannot run here, or undefined when it can. In CI the
 * suite runs anyway (and fails on the missing binary): CI must never skip it.
 */
export function missingBinaries(names: readonly string[]): string | undefined {
  const missing = names.filter((name) => findBinary(name) === undefined);
  if (missing.length === 0 || process.env.CI) return undefined;
  return `${missing.join(', ')} not installed (apt-get install ${missing.map(debianPackageOf).join(' ')}; .ci/run installs them)`;
}

/** The binary, or a clear failure naming the package that brings it. */
export function requireBinary(name: string): string {
  const found = findBinary(name);
  if (!found) throw new Error(`${name} is not installed: apt-get install ${debianPackageOf(name)}`);
  return found;
}

function debianPackageOf(name: string): string {
  return ({ 'redis-server': 'redis-server', nginx: 'nginx-light', promtool: 'prometheus' } as Record<string, string>)[name] ?? name;
}
