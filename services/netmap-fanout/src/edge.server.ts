/**
 * The client edge: plain HTTP for `GET /key`, health and metrics, the `/ts2021` upgrade into a Noise
 * session, and an HTTP/2 server per Noise connection that routes `/machine/*` requests to the control
 * handlers with the authenticated machine key. Bodies are capped at 1 MiB; malformed input gets an
 * error status and a log line, never a crash.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type * as http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import { errorMessage, type Logger, SwitchboardError } from '@switchboard/common';
import {
  createTs2021UpgradeHandler,
  formatKey,
  NoiseHttp2Server,
  parseMapRequest,
  parseRegisterRequest,
  ProtocolError,
  publicKeyFromPrivate,
  readRequestBody,
  respondJson,
  respondText,
  type NoisePeer,
  type PrivateKey,
} from '@switchboard/protocol';
import type { ControlContext, ControlHandlers, MapResponder } from './control-handlers.js';
import { fromMapRequest, fromRegisterRequest } from './tailcfg-adapter.js';

export const MAX_BODY = 1 << 20;

export interface EdgeOptions {
  host: string;
  port: number;
  serverPrivate: PrivateKey;
  handlers: ControlHandlers;
  logger: Logger;
  minCapVersion: number;
  /** Extra plain-HTTP routes (metrics, readiness); return true when handled. */
  extraRoutes?: (req: IncomingMessage, res: ServerResponse) => boolean;
}

/** Optional endpoints clients may call; answered 501 so they log and continue. */
const OPTIONAL = new Set([
  '/machine/set-dns',
  '/machine/update-health',
  '/machine/set-device-attr',
  '/machine/audit-log',
  '/machine/id-token',
  '/machine/feature/query',
  '/machine/whoami',
]);

export class EdgeServer {
  private server: Server | undefined;
  private readonly h2: NoiseHttp2Server;
  private readonly upgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => boolean;
  readonly publicKeyText: string;
  counters = { upgrades: 0, upgradeFailures: 0, requests: 0, badRequests: 0 };
  boundPort = 0;

  constructor(private readonly o: EdgeOptions) {
    this.publicKeyText = formatKey('machine', publicKeyFromPrivate('machine', o.serverPrivate));
    this.h2 = new NoiseHttp2Server({
      logger: o.logger.child('h2'),
      handler: (stream, headers, peer) => this.onStream(peer, stream, headers),
    });
    this.upgrade = createTs2021UpgradeHandler({
      serverPrivate: o.serverPrivate,
      minCapVersion: o.minCapVersion,
      logger: o.logger.child('ts2021'),
      onConnection: (conn) => {
        this.counters.upgrades++;
        try {
          this.h2.serve(conn);
        } catch (err) {
          this.o.logger.warn('could not start HTTP/2 on a Noise connection', { err });
          conn.destroy();
        }
      },
    });
  }

