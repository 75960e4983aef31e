/**
 * The outbound-HTTP trap: an HTTP proxy on the bridge address that refuses everything and records
 * it. tailscaled, derper and headscale get HTTP_PROXY/HTTPS_PROXY pointing here (and NO_PROXY for
 * our own subnet and loopback), so a stray request to the outside world is refused, shows up in
 * the test output, and makes `assertNoForeignTraffic` fail, instead of silently leaving the host.
 */
import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';

export interface TrapHit {
  readonly at: string;
  /** 'CONNECT' for HTTPS tunnelling, else the HTTP method. */
  readonly method: string;
  /** The proxied URL, or host:port for CONNECT. */
  readonly target: string;
  /** Address of the process that made the request. */
  readonly from: string;
}

export class ProxyTrap {
  readonly hits: TrapHit[] = [];

  private constructor(
    private readonly server: Server,
    readonly host: string,
    readonly port: number,
    private readonly log: (msg: string) => void,
  ) {}

  /** The value for HTTP_PROXY / HTTPS_PROXY. */
  get url(): string {
    return `http://${this.host}:${this.port}`;
  }

  /** Starts the trap on `host` (a free port is chosen). */
  static async start(host: string, log: (msg: string) => void): Promise<ProxyTrap> {
    const server = createServer();
    const sockets = new Set<Socket>();
    server.on('connection', (s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    server.on('close', () => sockets.forEach((s) => s.destroy()));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, host, () => resolve());
    });
    const addr = server.address();
    if (addr === null || typeof addr === 'string') throw new Error('trap: no address');
    const trap = new ProxyTrap(server, host, addr.port, log);
    server.on('request', (req, res) => {
      trap.record(req.method ?? '?', req.url ?? '?', req.socket.remoteAddress ?? '?');
      res.writeHead(403, { 'content-type': 'text/plain' });
      res.end('switchboard test harness: outbound traffic is not allowed\n');
    });
    server.on('connect', (req, socket: Socket) => {
      trap.record('CONNECT', req.url ?? '?', socket.remoteAddress ?? '?');
      socket.end('HTTP/1.1 403 Forbidden\r\n\r\n');
    });
    return trap;
  }

  private record(method: string, target: string, from: string): void {
    const hit = { at: new Date().toISOString(), method, target, from };
    this.hits.push(hit);
    this.log(`TRAPPED outbound request: ${method} ${target} from ${from}`);
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}
