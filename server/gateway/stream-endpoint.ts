import { ConnectErrorCode, STREAM_PATH, Subprotocol, WireLimits, wireFormatOf } from '../../protocol/index.js';
import type { ConnectionHandler, SocketEndpoint, UpgradeDecision, UpgradeRequest } from '../transport/types.js';
import { Session, type SessionContext } from './session.js';
import type { SessionRegistry } from './session-registry.js';
import type { UpgradeGuard } from './upgrade-guard.js';
import { refuseUpgrade } from './upgrade-refusal.js';

const OUR_PROTOCOLS: readonly string[] = [Subprotocol.msgpack, Subprotocol.json];

/** The `/v1/stream` WebSocket endpoint: negotiates the subprotocol and opens a Session. */
export function streamEndpoint(context: SessionContext, registry: SessionRegistry, guard: UpgradeGuard): SocketEndpoint {
  const { config } = context;
  return {
    pattern: STREAM_PATH,
    // Twice the protocol's limit: frames up to it reach the session, which closes with 1009 and a
    // reason; only far larger ones are cut off by the library without a close frame.
    maxPayloadLength: WireLimits.maxFrameBytes * 2,
    idleTimeoutS: config.idleTimeoutS,
    // Far above the high-water mark at which streams pause, so the library never drops a frame.
    maxBackpressure: config.sendHighWaterBytes * 4 + WireLimits.maxFrameBytes,
    upgrade(request: UpgradeRequest): UpgradeDecision | Promise<UpgradeDecision> {
      if (context.isShuttingDown()) return refuseUpgrade(ConnectErrorCode.shuttingDown, 'the server is shutting down', { 'retry-after': '5' });
      const protocol = request.protocols.find((entry) => OUR_PROTOCOLS.includes(entry));
      const offered = request.protocols.filter((entry) => !entry.startsWith('bearer.'));
      if (offered.length > 0 && protocol === undefined) {
        return refuseUpgrade(ConnectErrorCode.badRequest, `unsupported subprotocol; use ${OUR_PROTOCOLS.join(' or ')}`);
      }
      const check = guard.check(request);
      if (!check.ok) return check.refusal;
      const accepted: UpgradeDecision = {
        accept: true,
        protocol,
        open(connection) {
          const session = new Session(connection, wireFormatOf(protocol), context, check.principal, registry);
          guard.opened(check.principal);
          registry.add(session);
          const handler: ConnectionHandler = {
            message: (data, isBinary) => session.message(data, isBinary),
            drain: () => session.drain(),
            closed: (code, message) => {
              // Bookkeeping first: whatever the session does next, the counts stay right.
              registry.remove(session);
              guard.closed(check.principal);
              session.closed(code, message);
            },
            describe: () => session.describe(),
          };
          session.start();
          return handler;
        },
      };
      // Limits shared across replicas (REDIS_URL) count the key's connections on all of them.
      const reserved = guard.reserve(check.principal);
      return reserved ? reserved.then((refusal) => refusal ?? accepted) : accepted;
    },
  };
}