  async start(): Promise<void> {
    const srv = createServer({ requestTimeout: 30_000, headersTimeout: 10_000 }, (req, res) =>
      this.onRequest(req, res),
    );
    srv.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
      this.onUpgrade(req, socket, head),
    );
    srv.on('clientError', (err, socket) => {
      this.o.logger.debug('bad HTTP request on the client edge', { err });
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    });
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(this.o.port, this.o.host, () => resolve());
    });
    const addr = srv.address();
    if (addr && typeof addr === 'object') this.boundPort = addr.port;
    this.server = srv;
  }

  async stop(): Promise<void> {
    const srv = this.server;
    if (!srv) return;
    await new Promise<void>((r) => {
      srv.close(() => r());
      srv.closeAllConnections();
      void this.h2.close();
    });
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://edge');
    if (req.method === 'GET' && url.pathname === '/key') {
      const v = url.searchParams.get('v');
      if (v !== null && !/^\d+$/.test(v)) {
        res.writeHead(400, { 'content-type': 'text/plain' }).end('invalid capability version in ?v=\n');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ legacyPublicKey: `mkey:${'0'.repeat(64)}`, publicKey: this.publicKeyText }));
      return;
    }
    if (req.method === 'GET' && url.pathname === '/health') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    }
    if (this.o.extraRoutes?.(req, res)) return;
    if (url.pathname === '/ts2021') {
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end(
        '/ts2021 needs "Upgrade: tailscale-control-protocol"; is a proxy stripping the Upgrade header?\n',
      );
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', (err) => this.o.logger.debug('client connection error', { err: errorMessage(err) }));
    if (this.upgrade(req, socket, head)) return;
    this.counters.upgradeFailures++;
    socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
  }

  private onStream(
    peer: NoisePeer,
    stream: http2.ServerHttp2Stream,
    headers: http2.IncomingHttpHeaders,
  ): void {
    this.counters.requests++;
    const ctx: ControlContext = { machineKey: peer.machineKeyText, capVersion: peer.capVersion };
    stream.on('error', (err) => this.o.logger.debug('http2 stream error', { err: errorMessage(err) }));
    const method = String(headers[':method'] ?? '');
    const rawPath = String(headers[':path'] ?? '').split('?')[0] ?? '';
    // Clients keep a login-server path prefix for register and map: match on the suffix.
    const i = rawPath.indexOf('/machine/');
    const path = i >= 0 ? rawPath.slice(i) : rawPath;
    if (path === '/machine/register' || path === '/machine/map') {
      if (method !== 'POST') return this.reply(stream, 405, `${path} takes POST`);
      readRequestBody(stream, MAX_BODY, headers)
        .then((body) =>
          path === '/machine/register' ? this.register(ctx, stream, body) : this.map(ctx, stream, body),
        )
        .catch((err: unknown) => this.failRequest(ctx, stream, path, err));
      return;
    }
    if (OPTIONAL.has(path)) return this.reply(stream, 501, `${path} is not implemented by this server`);
    this.reply(stream, 404, `no such endpoint: ${path}`);
  }

  private failRequest(
    ctx: ControlContext,
    stream: http2.ServerHttp2Stream,
    path: string,
    err: unknown,
  ): void {
    this.counters.badRequests++;
    if (err instanceof ProtocolError && (err.code === 'body_too_large' || err.code === 'noise_closed')) {
      // readRequestBody already answered 413 (or the client went away).
      this.o.logger.warn('request refused', { path, machineKey: ctx.machineKey, reason: err.message });
      return;
    }
    if (err instanceof SwitchboardError && err.code === 'invalid_input') {
      this.o.logger.warn('malformed request', { path, machineKey: ctx.machineKey, err: err.message });
      return this.reply(stream, 400, err.message);
    }
    this.o.logger.error('request failed', { path, machineKey: ctx.machineKey, err });
    this.reply(stream, 500, 'internal error');
  }

  /** Refuses clients older than the configured minimum with a message saying what to do. */
  private supported(stream: http2.ServerHttp2Stream, version: number): boolean {
    if (version >= this.o.minCapVersion) return true;
    this.o.logger.warn('refused an unsupported client', {
      capVersion: version,
      minimum: this.o.minCapVersion,
    });
    this.reply(
      stream,
      400,
      `unsupported client: capability version ${version} is below the minimum ${this.o.minCapVersion}; update tailscale`,
    );
    return false;
  }

  private async register(ctx: ControlContext, stream: http2.ServerHttp2Stream, body: Buffer): Promise<void> {
    const req = fromRegisterRequest(parseRegisterRequest(body));
    if (!this.supported(stream, req.version)) return;
    const r = await this.o.handlers.register(ctx, req);
    if (typeof r.body === 'string') return this.reply(stream, r.status, r.body);
    respondJson(stream, r.status, r.body);
  }

  private async map(ctx: ControlContext, stream: http2.ServerHttp2Stream, body: Buffer): Promise<void> {
    const req = fromMapRequest(parseMapRequest(body));
    if (!this.supported(stream, req.version)) return;
    await this.o.handlers.map(ctx, req, new Http2MapResponder(stream));
  }

  private reply(stream: http2.ServerHttp2Stream, status: number, message: string): void {
    if (stream.headersSent) return;
    respondText(stream, status, message);
  }
}

/** A map stream over an HTTP/2 response: each frame is written (and flushed) as it comes. */
class Http2MapResponder implements MapResponder {
  private closeCbs: (() => void)[] = [];
  private ended = false;
  constructor(private readonly stream: http2.ServerHttp2Stream) {
    stream.once('close', () => {
      this.ended = true;
      for (const cb of this.closeCbs) cb();
      this.closeCbs = [];
    });
  }
  get closed(): boolean {
    return this.ended || this.stream.destroyed;
  }
  start(): void {
    if (this.closed) return;
    this.stream.respond({ ':status': 200, 'content-type': 'application/octet-stream' });
  }
  write(frame: Buffer): void {
    if (this.closed) return;
    // A client that stops reading must not pin unbounded memory: drop it, it will reconnect.
    if (this.stream.writableLength > 8 << 20) {
      this.stream.close(8 /* NGHTTP2_CANCEL */);
      return;
    }
    this.stream.write(frame);
  }
  end(): void {
    if (this.closed) return;
    if (!this.stream.headersSent) this.stream.respond({ ':status': 200 });
    this.stream.end();
  }
  fail(status: number, message: string): void {
    if (this.closed || this.stream.headersSent) return;
    this.stream.respond({ ':status': status, 'content-type': 'text/plain; charset=utf-8' });
    this.stream.end(message + '\n');
  }
  onClose(cb: () => void): void {
    if (this.closed) cb();
    else this.closeCbs.push(cb);
  }
}
