/**
 * HTTP/2 over Noise, server side. The client speaks prior-knowledge h2 on the NoiseConn; we run
 * node:http2's server session on it (Node wraps the Duplex in a JSStreamSocket) and give every
 * stream handler the connection's authenticated machine key and capability version. Several
 * concurrent streams per connection and several connections per machine key are normal.
 * Also: request-body reading with a size cap (413) and small response helpers.
 */
import * as http2 from 'node:http2';
import type { IncomingHttpHeaders, ServerHttp2Session, ServerHttp2Stream } from 'node:http2';
import { LimitedLogger, TokenBucket, ValidationError, createLogger, type Logger } from '@switchboard/common';
import { ProtocolError } from './errors.js';
import { formatKey, type MachinePublic } from './keys.js';
import type { NoiseConn } from './noise/noise-conn.js';

/** The authenticated peer of one Noise connection. */
export interface NoisePeer {
  /** The Noise static key of the client: its machine key. The only identity to trust. */
  readonly machineKey: MachinePublic;
  /** `mkey:<hex>` form of machineKey. */
  readonly machineKeyText: string;
  /** Capability version from the Noise initiation header. */
  readonly capVersion: number;
  /** Process-unique id of the Noise connection (for logs and per-connection state). */
  readonly connectionId: number;
  readonly remoteAddress: string | undefined;
  /**
   * This connection's logger, rate-limited (a few lines per minute, then a count of what it
   * dropped): use it for every line the peer can trigger at will.
   */
  readonly log: Logger;
}

/** Why a connection was cut off by a bound. */
export type Http2LimitReason =
  'preface_timeout' | 'idle_no_streams' | 'idle' | 'ping_flood' | 'settings_flood' | 'reset_flood';

/** Flood limit: a token bucket per connection. */
export interface FloodLimit {
  burst: number;
  perSecond: number;
}

/**
 * Handles one request stream. A thrown (or rejected) ValidationError becomes 400 with its
 * message, anything else 500; handlers should still map their own domain errors themselves.
 */
export type NoiseStreamHandler = (
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  peer: NoisePeer,
) => void | Promise<void>;

export interface NoiseHttp2ServerOptions {
  handler: NoiseStreamHandler;
  logger?: Logger;
  /** SETTINGS_MAX_CONCURRENT_STREAMS (default 250, like Go's http2.Server). */
  maxConcurrentStreams?: number;
  /** Passed to node:http2 (MB of session memory before new streams are refused; default 10). */
  maxSessionMemory?: number;
  /**
   * Close sessions with no HTTP/2 frame in either direction for this long (default: never).
   * Map streams carry keep-alives every ~50-60 s, so a few minutes is safe.
   */
  idleTimeoutMs?: number;
  /** Close a connection whose client sent no HTTP/2 preface and SETTINGS within this (default 10 s). */
  prefaceTimeoutMs?: number;
  /** Close a connection that has had no open stream for this long (default: never). */
  streamlessIdleMs?: number;
  /** PING frames from the client (default burst 50, 5/s); over it the connection is closed. */
  pingLimit?: FloodLimit;
  /** SETTINGS frames from the client (default burst 50, 5/s). */
  settingsLimit?: FloodLimit;
  /** Streams the client resets before they complete (default burst 100, 20/s): rapid reset. */
  resetLimit?: FloodLimit;
  /** Rate-limited lines per connection and minute (default 10). */
  logLinesPerMinute?: number;
  /** Called whenever a bound closes a connection (metrics). */
  onLimit?: (reason: Http2LimitReason, peer: NoisePeer) => void;
}

const DEFAULT_PING_LIMIT: FloodLimit = { burst: 50, perSecond: 5 };
const DEFAULT_SETTINGS_LIMIT: FloodLimit = { burst: 50, perSecond: 5 };
const DEFAULT_RESET_LIMIT: FloodLimit = { burst: 100, perSecond: 20 };
const LIMIT_MESSAGES: Record<Http2LimitReason, string> = {
  preface_timeout: 'closed a connection that sent no HTTP/2 preface in time',
  idle_no_streams: 'closed a connection without streams for too long',
  idle: 'closed an idle connection',
  ping_flood: 'closed a connection flooding PING frames',
  settings_flood: 'closed a connection flooding SETTINGS frames',
  reset_flood: 'closed a connection resetting streams too fast (rapid reset)',
};

