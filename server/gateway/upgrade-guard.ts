import { ConnectErrorCode } from '../../protocol/index.js';
import type { ApiKeyStore } from '../auth/api-keys.js';
import { presentedSecret } from '../auth/bearer.js';
import type { Config } from '../config/config.js';
import type { UpgradeRequest } from '../transport/types.js';
import { HostCheck } from './host-check.js';
import type { KeyBudget, KeyBudgets } from './key-budgets.js';
import { refuseUpgrade, type UpgradeRefusal } from './upgrade-refusal.js';

/** Who opened a connection: the API key's name and shared budget, or `anonymous` when the service runs open. */
export interface Principal {
  keyName: string;
  budget: KeyBudget | undefined;
  remoteAddress: string;
}

export type UpgradeCheck = { ok: true; principal: Principal } | { ok: false; refusal: UpgradeRefusal };

/**
 * Decides on a WebSocket upgrade before any 101: the Host (DNS rebinding, open mode only), the
 * Origin allow-list (cross-site WebSocket hijacking), the API key, and the connection caps per remote address and per key.
 */
export class UpgradeGuard {
  private readonly perAddress = new Map<string, number>();
  private readonly origins: ReadonlySet<string> | 'any' | 'same-host';
  private readonly hosts: HostCheck;

  constructor(private readonly config: Config, private readonly keys: ApiKeyStore | undefined, private readonly budgets: KeyBudgets) {
    this.hosts = new HostCheck(config.host, config.allowedHosts);
    const list = config.allowedOrigins.split(',').map((origin) => origin.trim()).filter(Boolean);
    this.origins = list.includes('*') ? 'any' : list.length === 0 ? 'same-host' : new Set(list.map(configuredOrigin));
  }

  check(request: UpgradeRequest): UpgradeCheck {
    const forbidden = this.callerRefusal(request.headers);
    if (forbidden !== undefined) return { ok: false, refusal: refuseUpgrade(ConnectErrorCode.forbidden, forbidden) };
    let budget: KeyBudget | undefined;
    if (this.keys) {
      const secret = presentedSecret(request.headers, request.protocols);
      const entry = secret === undefined ? undefined : this.keys.authenticate(secret);
      if (!entry) return { ok: false, refusal: refuseUpgrade(ConnectErrorCode.unauthorized, 'a valid API key is required', { 'www-authenticate': 'Bearer' }) };
      budget = this.budgets.budgetOf(entry);
      const cap = entry.limits?.maxConnections;
      if (cap !== undefined && budget.connections >= cap) return { ok: false, refusal: refuseUpgrade(ConnectErrorCode.tooManyConnections, `this API key may hold at most ${cap} connections`) };
    }
    if ((this.perAddress.get(request.remoteAddress) ?? 0) >= this.config.maxConnectionsPerIp) {
      return { ok: false, refusal: refuseUpgrade(ConnectErrorCode.tooManyConnections, `at most ${this.config.maxConnectionsPerIp} connections per address`) };
    }
    return { ok: true, principal: { keyName: budget?.entry.name ?? 'anonymous', budget, remoteAddress: request.remoteAddress } };
  }

  /**
   * With per-key limits shared across replicas (REDIS_URL), reserves the connection against its
   * key's cap on all of them (one round trip); resolves with the refusal, or undefined when it may
   * open. Undefined (no promise) when `check` decided alone: no key, no shared limits, Redis unreachable.
   */
  reserve(principal: Principal): Promise<UpgradeRefusal | undefined> | undefined {
    const reply = principal.budget && this.budgets.reserveConnection(principal.budget);
    return reply?.then((refused) => (refused === undefined ? undefined : refuseUpgrade(ConnectErrorCode.tooManyConnections, refused)));
  }

  /** Counts an accepted connection against its caps. */
  opened(principal: Principal): void {
    this.perAddress.set(principal.remoteAddress, (this.perAddress.get(principal.remoteAddress) ?? 0) + 1);
    if (principal.budget) this.budgets.attach(principal.budget);
  }

  closed(principal: Principal): void {
    const count = (this.perAddress.get(principal.remoteAddress) ?? 1) - 1;
    if (count <= 0) this.perAddress.delete(principal.remoteAddress);
    else this.perAddress.set(principal.remoteAddress, count);
    if (principal.budget) this.budgets.detach(principal.budget);
  }

  /** Connections counted across all addresses (for tests and the hammer). */
  get openConnections(): number {
    let total = 0;
    for (const count of this.perAddress.values()) total += count;
    return total;
  }

  /**
   * Why a request with these headers may not come in from where it comes (an upgrade, or a call
   * of the HTTP API): the Host in open mode, against DNS rebinding, and the Origin allow-list;
   * undefined when it may.
   */
  callerRefusal(headers: Record<string, string>): string | undefined {
    // With API keys a rebound page has no key to present; open, the Host is all there is to check.
    if (!this.keys && !this.hosts.allows(headers.host)) return 'host not allowed: set ALLOWED_HOSTS to serve this name';
    if (!this.originAllowed(headers.origin, headers.host)) return 'origin not allowed';
    return undefined;
  }

  private originAllowed(origin: string | undefined, host: string | undefined): boolean {
    if (origin === undefined || this.origins === 'any') return true;
    if (this.origins === 'same-host') {
      try {
        return new URL(origin).host === host;
      } catch {
        return false;
      }
    }
    return this.origins.has(serializedOrigin(origin) ?? origin);
  }
}

/** An origin as browsers send it (scheme, host, port; lower case; no path), or undefined. */
function serializedOrigin(value: string): string | undefined {
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.origin : undefined;
  } catch {
    return undefined;
  }
}

/** An ALLOWED_ORIGINS entry in the form browsers send; throws for one that is not an http(s) origin. */
function configuredOrigin(entry: string): string {
  const origin = serializedOrigin(entry);
  const url = origin === undefined ? undefined : new URL(entry);
  if (!origin || (url!.pathname !== '/' && url!.pathname !== '') || url!.search || url!.hash || url!.username) {
    throw new Error(`ALLOWED_ORIGINS: "${entry}" is not an origin (like https://chat.example or http://localhost:5173)`);
  }
  return origin;
}
