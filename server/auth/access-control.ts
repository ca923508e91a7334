import type { Config } from '../config/config.js';
import type { Logger } from '../telemetry/logger.js';
import { AdminToken } from './admin-token.js';
import { ApiKeyStore } from './api-keys.js';
import { presentedSecret } from './bearer.js';

/** Decides who may use admin routes: the admin token passes; a client API key is forbidden (403), anything else unauthorized (401). */
export interface AdminCheck {
  verify(headers: Record<string, string>, protocols?: readonly string[]): boolean;
  isClientKey(headers: Record<string, string>, protocols?: readonly string[]): boolean;
}

export interface AccessControl {
  /** The API keys; undefined when the service runs open. */
  keys: ApiKeyStore | undefined;
  admin: AdminCheck;
  adminToken: AdminToken;
}

/** Loads the keys file and the admin token; says loudly when the service runs without keys. */
export async function createAccessControl(config: Config, logger: Logger): Promise<AccessControl> {
  const adminToken = AdminToken.fromConfig(config.adminToken, config.adminTokenFile);
  logAdminToken(adminToken, logger);
  const keys = config.keysFile ? await ApiKeyStore.load(config.keysFile) : undefined;
  if (keys) logger.info({ keysFile: config.keysFile, keys: keys.size }, 'API keys loaded');
  else logger.warn('KEYS_FILE is not set: the service runs OPEN, any client may connect without an API key');
  return {
    keys,
    adminToken,
    admin: {
      verify: (headers, protocols) => adminToken.verify(headers, protocols),
      isClientKey: (headers, protocols) => {
        const secret = presentedSecret(headers, protocols);
        return secret !== undefined && keys?.authenticate(secret) !== undefined;
      },
    },
  };
}

/** Says where the admin token comes from (never the token itself) and warns about a token file others can read. */
function logAdminToken(adminToken: AdminToken, logger: Logger): void {
  const file = adminToken.generatedFile;
  if (!file) return;
  if (adminToken.source === 'created') logger.warn({ file }, 'ADMIN_TOKEN is empty: a random admin token was written to this file');
  else if (adminToken.source === 'replaced') logger.warn({ file }, 'ADMIN_TOKEN is empty and this file held no usable token: a new random admin token was written to it');
  else logger.info({ file }, 'ADMIN_TOKEN is empty: using the admin token kept in this file');
  if (adminToken.fileOpenToOthers) {
    const mode = (adminToken.fileMode ?? 0).toString(8).padStart(3, '0');
    logger.warn({ file, mode }, 'the admin token file can be read or written by other users: restrict it with chmod 600');
  }
}
