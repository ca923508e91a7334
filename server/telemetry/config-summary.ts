import { settings, type Config } from '../config/config.js';
import type { Setting } from '../config/settings.js';

/**
 * The configuration as logged at start: every setting by its environment name, secrets
 * (`secret: true` in the settings table) shown only as `set` or `unset`.
 */
export function configSummary(config: Config): Record<string, unknown> {
  const summary: Record<string, unknown> = {};
  for (const [key, setting] of Object.entries(settings) as [keyof Config, Setting<unknown>][]) {
    const value = config[key];
    summary[setting.env] = setting.secret ? (value === '' || value === undefined ? 'unset' : 'set') : value;
  }
  return summary;
}
