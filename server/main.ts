import { existsSync } from 'node:fs';
import { ConfigError } from './config/settings.js';
import { loadConfig } from './config/config.js';
import { startService } from './app.js';
import { createLogger } from './telemetry/logger.js';

// Values already in the environment win over the .env file.
if (existsSync('.env')) process.loadEnvFile('.env');

let config;
try {
  config = loadConfig();
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.error(`Invalid configuration: ${error.message}`);
  process.exit(1);
}

const logger = createLogger(config.logLevel);
// Signals are handled from here on: one during the start stops the service as soon as it is up.
const starting = startService(config, logger).catch((error: Error) => {
  logger.fatal({ err: error }, 'could not start');
  process.exit(1);
});

/**
 * Copies of one stop request that arrive together count once. Ctrl-C on `npm start` signals the
 * whole foreground process group (npm and node) and npm forwards its SIGINT to node as well, so
 * node gets two within a few milliseconds; a control-group kill (systemd) does the same with
 * SIGTERM. Only a signal that comes later than this is an operator's second, impatient one.
 */
const REPEATED_SIGNAL_MS = 500;
let stoppingSince: number | undefined;
let parentWatch: NodeJS.Timeout | undefined;

/** Starts the graceful shutdown once; `announce` logs why. A later second request exits at once. */
const stop = (signal: string, announce: () => void): void => {
  const now = performance.now();
  if (stoppingSince !== undefined) {
    if (now - stoppingSince < REPEATED_SIGNAL_MS) {
      logger.debug({ signal }, 'signal repeated: already shutting down');
      return;
    }
    logger.warn({ signal }, 'second signal: exiting now');
    process.exit(1);
  }
  stoppingSince = now;
  clearInterval(parentWatch);
  announce();
  void starting
    .then((service) => service.shutdown())
    .then(() => {
      logger.info('stopped');
      process.exit(0);
    });
};
const onSignal = (signal: NodeJS.Signals): void => stop(signal, () => logger.info({ signal }, 'shutting down'));
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

const service = await starting;
logger.info({ url: service.streamUrl, http: service.httpUrl }, 'listening');
// Where to go next, for the operator reading the console; never the token itself.
const signIn = config.adminToken ? 'the token in ADMIN_TOKEN' : `the token in ${service.adminToken.generatedFile ?? config.adminTokenFile}`;
logger.info(`stream endpoint ${service.streamUrl} · dashboard ${service.httpUrl}/ (sign in with ${signIn})`);

/*
 * A lost parent under `npm start` stops the service as SIGTERM would. `npm start` is a foreground
 * wrapper: the start script execs node, so npm forwards SIGTERM and SIGINT to it, but when npm
 * dies without forwarding (SIGKILL, SIGHUP, a crash, or an older start script without `exec`)
 * node would otherwise run on re-parented, holding the port with nobody left to stop it; whoever
 * stopped npm meant the service to stop. A service started directly (`node dist/server/main.js`,
 * scripts/start.sh, systemd, Docker, `setsid node dist/server/main.js &`) is not watched: it keeps
 * running when what started it exits, as operators expect of a process they detached on purpose
 * or that a supervisor owns. npm sets npm_lifecycle_event for the script it runs (and its
 * children inherit it: a server that `npm test` or `npm run soak` starts is not under `start`).
 */
if (process.env.npm_lifecycle_event === 'start') {
  const parent = process.ppid;
  parentWatch = setInterval(() => {
    if (process.ppid === parent) return;
    stop('parent exited', () => logger.warn({ parent, ppid: process.ppid }, 'parent process exited: shutting down'));
  }, 1000).unref();
}
