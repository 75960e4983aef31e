/**
 * The client edge: plain HTTP for `GET /key`, health and metrics, the `/ts2021` upgrade into a Noise
 * session, and an HTTP/2 server per Noise connection that routes `/machine/*` requests to the control
 * handlers with the authenticated machine key. Bodies are capped at 1 MiB; malformed input gets an
 * error status and a log line, never a crash.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { constants as h2constants } from 'node:http2';
import type * as http2 from 'node:http2';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { errorMessage, LimitedLogger, type Logger, sourceKey, SwitchboardError } from '@switchboard/common';
import {
  createTs2021UpgradeHandler,
  formatKey,
  keyAnswer,
  NoiseHttp2Server,
  parseLegacyRoute,
  parseMapRequest,
  parseRegisterRequest,
  ProtocolError,
  publicKeyFromPrivate,
  readRequestBody,
  respondJson,
  respondText,
  type Http2LimitReason,
  type NoisePeer,
  type PrivateKey,
} from '@switchboard/protocol';
import type { ControlContext, ControlHandlers, MapResponder } from './control-handlers.js';
import type { LegacyChannel } from './legacy.handler.js';
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
  limits?: Partial<EdgeLimits>;
  /** The legacy NaCl channel (`LEGACY_PROTOCOL=true`); absent = `/key` offers Noise only. */
  legacy?: EdgeLegacyOptions;
}

export interface EdgeLegacyOptions {
  channel: LegacyChannel;
  /** `mkey:<hex>` of the legacy key. */
  keyText: string;
  /** `/key?v=` at most this gets only the legacy key (so the client uses it); -1 = none. */
  legacyOnlyMaxCapVersion: number;
}

/** Bounds on what one client (or all of them) may hold at the edge; see the README's table. */
export interface EdgeLimits {
  maxConnections: number;
  /** 0 = no limit. */
  maxConnectionsPerSource: number;
  prefaceTimeoutMs: number;
  /** 0 = never. */
  idleTimeoutMs: number;
  bodyTimeoutMs: number;
  maxStreamsPerConnection: number;
  maxRequestsPerConnection: number;
}

export const DEFAULT_EDGE_LIMITS: EdgeLimits = {
  maxConnections: 16_000,
  maxConnectionsPerSource: 1024,
  prefaceTimeoutMs: 10_000,
  idleTimeoutMs: 120_000,
  bodyTimeoutMs: 30_000,
  maxStreamsPerConnection: 32,
  maxRequestsPerConnection: 8,
};

