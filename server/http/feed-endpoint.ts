import { FEED_PATH, FEED_SUBPROTOCOL } from '../../protocol/feed.js';
import { ConnectErrorCode } from '../../protocol/index.js';
import { refuseUpgrade } from '../gateway/upgrade-refusal.js';
import type { AdminCheck } from '../auth/access-control.js';
import { withoutCredentials } from '../auth/bearer.js';
import type { ConnectionHandler, SocketEndpoint, UpgradeDecision, UpgradeRequest } from '../transport/types.js';
import { FEED_TOPIC, type LiveFeed } from '../telemetry/live-feed.js';

/** The history frame of 5 minutes is a few hundred KB: the send buffer must hold it whole. */
const FEED_MAX_BACKPRESSURE = 8 * 1024 * 1024;

const ignoreInput: ConnectionHandler = { message() {}, drain() {}, closed() {} };

/**
 * `FEED_PATH`: the admin-only live metrics WebSocket. The upgrade needs the admin token
 * (`Authorization: Bearer` or a `bearer.<token>` subprotocol entry) or is refused with 401;
 * only the real subprotocol is echoed. A new socket gets the history frame, then every
 * snapshot published to the feed topic. What clients send is ignored.
 */
export function feedEndpoint(feed: LiveFeed, admin: AdminCheck): SocketEndpoint {
  return {
    pattern: FEED_PATH,
    maxPayloadLength: 4 * 1024,
    idleTimeoutS: 120,
    // A dashboard that stops reading loses snapshots past this (uWS drops them); the next one replaces them.
    maxBackpressure: FEED_MAX_BACKPRESSURE,
    upgrade(request: UpgradeRequest): UpgradeDecision {
      if (!admin.verify(request.headers, request.protocols)) {
        if (admin.isClientKey(request.headers, request.protocols)) return refuseUpgrade(ConnectErrorCode.forbidden, 'client API keys cannot open the admin feed');
        return refuseUpgrade(ConnectErrorCode.unauthorized, 'admin token required', { 'www-authenticate': 'Bearer' });
      }
      const offered = withoutCredentials(request.protocols);
      const protocol = offered.find((entry) => entry === FEED_SUBPROTOCOL);
      if (offered.length > 0 && protocol === undefined) {
        return refuseUpgrade(ConnectErrorCode.badRequest, `unsupported subprotocol; use ${FEED_SUBPROTOCOL}`);
      }
      return {
        accept: true,
        protocol,
        open(connection) {
          // Both happen in this callback, so no snapshot can slip between the history and the live ones.
          connection.send(feed.historyFrame(), true);
          connection.subscribe(FEED_TOPIC);
          return ignoreInput;
        },
      };
    },
  };
}
