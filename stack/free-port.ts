import { createServer } from 'node:net';

/** A TCP port on 127.0.0.1 that was free a moment ago. */
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
 * A TCP port on 127.0.0.1 below 32768 that was free a moment ago, for servers: random in
 * [lowest, 32767], checked by binding. Below Linux's range for outgoing connections (32768-60999),
 * so no connection's local port takes it between this check and the server's bind, or while a
 * killed server is down before its restart on the same port; and Temporal keeps each service's
 * membership port in a PostgreSQL SMALLINT column (cluster_membership.rpc_port).
 */
export async function freePortBelow32768(lowest = 20_000): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = lowest + Math.floor(Math.random() * (32_768 - lowest));
    if (await canListen(port)) return port;
  }
  throw new Error(`no free port found in ${lowest}-32767 on 127.0.0.1`);
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}