/** Why the edge refused or cut off a client (the `reason` label of the limit metric). */
export type EdgeLimitReason =
  Http2LimitReason | 'max_connections' | 'max_connections_per_source' | 'max_requests_per_connection';

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
  /** Clients refused or cut off, by bound. */
  readonly limitHits: Record<EdgeLimitReason, number> = {
    preface_timeout: 0,
    idle_no_streams: 0,
    idle: 0,
    ping_flood: 0,
    settings_flood: 0,
    reset_flood: 0,
    max_connections: 0,
    max_connections_per_source: 0,
    max_requests_per_connection: 0,
  };
  boundPort = 0;
  readonly limits: EdgeLimits;
  private connections = 0;
  private readonly perSource = new Map<string, number>();
  /** Requests in progress per Noise connection (map streams leave the count once they stream). */
  private readonly inFlight = new Map<number, number>();
  /** Lines about refused connections, which anyone can trigger: a few per minute. */
  private readonly acceptLog: Logger;

  constructor(private readonly o: EdgeOptions) {
    this.limits = { ...DEFAULT_EDGE_LIMITS, ...o.limits };
    this.acceptLog = new LimitedLogger(o.logger.child('accept'), { linesPerWindow: 20 });
    this.publicKeyText = formatKey('machine', publicKeyFromPrivate('machine', o.serverPrivate));
    this.h2 = new NoiseHttp2Server({
      logger: o.logger.child('h2'),
      handler: (stream, headers, peer) => this.onStream(peer, stream, headers),
      maxConcurrentStreams: this.limits.maxStreamsPerConnection,
      prefaceTimeoutMs: this.limits.prefaceTimeoutMs,
      streamlessIdleMs: this.limits.idleTimeoutMs,
      onLimit: (reason) => this.limitHits[reason]++,
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
    srv.on('connection', (socket: Socket) => this.onConnection(socket));
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

  /** Number of TCP connections the edge holds now. */
  get connectionCount(): number {
    return this.connections;
  }

  /** Counts every TCP connection in total and per source; over a bound it is closed at once. */
  private onConnection(socket: Socket): void {
    const source = sourceKey(socket.remoteAddress);
    const fromSource = this.perSource.get(source) ?? 0;
    const perSourceMax = this.limits.maxConnectionsPerSource;
    let reason: EdgeLimitReason | undefined;
    if (this.connections >= this.limits.maxConnections) reason = 'max_connections';
    else if (perSourceMax > 0 && fromSource >= perSourceMax) reason = 'max_connections_per_source';
    if (reason) {
      this.limitHits[reason]++;
      this.acceptLog.warn(
        reason === 'max_connections'
          ? 'refused a connection: the edge holds EDGE_MAX_CONNECTIONS already'
          : 'refused a connection: its source holds EDGE_MAX_CONNECTIONS_PER_SOURCE already',
        {
          source,
          limit: reason === 'max_connections' ? this.limits.maxConnections : perSourceMax,
          hint: 'raise the limit if this is legitimate load (a NAT or a load balancer), or add replicas',
        },
      );
      socket.on('error', () => undefined);
      socket.destroy();
      return;
    }
    this.connections++;
    this.perSource.set(source, fromSource + 1);
    socket.once('close', () => {
      this.connections--;
      const n = (this.perSource.get(source) ?? 1) - 1;
      if (n <= 0) this.perSource.delete(source);
      else this.perSource.set(source, n);
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
      const answer = keyAnswer(
        {
          noiseKeyText: this.publicKeyText,
          legacyKeyText: this.o.legacy?.keyText ?? null,
          legacyOnlyMaxCapVersion: this.o.legacy?.legacyOnlyMaxCapVersion ?? -1,
        },
        v === null ? null : Number(v),
      );
      if (answer.kind === 'hex') res.writeHead(200, { 'content-type': 'text/plain' }).end(answer.body);
      else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer.body));
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
    const legacy = this.o.legacy && parseLegacyRoute(url.pathname);
    if (legacy) return this.o.legacy?.channel.handle(req, res, legacy);
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
      const release = this.admitRequest(peer, stream);
      if (!release) return;
      readRequestBody(stream, MAX_BODY, headers, this.limits.bodyTimeoutMs)
        .then((body) =>
          path === '/machine/register'
            ? this.register(ctx, stream, body, peer.log)
            : this.map(ctx, stream, body, peer.log, release),
        )
        .catch((err: unknown) => this.failRequest(ctx, stream, path, err, peer.log))
        .finally(release);
      return;
    }
    if (OPTIONAL.has(path)) return this.reply(stream, 501, `${path} is not implemented by this server`);
    this.reply(stream, 404, `no such endpoint: ${path}`);
  }

  /**
   * Takes one of the connection's request slots; answers 429 and returns null when it has none.
   * The returned release is idempotent (a map stream releases its slot once it streams).
   */
  private admitRequest(peer: NoisePeer, stream: http2.ServerHttp2Stream): (() => void) | null {
    const id = peer.connectionId;
    const n = this.inFlight.get(id) ?? 0;
    if (n >= this.limits.maxRequestsPerConnection) {
      this.limitHits.max_requests_per_connection++;
      peer.log.warn('refused a request: too many in progress on one connection', {
        limit: this.limits.maxRequestsPerConnection,
      });
      this.reply(
        stream,
        429,
        `too many requests in progress on this connection (limit ${this.limits.maxRequestsPerConnection}); wait for answers before sending more`,
      );
      return null;
    }
    this.inFlight.set(id, n + 1);
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      const left = (this.inFlight.get(id) ?? 1) - 1;
      if (left <= 0) this.inFlight.delete(id);
      else this.inFlight.set(id, left);
    };
    stream.once('close', release);
    return release;
  }

  private failRequest(
    ctx: ControlContext,
    stream: http2.ServerHttp2Stream,
    path: string,
    err: unknown,
    log: Logger,
  ): void {
    this.counters.badRequests++;
    if (
      err instanceof ProtocolError &&
      (err.code === 'body_too_large' || err.code === 'noise_closed' || err.code === 'timeout')
    ) {
      // readRequestBody already answered 413 or 408 (or the client went away).
      log.warn('request refused', { path, reason: err.message });
      return;
    }
    if (err instanceof SwitchboardError && err.code === 'invalid_input') {
      log.warn('malformed request', { path, err: err.message });
      return this.reply(stream, 400, err.message);
    }
    log.error('request failed', { path, machineKey: ctx.machineKey, err });
    this.reply(stream, 500, 'internal error; the client will retry');
  }

  /** Refuses clients older than the configured minimum with a message saying what to do. */
  private supported(stream: http2.ServerHttp2Stream, version: number, log: Logger): boolean {
    if (version >= this.o.minCapVersion) return true;
    log.warn('refused an unsupported client', {
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

  private async register(
    ctx: ControlContext,
    stream: http2.ServerHttp2Stream,
    body: Buffer,
    log: Logger,
  ): Promise<void> {
    const req = fromRegisterRequest(parseRegisterRequest(body));
    if (!this.supported(stream, req.version, log)) return;
    const r = await this.o.handlers.register(ctx, req, () => stream.closed || stream.destroyed);
    if (typeof r.body === 'string') return this.reply(stream, r.status, r.body);
    respondJson(stream, r.status, r.body);
  }

  private async map(
    ctx: ControlContext,
    stream: http2.ServerHttp2Stream,
    body: Buffer,
    log: Logger,
    release: () => void,
  ): Promise<void> {
    const req = fromMapRequest(parseMapRequest(body));
    if (!this.supported(stream, req.version, log)) return;
    // A streaming map request holds its slot until it streams; then it is the node's one live
    // stream (a newer one supersedes it), bounded per node by the fan-out engine.
    await this.o.handlers.map(ctx, req, new Http2MapResponder(stream, req.stream ? release : undefined));
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
  constructor(
    private readonly stream: http2.ServerHttp2Stream,
    private readonly onStreaming?: () => void,
  ) {
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
    this.onStreaming?.();
  }
  write(frame: Buffer): void {
    if (this.closed) return;
    // A client that stops reading must not pin unbounded memory: drop it, it will reconnect.
    if (this.stream.writableLength > 8 << 20) {
      this.stream.close(h2constants.NGHTTP2_CANCEL);
      return;
    }
    this.stream.write(frame);
  }
  end(graceMs?: number): void {
    if (this.closed) return;
    if (!this.stream.headersSent) this.stream.respond({ ':status': 200 });
    this.stream.end();
    if (graceMs === undefined) return;
    const stream = this.stream;
    setTimeout(() => {
      if (!stream.closed && !stream.destroyed) stream.close(h2constants.NGHTTP2_CANCEL);
    }, graceMs).unref();
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
