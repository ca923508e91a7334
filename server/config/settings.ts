import os from 'node:os';

/** One environment variable the service reads: its parser, default and meaning. */
export interface Setting<T> {
  env: string;
  describe: string;
  /** Default as shown in docs and .env.example. */
  defaultText: string;
  /** Never logged nor shown; only whether it is set. */
  secret?: boolean;
  parse(raw: string | undefined): T;
}

/** Raised when a variable holds something the service cannot use; names the variable. */
export class ConfigError extends Error {
  constructor(readonly variable: string, message: string) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

/** Default memory budget: 80 % of the machine's RAM. */
export const defaultMemoryBudget = (): number => Math.floor(os.totalmem() * 0.8);

/** Default thread count: all cores but one, which the event loop keeps (see docs/performance.md). */
export const defaultThreads = (): number => Math.max(1, os.availableParallelism() - 1);

export function integer(env: string, describe: string, fallback: number, min: number, max: number): Setting<number> {
  return {
    env,
    describe,
    defaultText: String(fallback),
    parse(raw) {
      if (raw === undefined || raw.trim() === '') return fallback;
      const value = Number(raw.trim());
      if (!Number.isInteger(value) || value < min || value > max) {
        throw new ConfigError(env, `expected an integer from ${min} to ${max}, got "${raw}"`);
      }
      return value;
    },
  };
}

export function text(env: string, describe: string, fallback: string): Setting<string> {
  return {
    env,
    describe,
    defaultText: fallback === '' ? '(empty)' : fallback,
    parse: (raw) => (raw === undefined || raw.trim() === '' ? fallback : raw.trim()),
  };
}

export function oneOf<const T extends string>(env: string, describe: string, fallback: T, choices: readonly T[]): Setting<T> {
  return {
    env,
    describe,
    defaultText: fallback,
    parse(raw) {
      if (raw === undefined || raw.trim() === '') return fallback;
      const value = raw.trim() as T;
      if (!choices.includes(value)) throw new ConfigError(env, `expected one of ${choices.join(', ')}, got "${raw}"`);
      return value;
    },
  };
}

export function flag(env: string, describe: string, fallback: boolean): Setting<boolean> {
  return {
    env,
    describe,
    defaultText: String(fallback),
    parse(raw) {
      if (raw === undefined || raw.trim() === '') return fallback;
      const value = raw.trim().toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(value)) return true;
      if (['0', 'false', 'no', 'off'].includes(value)) return false;
      throw new ConfigError(env, `expected true or false, got "${raw}"`);
    },
  };
}

export function host(env: string, describe: string, fallback: string): Setting<string> {
  return {
    env,
    describe,
    defaultText: fallback,
    parse(raw) {
      const value = raw === undefined || raw.trim() === '' ? fallback : raw.trim();
      if (!/^[A-Za-z0-9.:\-[\]]+$/.test(value)) throw new ConfigError(env, `not a host name or address: "${raw}"`);
      return value;
    },
  };
}
