/**
 * ControlClient: one Noise + HTTP/2 connection to a control server, with the calls a node makes:
 * register, the streaming map poll, a one-shot map, lite updates. Built for tests and for a load
 * generator that simulates thousands of nodes, so it holds nothing per connection beyond the
 * socket, the h2 session and the frame decoder of each open map stream.
 */
import * as http2 from 'node:http2';
import type {
  ClientHttp2Session,
  ClientHttp2Stream,
  IncomingHttpHeaders,
  OutgoingHttpHeaders,
} from 'node:http2';
import { once } from 'node:events';
import { CURRENT_CAPVER } from '../capver.js';
import { ControlHttpError, ProtocolError } from '../errors.js';
import { publicKeyFromPrivate, type MachinePublic } from '../keys.js';
import { MapFrameDecoder, parseMapFrame, type MapFrameDecoderOptions } from '../map-framing.js';
import type { NoiseConn } from '../noise/noise-conn.js';
import type { EarlyNoise, MapRequest, MapResponse, RegisterRequest, RegisterResponse } from '../tailcfg.js';
import { dialControl, type ControlConnection, type DialControlOptions } from './dial.js';

export interface ControlResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

export interface RequestOptions {
  headers?: OutgoingHttpHeaders;
  /** Largest response body read (default 1 MiB, like tailscaled for register). */
  maxResponseBytes?: number;
  signal?: AbortSignal;
}

/** One decoded frame of a map stream. */
export interface MapStreamMessage {
  readonly message: MapResponse;
  /** Bytes on the wire: 4-byte length plus compressed payload. */
  readonly frameSize: number;
  readonly keepAlive: boolean;
}

export interface MapStreamOptions extends MapFrameDecoderOptions {
  signal?: AbortSignal;
  /** Also yield keep-alive frames (default true). */
  keepAlives?: boolean;
}

const DEFAULT_MAX_RESPONSE = 1024 * 1024;

/** The `Ts-Lb` load-balancer hint tailscaled sends (node key text). */
export const LB_HEADER = 'ts-lb';

export class ControlClient {
  /** This client's machine key (the Noise static public key). */
  readonly machineKey: MachinePublic;
  readonly capVersion: number;
  /** The server's early payload, or null if it sent none. */
  readonly earlyNoise: EarlyNoise | null;
  readonly conn: NoiseConn;
  readonly session: ClientHttp2Session;
  /** Resolves when the connection has closed, for whatever reason. */
  readonly closed: Promise<void>;

  private constructor(machineKey: MachinePublic, capVersion: number, c: ControlConnection) {
    this.machineKey = machineKey;
    this.capVersion = capVersion;
    this.conn = c.conn;
    this.session = c.session;
    this.earlyNoise = c.earlyNoise;
    this.closed = new Promise<void>((resolve) => {
      if (this.session.closed || this.session.destroyed) resolve();
      else this.session.once('close', () => resolve());
    });
  }

  /** Dials /ts2021, does the Noise handshake and starts HTTP/2. */
  static async connect(opts: DialControlOptions): Promise<ControlClient> {
    const c = await dialControl(opts);
    return new ControlClient(
      publicKeyFromPrivate('machine', opts.machinePrivate),
      opts.capVersion ?? CURRENT_CAPVER,
      c,
    );
  }

  /** Wraps an already established connection (see openControlSession). */
  static fromConnection(
    c: ControlConnection,
    machineKey: MachinePublic,
    capVersion: number = CURRENT_CAPVER,
  ): ControlClient {
    return new ControlClient(machineKey, capVersion, c);
  }

  get isClosed(): boolean {
    return this.session.closed || this.session.destroyed;
  }

  private open(
    method: string,
    path: string,
    body: Uint8Array | undefined,
    opts: RequestOptions,
  ): ClientHttp2Stream {
    if (this.isClosed) throw new ProtocolError('noise_closed', 'control connection is closed');
    const stream = this.session.request(
      { ':method': method, ':path': path, ...opts.headers },
      { endStream: body === undefined || body.length === 0, ...(opts.signal ? { signal: opts.signal } : {}) },
    );
    stream.on('error', () => undefined); // surfaced through the awaiting promise instead
    if (body && body.length > 0) stream.end(body);
    return stream;
  }

