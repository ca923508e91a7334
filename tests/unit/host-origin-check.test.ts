import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../server/config/config.js';
import { HostCheck } from '../../server/gateway/host-check.js';
import { KeyBudgets } from '../../server/gateway/key-budgets.js';
import { UpgradeGuard } from '../../server/gateway/upgrade-guard.js';

const upgrade = (headers: Record<string, string>) => ({ path: '/v1/stream', query: '', headers, remoteAddress: '127.0.0.1', protocols: [] });

describe('ALLOWED_HOSTS entries', () => {
  it('match whatever form an operator writes them in: port, trailing dot, brackets, upper case', () => {
    const check = new HostCheck('127.0.0.1', 'Chat.Example:8080, other.example., [fd00::2]');
    for (const host of ['chat.example', 'chat.example:443', 'CHAT.example:8080', 'other.example', 'other.example.:80', '[fd00::2]:8080', 'localhost:1']) {
      expect(check.allows(host), host).toBe(true);
    }
    for (const host of ['evil.example', 'chat.example.evil', '[fd00::3]', '']) expect(check.allows(host), host).toBe(false);
  });

  it('refuse Host headers that are not a host and an optional numeric port', () => {
    const check = new HostCheck('127.0.0.1', '');
    for (const host of ['[::1]evil.com', 'localhost:80/evil.com', '127.0.0.1:+80', '127.0.0.1:80:80', 'user@localhost', '[::1', 'localhost:']) {
      expect(check.allows(host), host).toBe(false);
    }
    for (const host of ['localhost', 'localhost:8080', '[::1]:8080', '127.0.0.2', 'LOCALHOST.']) expect(check.allows(host), host).toBe(true);
  });

  it('stop the start when an entry is not a host name', () => {
    for (const entry of ['https://chat.example', 'chat.example/path', 'user@chat.example', '[fd00::2']) {
      expect(() => new HostCheck('127.0.0.1', entry), entry).toThrow(/ALLOWED_HOSTS/);
    }
  });
});

describe('ALLOWED_ORIGINS entries', () => {
  const guard = (origins: string) => new UpgradeGuard(loadConfig({ ALLOWED_ORIGINS: origins }), undefined, new KeyBudgets());

  it('match the origin a browser sends whatever case or trailing slash the entry has', () => {
    const allowed = guard('HTTPS://Chat.Example/, http://localhost:5173');
    for (const origin of ['https://chat.example', 'http://localhost:5173']) {
      expect(allowed.check(upgrade({ host: '127.0.0.1:8080', origin })).ok, origin).toBe(true);
    }
    for (const origin of ['https://chat.example:8443', 'http://chat.example', 'https://evil.example', 'null']) {
      expect(allowed.check(upgrade({ host: '127.0.0.1:8080', origin })).ok, origin).toBe(false);
    }
  });

  it('stop the start when an entry is not an http(s) origin', () => {
    for (const entry of ['chat.example', 'https://chat.example/app', 'ftp://chat.example', 'https://chat.example/?x=1']) {
      expect(() => guard(entry), entry).toThrow(/ALLOWED_ORIGINS/);
    }
  });
});
