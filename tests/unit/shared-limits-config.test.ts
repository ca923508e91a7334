import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../server/config/config.js';
import { ConfigError } from '../../server/config/settings.js';
import { configSummary } from '../../server/telemetry/config-summary.js';
import { redactedUrl } from '../../server/shared-limits/redis-link.js';

describe('REDIS_URL', () => {
  it('is empty by default: per-key limits stay in the process', () => {
    expect(loadConfig({}).redisUrl).toBe('');
  });

  it('takes redis:// and rediss:// URLs, with credentials and a database', () => {
    expect(loadConfig({ REDIS_URL: ' redis://redis:6379 ' }).redisUrl).toBe('redis://redis:6379');
    expect(loadConfig({ REDIS_URL: 'rediss://user:secret@redis.internal:6380/2' }).redisUrl).toBe('rediss://user:secret@redis.internal:6380/2');
  });

  it('refuses anything else, naming the variable and never repeating the value (it may hold a password)', () => {
    for (const bad of ['http://user:hunter2@redis:6379', 'redis-host:6379', 'hunter2']) {
      let caught: unknown;
      try {
        loadConfig({ REDIS_URL: bad });
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(ConfigError);
      expect((caught as ConfigError).variable).toBe('REDIS_URL');
      expect((caught as Error).message).not.toContain('hunter2');
    }
  });

  it('is logged only as set or unset, and shown in logs without its credentials', () => {
    expect(configSummary(loadConfig({ REDIS_URL: 'redis://:hunter2@redis:6379' })).REDIS_URL).toBe('set');
    expect(redactedUrl('redis://:hunter2@redis:6379/1')).toBe('redis://redis:6379/1');
  });
});