  /** Opens a request and starts reading its response at once (see ResponseReader). */
  private openRead(
    method: string,
    path: string,
    body: Uint8Array | undefined,
    opts: RequestOptions,
  ): { stream: ClientHttp2Stream; reader: ResponseReader } {
    const stream = this.open(method, path, body, opts);
    return { stream, reader: new ResponseReader(stream, path) };
  }

  /** Any request over the Noise HTTP/2 connection; reads the whole response body (bounded). */
  async request(
    method: string,
    path: string,
    body?: Uint8Array | string,
    opts: RequestOptions = {},
  ): Promise<ControlResponse> {
    const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    const { stream, reader } = this.openRead(method, path, bytes, opts);
    const headers = await responseHeaders(stream);
    const out = await reader.all(opts.maxResponseBytes ?? DEFAULT_MAX_RESPONSE);
    return { status: Number(headers[':status']), headers, body: out };
  }

  /** POSTs JSON and returns the parsed JSON answer; any status but 200 throws ControlHttpError. */
  async postJson<T>(path: string, value: unknown, opts: RequestOptions = {}): Promise<T> {
    const r = await this.request('POST', path, JSON.stringify(value), {
      ...opts,
      headers: { 'content-type': 'application/json', ...opts.headers },
    });
    if (r.status !== 200)
      throw new ControlHttpError(r.status, path, r.body.subarray(0, 200).toString('utf8'));
    try {
      return JSON.parse(r.body.toString('utf8')) as T;
    } catch (err) {
      throw new ProtocolError(
        'control_http_error',
        `${path}: response is not JSON: ${(err as Error).message}`,
      );
    }
  }

  /** POST /machine/register. Like tailscaled, sends no Content-Type and a Ts-Lb hint. */
  async register(req: RegisterRequest, opts: RequestOptions = {}): Promise<RegisterResponse> {
    const lb =
      req.OldNodeKey && !/^nodekey:0+$/.test(req.OldNodeKey) ? [req.OldNodeKey, req.NodeKey] : [req.NodeKey];
    const r = await this.request('POST', '/machine/register', JSON.stringify(req), {
      ...opts,
      headers: { [LB_HEADER]: lb, ...opts.headers },
    });
    if (r.status !== 200)
      throw new ControlHttpError(r.status, '/machine/register', r.body.subarray(0, 200).toString('utf8'));
    try {
      return JSON.parse(r.body.toString('utf8')) as RegisterResponse;
    } catch (err) {
      throw new ProtocolError(
        'control_http_error',
        `/machine/register: response is not JSON: ${(err as Error).message}`,
      );
    }
  }

