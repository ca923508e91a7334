import { STREAM_PATH } from '../../../../protocol/index.js';
// protocol/index.ts does not re-export FEED_SUBPROTOCOL (yet): take it from its module.
import { FEED_PATH, FEED_SUBPROTOCOL } from '../../../../protocol/feed.js';

export { FEED_SUBPROTOCOL };

/** Where the page was served from; the dashboard always talks to the server that served it. */
export interface Origin {
  protocol: string;
  host: string;
}

function wsBase(origin: Origin): string {
  return `${origin.protocol === 'https:' ? 'wss' : 'ws'}://${origin.host}`;
}

export function feedUrl(origin: Origin): string {
  return wsBase(origin) + FEED_PATH;
}

export function streamUrl(origin: Origin): string {
  return wsBase(origin) + STREAM_PATH;
}

/** The WebSocket subprotocols of the feed: the real one first, then the credential entry. */
export function feedProtocols(token: string): string[] {
  return [FEED_SUBPROTOCOL, `bearer.${token}`];
}

/**
 * A token the browser can put into Sec-WebSocket-Protocol: HTTP token characters only. Others
 * would make `new WebSocket` throw, so sign-in refuses them up front with a clear message.
 */
export function isWellFormedToken(token: string): boolean {
  return /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(token);
}
