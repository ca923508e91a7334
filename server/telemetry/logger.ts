import { createRequire } from 'node:module';
import path from 'node:path';
import pino from 'pino';
import { RotatingFile } from './rotating-file.js';

export type Logger = pino.Logger;

/** Paths whose values never reach a log line. */
export const REDACTED_PATHS = ['apiKey', 'adminToken', 'prompt', 'headers.authorization', '*.apiKey', '*.adminToken', '*.prompt'];

/** How stdout lines look: `auto` is pretty on a TTY outside production, JSON lines otherwise. */
export type LogFormat = 'auto' | 'json' | 'pretty';

export interface LoggerOptions {
  /** Write to stdout (default true). Tests turn it off and read the files instead. */
  stdout?: boolean;
  /** Default `auto`. */
  format?: LogFormat;
}

/** The multistream behind each logger made here, so log files can be attached to it later. */
const outputs = new WeakMap<Logger, pino.MultiStreamRes<string>>();

/**
 * The service's logger: JSON lines (or pino-pretty on a TTY in development) on stdout, to which
 * `attachLogFiles` adds `app.log` and `error.log` once the configuration is known.
 */
export function createLogger(level: string, options: LoggerOptions = {}): Logger {
  const streams = pino.multistream([]);
  if (options.stdout !== false) streams.add({ level: 'trace', stream: stdoutStream(options.format ?? 'auto') });
  const logger = pino(
    { level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime, redact: { paths: REDACTED_PATHS, censor: '[redacted]' } },
    streams,
  );
  outputs.set(logger, streams);
  return logger;
}

function stdoutStream(format: LogFormat): pino.DestinationStream {
  const pretty = format === 'pretty' || (format === 'auto' && process.stdout.isTTY === true && process.env.NODE_ENV !== 'production');
  // pino-pretty is a development dependency: without it, stdout stays JSON.
  if (pretty && canResolve('pino-pretty')) {
    return pino.transport({ target: 'pino-pretty', options: { destination: 1, colorize: true, translateTime: 'SYS:HH:MM:ss.l' } });
  }
  return pino.destination({ dest: 1, sync: true });
}

function canResolve(name: string): boolean {
  try {
    createRequire(import.meta.url).resolve(name);
    return true;
  } catch {
    return false;
  }
}

/** Adds a stream and returns its id for `remove` (pino numbers streams with `lastId`, untyped). */
function addStream(streams: pino.MultiStreamRes<string>, level: pino.Level, stream: pino.DestinationStream): number {
  streams.add({ level, stream });
  return (streams as unknown as { lastId: number }).lastId;
}

export interface LogFileOptions {
  /** Folder of app.log, access.log and error.log. */
  dir: string;
  /** Level of app.log and access.log (error.log takes warn and above). */
  level: string;
  /** Size at which a file is rotated. */
  maxBytes: number;
  /** Rotated files kept per log. */
  keep: number;
  /** Write access.log (default true). */
  access?: boolean;
}

/** The files attached to a logger; `close()` detaches and flushes them. */
export interface LogFiles {
  /** Writes access.log: one line per connection open/close and per request. Absent when off. */
  readonly access: Logger | undefined;
  close(): Promise<void>;
}

/**
 * Adds `app.log` (everything at the logger's level) and `error.log` (warn and above, with
 * stacks) to a logger made by `createLogger`, and opens `access.log` with a logger of its own.
 * Every file rotates by size and keeps `keep` old files.
 */
export function attachLogFiles(logger: Logger, options: LogFileOptions): LogFiles {
  const file = (name: string): RotatingFile => new RotatingFile({ file: path.join(options.dir, name), maxBytes: options.maxBytes, keep: options.keep });
  const streams = outputs.get(logger);
  const opened: RotatingFile[] = [];
  const ids: number[] = [];
  if (streams) {
    const app = file('app.log');
    const errors = file('error.log');
    opened.push(app, errors);
    ids.push(addStream(streams, 'trace', app), addStream(streams, 'warn', errors));
  } else {
    logger.warn('this logger was not made by createLogger: app.log and error.log are not written');
  }
  let access: Logger | undefined;
  if (options.access !== false) {
    const accessFile = file('access.log');
    opened.push(accessFile);
    access = pino({ level: options.level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime, redact: { paths: REDACTED_PATHS, censor: '[redacted]' } }, accessFile);
  }
  return {
    access,
    async close() {
      if (streams) for (const id of ids) streams.remove(id);
      await Promise.all(opened.map((rotating) => rotating.close()));
    },
  };
}