let nextConnectionId = 1;

/** Serves HTTP/2 on Noise connections; one instance per control server. */
export class NoiseHttp2Server {
  private readonly sessions = new Set<ServerHttp2Session>();
  private readonly log: Logger;
  private readonly sessionOptions: http2.ServerOptions;
  private fallbackServer: http2.Http2Server | undefined;
  private closing = false;
  /** How many connections each bound has closed. */
  readonly limitHits: Record<Http2LimitReason, number> = {
    preface_timeout: 0,
    idle_no_streams: 0,
    idle: 0,
    ping_flood: 0,
    settings_flood: 0,
    reset_flood: 0,
  };

  constructor(private readonly opts: NoiseHttp2ServerOptions) {
    this.log = opts.logger ?? createLogger('protocol.h2');
    this.sessionOptions = {
      maxSessionMemory: opts.maxSessionMemory ?? 10,
      settings: { maxConcurrentStreams: opts.maxConcurrentStreams ?? 250, enablePush: false },
    };
  }

  /** Number of live HTTP/2 sessions. */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /** Starts HTTP/2 on an established Noise connection and returns its session. */
  serve(conn: NoiseConn): ServerHttp2Session {
    const connectionId = nextConnectionId++;
    const machineKeyText = formatKey('machine', conn.peerMachineKey);
    const peer: NoisePeer = {
      machineKey: conn.peerMachineKey,
      machineKeyText,
      capVersion: conn.protocolVersion,
      connectionId,
      remoteAddress: conn.remoteAddress,
      log: new LimitedLogger(this.log.child('conn', { connectionId, machineKey: machineKeyText }), {
        linesPerWindow: this.opts.logLinesPerMinute ?? 10,
      }),
    };
    conn.on('error', (err) =>
      this.log.debug('noise connection error', { connectionId: peer.connectionId, err }),
    );
    if (this.closing) {
      conn.destroy();
      throw new ProtocolError('noise_closed', 'HTTP/2 server is closing');
    }
    // node:http2 must only ever be let go of its transport by the session itself (see NoiseConn).
    conn.asHttp2Transport((reason) => {
      this.log.debug('noise connection ended', { connectionId: peer.connectionId, reason: reason.message });
      // Destroying the session first marks its native handle destroyed, so nghttp2 writes nothing
      // more; only then may the Duplex under it go.
      if (!session.destroyed) session.destroy();
      conn.destroy();
    });
    const session = this.startSession(conn);
    this.sessions.add(session);
    session.on('error', (err) =>
      this.log.debug('http2 session error', { connectionId: peer.connectionId, err }),
    );
    session.on('close', () => {
      this.sessions.delete(session);
      if (!conn.destroyed) conn.destroy();
    });
    conn.on('close', () => {
      if (!session.destroyed) session.destroy();
    });
    session.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) =>
      this.onStream(stream, headers, peer),
    );
    this.bound(session, peer);
    return session;
  }

  /** Timeouts and flood limits for one session (see the options). */
  private bound(session: ServerHttp2Session, peer: NoisePeer): void {
    let cutting = false;
    const cut = (reason: Http2LimitReason, fields: Record<string, unknown> = {}): void => {
      if (session.destroyed || cutting) return;
      cutting = true;
      this.limitHits[reason]++;
      this.opts.onLimit?.(reason, peer);
      peer.log.warn(LIMIT_MESSAGES[reason], { reason, remoteAddress: peer.remoteAddress, ...fields });
      // GOAWAY ENHANCE_YOUR_CALM first, as its own frame: a session destroyed straight away sends
      // none on Node 24. Then destroy (not close: a graceful close waits for a hostile peer) once it
      // has had a moment to go out.
      session.goaway(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
      const t = setTimeout(() => {
        if (!session.destroyed)
          session.destroy(
            new ProtocolError('noise_closed', LIMIT_MESSAGES[reason]),
            http2.constants.NGHTTP2_ENHANCE_YOUR_CALM,
          );
      }, 50);
      t.unref();
    };
    const timers: NodeJS.Timeout[] = [];
    const later = (ms: number, f: () => void): NodeJS.Timeout => {
      const t = setTimeout(f, ms);
      t.unref();
      timers.push(t);
      return t;
    };
    session.once('close', () => timers.forEach(clearTimeout));

    const prefaceMs = this.opts.prefaceTimeoutMs ?? 10_000;
    let gotPreface = false;
    const prefaceTimer = later(prefaceMs, () => {
      if (!gotPreface) cut('preface_timeout', { timeoutMs: prefaceMs });
    });
    const settings = bucket(this.opts.settingsLimit ?? DEFAULT_SETTINGS_LIMIT);
    session.on('remoteSettings', () => {
      if (!gotPreface) {
        gotPreface = true;
        clearTimeout(prefaceTimer);
      }
      if (!settings.take()) cut('settings_flood');
    });
    const pings = bucket(this.opts.pingLimit ?? DEFAULT_PING_LIMIT);
    session.on('ping', () => {
      if (!pings.take()) cut('ping_flood');
    });
    const resets = bucket(this.opts.resetLimit ?? DEFAULT_RESET_LIMIT);
    const streamlessMs = this.opts.streamlessIdleMs ?? 0;
    let open = 0;
    let idleTimer: NodeJS.Timeout | undefined;
    const armIdle = (): void => {
      if (streamlessMs > 0)
        idleTimer = later(streamlessMs, () => cut('idle_no_streams', { timeoutMs: streamlessMs }));
    };
    armIdle();
    session.on('stream', (stream: ServerHttp2Stream) => {
      open++;
      if (idleTimer) clearTimeout(idleTimer);
      idleTimer = undefined;
      // 'stream' is emitted on a later tick than the frames are read: a stream reset in the same
      // batch as its HEADERS is already aborted here.
      const onAborted = (): void => {
        if (!resets.take()) cut('reset_flood');
      };
      if (stream.aborted) onAborted();
      else stream.once('aborted', onAborted);
      stream.once('close', () => {
        open--;
        if (open === 0 && !session.destroyed) armIdle();
      });
    });
    const idleMs = this.opts.idleTimeoutMs;
    if (idleMs) session.setTimeout(idleMs, () => cut('idle', { timeoutMs: idleMs }));
  }

  private startSession(conn: NoiseConn): ServerHttp2Session {
    const perform = (http2 as { performServerHandshake?: typeof http2.performServerHandshake })
      .performServerHandshake;
    if (typeof perform === 'function') return perform(conn, this.sessionOptions);
    // Node < 20.12: let an unlistened http2 server build the session, caught via 'session'.
    this.fallbackServer ??= http2.createServer(this.sessionOptions);
    let created: ServerHttp2Session | undefined;
    const grab = (s: ServerHttp2Session): void => {
      created = s;
    };
    this.fallbackServer.once('session', grab);
    this.fallbackServer.emit('connection', conn);
    this.fallbackServer.off('session', grab);
    if (!created) throw new ProtocolError('noise_closed', 'node:http2 did not create a session');
    return created;
  }

  private onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, peer: NoisePeer): void {
    // A client reset must not become an uncaught 'error'.
    stream.on('error', (err) => peer.log.debug('http2 stream error', { err }));
    const fail = (err: unknown): void => {
      // readRequestBody already answered 413 or 408 and is winding the stream down.
      if (err instanceof ProtocolError && (err.code === 'body_too_large' || err.code === 'timeout')) return;
      // Input that failed boundary validation is the client's fault: 400 with the reason.
      if (err instanceof ValidationError) {
        peer.log.warn('invalid noise request', { path: headers[':path'], err });
        if (!stream.destroyed && !stream.closed && !stream.headersSent) respondText(stream, 400, err.message);
        return;
      }
      peer.log.error('noise request handler failed', { path: headers[':path'], err });
      if (stream.destroyed || stream.closed) return;
      if (!stream.headersSent) respondText(stream, 500, 'internal server error');
      else stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    };
    try {
      const r = this.opts.handler(stream, headers, peer);
      if (r instanceof Promise) r.catch(fail);
    } catch (err) {
      fail(err);
    }
  }

  /** Sends GOAWAY on every session and waits (up to timeoutMs) for them to close. */
  async close(timeoutMs = 5000): Promise<void> {
    this.closing = true;
    const all = [...this.sessions];
    await Promise.all(
      all.map(
        (s) =>
          new Promise<void>((resolve) => {
            if (s.destroyed) return resolve();
            const t = setTimeout(() => {
              s.destroy();
              resolve();
            }, timeoutMs);
            t.unref();
            s.close(() => {
              clearTimeout(t);
              resolve();
            });
          }),
      ),
    );
  }
}

