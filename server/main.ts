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
const service = await startService(config, logger).catch((error: Error) => {
  logger.fatal({ err: error }, 'could not start');
  process.exit(1);
});
logger.info({ url: service.streamUrl, http: service.httpUrl }, 'listening');

let signals = 0;
const stop = (signal: string): void => {
  if (++signals > 1) {
    logger.warn({ signal }, 'second signal: exiting now');
    process.exit(1);
  }
  logger.info({ signal }, 'shutting down');
  void service.shutdown().then(() => {
    logger.info('stopped');
    process.exit(0);
  });
};
process.on('SIGINT', () => stop('SIGINT'));
process.on('SIGTERM', () => stop('SIGTERM'));
