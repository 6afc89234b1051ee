import { createConnection, createServer, type Server, type Socket } from 'node:net';

export type ProxyMode = 'pass' | 'refuse' | 'blackhole' | 'reset';

/**
 * A loopback TCP proxy in front of a real server, switched at run time between passing traffic,
 * refusing connections, accepting and never answering (black hole), and resetting connections.
 * Switching away from `pass` also cuts the connections already open.
 */
export class TcpFaultProxy {
  private server?: Server;
  private readonly sockets = new Set<Socket>();
  private mode: ProxyMode = 'pass';

  constructor(
    private readonly target: { host: string; port: number },
    readonly port: number,
  ) {}

  get currentMode(): ProxyMode {
    return this.mode;
  }

  async start(): Promise<void> {
    await this.listen();
  }

  async setMode(mode: ProxyMode): Promise<void> {
    if (mode === this.mode) return;
    const previous = this.mode;
    this.mode = mode;
    for (const socket of this.sockets) {
      if (mode === 'reset') socket.resetAndDestroy();
      else if (mode !== 'pass') socket.destroy();
    }
    if (mode === 'refuse') await this.unlisten();
    else if (previous === 'refuse') await this.listen();
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await this.unlisten();
  }

  private listen(): Promise<void> {
    const server = createServer((client) => this.accept(client));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
  }

  private unlisten(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    return new Promise((resolve) => (server ? server.close(() => resolve()) : resolve()));
  }

  private accept(client: Socket): void {
    this.track(client);
    if (this.mode === 'reset') return void client.resetAndDestroy();
    if (this.mode === 'blackhole') return; // held open, never answered
    const upstream = createConnection(this.target);
    this.track(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  }

  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => this.sockets.delete(socket));
  }
}
