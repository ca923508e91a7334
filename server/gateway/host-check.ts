/**
 * The Host header check against DNS rebinding: a page on a name the attacker controls, re-pointed
 * at 127.0.0.1, sends `Host: evil.example` and an Origin to match, so comparing the two proves
 * nothing. An open service therefore serves only the names it knows: its listen address, localhost,
 * loopback addresses and the configured ones.
 */
export class HostCheck {
  private readonly names: ReadonlySet<string> | 'any';

  /** Throws when an ALLOWED_HOSTS entry is not a host name (with or without a port). */
  constructor(listenHost: string, configured: string) {
    const list = configured.split(',').map((entry) => entry.trim()).filter(Boolean);
    if (list.includes('*')) {
      this.names = 'any';
      return;
    }
    const names = list.map((entry) => {
      const name = /[/\s@?#]/.test(entry) ? undefined : hostName(entry);
      if (!name) throw new Error(`ALLOWED_HOSTS: "${entry}" is not a host name (like chat.example or chat.example:8080)`);
      return name;
    });
    this.names = new Set([...names, normalize(listenHost), 'localhost']);
  }

  /** True when the Host header (with or without a port) names this service. */
  allows(hostHeader: string | undefined): boolean {
    if (this.names === 'any') return true;
    if (hostHeader === undefined) return false;
    const name = hostName(hostHeader);
    return name !== undefined && (this.names.has(name) || isLoopback(name) || name.endsWith('.localhost'));
  }
}

/**
 * The host name of a Host header, without port, brackets or trailing dot, lower case; undefined
 * for anything that is not `name`, `name:port`, `[v6]` or `[v6]:port` with a numeric port.
 */
function hostName(header: string): string | undefined {
  const match = /^(?:\[([0-9a-f:.]+)\]|([^[\]:/\s@?#]+))(?::(\d{1,5}))?$/.exec(header.trim().toLowerCase());
  if (!match) return undefined;
  return match[1] ?? normalize(match[2]!);
}

function normalize(name: string): string {
  const lower = name.trim().toLowerCase().replace(/^\[|\]$/g, '');
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

function isLoopback(name: string): boolean {
  return name === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name);
}