  /**
   * POST /machine/map and yield each frame as it arrives (the long poll when req.Stream is true).
   * Breaking out of the loop cancels the request. Throws ControlHttpError for a non-200 answer.
   */
  async *mapStream(
    req: MapRequest,
    opts: MapStreamOptions = {},
  ): AsyncGenerator<MapStreamMessage, void, undefined> {
    const { stream, reader } = this.openRead(
      'POST',
      '/machine/map',
      Buffer.from(JSON.stringify(req), 'utf8'),
      {
        headers: { [LB_HEADER]: req.NodeKey },
        ...(opts.signal ? { signal: opts.signal } : {}),
      },
    );
    try {
      const headers = await responseHeaders(stream);
      const status = Number(headers[':status']);
      if (status !== 200) {
        const body = await reader.all(4096);
        throw new ControlHttpError(status, '/machine/map', body.subarray(0, 200).toString('utf8'));
      }
      const decoder = new MapFrameDecoder(opts);
      const keepAlives = opts.keepAlives ?? true;
      for await (const chunk of reader.chunks()) {
        for (const f of decoder.push(chunk)) {
          if (f.keepAlive && !keepAlives) continue;
          yield { message: parseMapFrame(f), frameSize: f.frameSize, keepAlive: f.keepAlive };
        }
      }
      decoder.end();
    } finally {
      if (!stream.closed && !stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
    }
  }

  /** A single full map (Stream false, OmitPeers false): the first non-keep-alive frame. */
  async mapOnce(req: MapRequest, opts: MapStreamOptions = {}): Promise<MapResponse> {
    for await (const m of this.mapStream(
      { ...req, Stream: false, OmitPeers: false },
      { ...opts, keepAlives: false },
    ))
      return m.message;
    throw new ProtocolError('map_frame_invalid', '/machine/map: response ended without a map');
  }

  /** A lite update (Stream false, OmitPeers true): only the status matters; the body is discarded. */
  async liteUpdate(req: MapRequest, opts: RequestOptions = {}): Promise<void> {
    const r = await this.request(
      'POST',
      '/machine/map',
      JSON.stringify({ ...req, Stream: false, OmitPeers: true }),
      {
        ...opts,
        headers: { [LB_HEADER]: req.NodeKey, ...opts.headers },
        maxResponseBytes: opts.maxResponseBytes ?? 64 * 1024,
      },
    );
    if (r.status !== 200)
      throw new ControlHttpError(r.status, '/machine/map', r.body.subarray(0, 200).toString('utf8'));
  }

  /** Closes the HTTP/2 session (GOAWAY) and the connection; waits at most timeoutMs. */
  async close(timeoutMs = 2000): Promise<void> {
    if (!this.isClosed) {
      const t = setTimeout(() => this.session.destroy(), timeoutMs);
      t.unref();
      this.session.close();
      await this.closed;
      clearTimeout(t);
    }
    this.conn.destroy();
  }
}

async function responseHeaders(stream: ClientHttp2Stream): Promise<IncomingHttpHeaders> {
  const onClose = once(stream, 'close').then(() => {
    throw new ProtocolError(
      'noise_closed',
      `stream closed before response headers (code ${stream.rstCode ?? 'none'})`,
    );
  });
  onClose.catch(() => undefined);
  const [headers] = (await Promise.race([once(stream, 'response'), onClose])) as [IncomingHttpHeaders];
  return headers;
}

/**
 * Reads a response from the moment the request is opened. Node 24 may finish and close a client
 * stream whose whole response arrived in one go before anyone iterated it; reading eagerly (and
 * treating a clean close after the data as the end) keeps those responses instead of failing with
 * "premature close".
 */
class ResponseReader {
  private readonly queue: Buffer[] = [];
  private size = 0;
  private done = false;
  private error: Error | null = null;
  private wake: (() => void) | null = null;

  constructor(
    private readonly stream: ClientHttp2Stream,
    private readonly path: string,
  ) {
    stream.on('data', (c: Buffer) => {
      this.queue.push(c);
      this.size += c.length;
      this.notify();
    });
    stream.once('end', () => this.finish(null));
    stream.once('error', (err: Error) => this.finish(err));
    stream.once('close', () => {
      if (stream.rstCode !== undefined && stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR)
        this.finish(new ProtocolError('noise_closed', `${path}: stream reset (code ${stream.rstCode})`));
      else this.finish(null);
    });
  }

  private finish(err: Error | null): void {
    if (this.done) return;
    this.done = true;
    this.error = err;
    this.notify();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  /** Yields chunks as they arrive until the response ends. */
  async *chunks(): AsyncGenerator<Buffer, void, undefined> {
    for (;;) {
      const c = this.queue.shift();
      if (c) {
        this.size -= c.length;
        yield c;
        continue;
      }
      if (this.done) {
        if (this.error) throw this.error;
        return;
      }
      await new Promise<void>((r) => (this.wake = r));
    }
  }

  /** The whole body, bounded: past `limit` bytes the request is cancelled. */
  async all(limit: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    let n = 0;
    for await (const c of this.chunks()) {
      n += c.length;
      if (n > limit) {
        this.stream.close(http2.constants.NGHTTP2_CANCEL);
        throw new ProtocolError('body_too_large', `${this.path}: response body exceeds ${limit} bytes`);
      }
      parts.push(c);
    }
    return Buffer.concat(parts, n);
  }
}
