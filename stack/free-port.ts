import { createServer } from 'node:net';

/**
 * A TCP port on 127.0.0.1 that was free a moment ago, from the kernel's range for outgoing
 * connections: for listeners that start at once and never restart (proxies, probes). A server that
 * takes seconds to bind (PostgreSQL after initdb) or is restarted on its port takes
 * freePortBelow32768: an outgoing connection took such a port in CI (2026-12-05, PostgreSQL of a
 * campaign slice: "could not bind IPv4 address: Address already in use").
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/**
 * Ports freePortBelow32768 has handed out in this process: never handed out twice. A port is free
 * only until its server binds it, and one process often picks several before starting any (the
 * Temporal cluster's 13, the dev server's 3, side by side in the tests' global setup): a random pick
 * could repeat one, and the second server to bind it dies with "address already in use" (CI,
 * 2026-12-05: the cluster's matching found its gRPC port taken and the test run never started).
 */
const handedOut = new Set<number>();

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * A TCP port on 127.0.0.1 below 32768 that was free a moment ago, for servers: random in
 * [lowest, 32767], checked by binding. Below Linux's range for outgoing connections (32768-60999),
 * so no connection's local port takes it between this check and the server's bind, or while a
 * killed server is down before its restart on the same port; and Temporal keeps each service's
 * membership port in a PostgreSQL SMALLINT column (cluster_membership.rpc_port).
 */
export async function freePortBelow32768(lowest = 20_000): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = lowest + Math.floor(Math.random() * (32_768 - lowest));
    // Taken before the check, so that calls running side by side cannot both get it.
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    if (await canListen(port)) return port;
    handedOut.delete(port);
  }
  throw new Error(`no free port found in ${lowest}-32767 on 127.0.0.1`);
}