function bucket(l: FloodLimit): TokenBucket {
  return new TokenBucket(l.burst, l.perSecond);
}

const discard = (): void => undefined;

/** Largest request body accepted on Noise endpoints by default (like headscale). */
export const DEFAULT_MAX_BODY = 1024 * 1024;

/** How long a client may take to send a whole request body by default. */
export const DEFAULT_BODY_TIMEOUT_MS = 30_000;

/**
 * Reads a request body up to `limit` bytes (default 1 MiB) within `timeoutMs` (default 30 s).
 * Over the limit (or when the request headers, if given, declare a larger content-length) it
 * answers 413 with a message, stops the upload and rejects with ProtocolError('body_too_large');
 * past the deadline it answers 408, resets the stream and rejects with ProtocolError('timeout').
 * Either way the reply has been sent: callers only log.
 */
export function readRequestBody(
  stream: ServerHttp2Stream,
  limit = DEFAULT_MAX_BODY,
  headers?: IncomingHttpHeaders,
  timeoutMs = DEFAULT_BODY_TIMEOUT_MS,
): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (err: Error | null): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
      stream.off('close', onClose);
      if (err) reject(err);
      else resolve(Buffer.concat(parts, size));
    };
    const refuse = (status: number, message: string, err: ProtocolError): void => {
      finish(err);
      // Keep consuming (and discarding) what the client still sends, so its bytes go back into the
      // connection's flow-control window; then stop the upload once the reply is out (RFC 9113 §8.1).
      stream.on('data', discard);
      stream.resume();
      if (!stream.headersSent && !stream.closed) {
        stream.respond({ ':status': status, 'content-type': 'text/plain; charset=utf-8' });
        stream.end(message + '\n', () => {
          if (!stream.closed) stream.close(http2.constants.NGHTTP2_NO_ERROR);
        });
      } else if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
    };
    const tooLarge = (): void => {
      const message = `request body exceeds ${limit} bytes`;
      refuse(413, message, new ProtocolError('body_too_large', message));
    };
    const timer = setTimeout(() => {
      const message = `request body not received within ${timeoutMs} ms`;
      refuse(408, message, new ProtocolError('timeout', message));
    }, timeoutMs);
    timer.unref();
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) return tooLarge();
      parts.push(chunk);
    };
    const onEnd = (): void => finish(null);
    const onError = (err: Error): void => finish(err);
    const onClose = (): void =>
      finish(new ProtocolError('noise_closed', 'stream closed before the request body ended'));
    const declared = Number(headers?.['content-length']);
    if (Number.isFinite(declared) && declared > limit) return tooLarge();
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('error', onError);
    stream.on('close', onClose);
  });
}

