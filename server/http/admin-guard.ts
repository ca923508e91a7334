import type { AdminCheck } from '../auth/access-control.js';
import type { HttpReply, HttpRequestInfo } from '../transport/types.js';
import { jsonReply } from './json-reply.js';

/** Wraps an admin route: 401 without the admin token, 403 for a client key, else the handler. */
export function requireAdmin(check: AdminCheck, handle: (request: HttpRequestInfo) => HttpReply | Promise<HttpReply>) {
  return (request: HttpRequestInfo): HttpReply | Promise<HttpReply> => {
    if (check.verify(request.headers)) return handle(request);
    if (check.isClientKey(request.headers)) return jsonReply(403, { error: 'forbidden', message: 'client API keys cannot use admin routes' });
    return jsonReply(401, { error: 'unauthorized', message: 'this route needs the admin token as a bearer token' }, { 'www-authenticate': 'Bearer realm="admin"' });
  };
}
