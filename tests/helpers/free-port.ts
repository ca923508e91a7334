import { createServer, type AddressInfo } from 'node:net';

/**
 * A loopback port that was free a moment ago, for daemons that cannot pick their own (redis-server
 * and nginx take a number). Another process could take it in between; callers that start a
 * daemon on it retry with a fresh one when the daemon fails to bind.
 */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
