import pino from 'pino';

export type Logger = pino.Logger;

/** Paths whose values never reach a log line. */
export const REDACTED_PATHS = ['apiKey', 'adminToken', 'prompt', 'headers.authorization', '*.apiKey', '*.adminToken', '*.prompt'];

/** The service's JSON-lines logger on stdout. */
export function createLogger(level: string): Logger {
  return pino({ level, base: undefined, redact: { paths: REDACTED_PATHS, censor: '[redacted]' } });
}
