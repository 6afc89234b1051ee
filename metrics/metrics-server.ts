import { createServer, type Server } from 'node:http';
import { contentType } from 'prom-client';
import { formatListenAddress, type ListenAddress } from './listen-address';

export interface MetricsServer {
  /** e.g. http://127.0.0.1:9465/metrics */
  url: string;
  close(): Promise<void>;
}

/**
 * Serves `GET /metrics` (Prometheus text format) from `scrape`, and nothing else, on its own
 * address: never on the webhook's public port. Listens before resolving, so a taken port fails the
 * process at start rather than silently exporting nothing.
 */
export async function startMetricsServer(address: ListenAddress, scrape: () => Promise<string>): Promise<MetricsServer> {
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '').split('?')[0];
    if (path !== '/metrics' || (request.method !== 'GET' && request.method !== 'HEAD')) {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found: metrics are on GET /metrics\n');
      return;
    }
    scrape().then(
      (body) => response.writeHead(200, { 'content-type': contentType }).end(request.method === 'HEAD' ? undefined : body),
      () => response.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n'),
    );
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    url: `http://${formatListenAddress(address)}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
