import { ConnectErrorCode } from '../../protocol/index.js';

/** An upgrade answered with an HTTP error before any `101`. */
export interface UpgradeRefusal {
  accept: false;
  status: number;
  body: string;
  headers: Record<string, string>;
}

const STATUS_OF: Record<ConnectErrorCode, number> = {
  [ConnectErrorCode.badRequest]: 400,
  [ConnectErrorCode.unauthorized]: 401,
  [ConnectErrorCode.forbidden]: 403,
  [ConnectErrorCode.tooManyConnections]: 429,
  [ConnectErrorCode.shuttingDown]: 503,
  [ConnectErrorCode.internal]: 500,
  [ConnectErrorCode.unreachable]: 503,
  [ConnectErrorCode.connectionLost]: 503,
};

/** A refusal whose body is `{error: code, message}`, so a client can branch on the code. */
export function refuseUpgrade(code: ConnectErrorCode, message: string, headers: Record<string, string> = {}): UpgradeRefusal {
  return {
    accept: false,
    status: STATUS_OF[code],
    body: JSON.stringify({ error: code, message }),
    headers: { 'content-type': 'application/json', ...headers },
  };
}