/** Answers with a JSON body. */
export function respondJson(stream: ServerHttp2Stream, status: number, body: unknown): void {
  if (stream.destroyed || stream.closed) return;
  stream.respond({ ':status': status, 'content-type': 'application/json' });
  stream.end(JSON.stringify(body));
}

/** Answers with a one-line text body (errors: say what went wrong). */
export function respondText(stream: ServerHttp2Stream, status: number, text: string): void {
  if (stream.destroyed || stream.closed) return;
  stream.respond({ ':status': status, 'content-type': 'text/plain; charset=utf-8' });
  stream.end(text.endsWith('\n') ? text : text + '\n');
}

/**
 * Writes one chunk (typically a map frame) and resolves once the stream can take more: at once
 * when under its high-water mark, else on 'drain'. Rejects if the stream closes first.
 */
export function writeChunk(stream: ServerHttp2Stream, chunk: Uint8Array): Promise<void> {
  if (stream.destroyed || stream.closed || stream.writableEnded)
    return Promise.reject(new ProtocolError('noise_closed', 'stream is closed'));
  if (stream.write(chunk)) return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const cleanup = (): void => {
      stream.off('drain', onDrain);
      stream.off('close', onClose);
    };
    const onDrain = (): void => {
      cleanup();
      resolve();
    };
    const onClose = (): void => {
      cleanup();
      reject(new ProtocolError('noise_closed', 'stream closed while writing'));
    };
    stream.on('drain', onDrain);
    stream.on('close', onClose);
  });
}
