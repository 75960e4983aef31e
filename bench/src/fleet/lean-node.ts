/**
 * A lean simulated node for the load generator: its own machine, node and disco keys, one Noise +
 * HTTP/2 connection from libs/protocol's ControlClient, and a map stream read frame by frame without
 * decompressing or parsing anything on arrival. Only the length prefix is read; the payload of a
 * frame is kept (for later analysis) only while the worker records. That keeps 10k nodes per machine
 * affordable (no peer tables, no 1 MB full maps held) and the receive path short, so receive times
 * are taken before any analysis work. Compare test/src/sim-node.ts, which applies every delta.
 */
import * as http2 from 'node:http2';
import type { ClientHttp2Stream } from 'node:http2';
import {
  ControlClient,
  formatKey,
  generatePrivateKey,
  publicKeyFromPrivate,
  type MachinePublic,
  type MapRequest,
  type PrivateKey,
} from '@switchboard/protocol';
import { now } from '../clock.js';

/** Endpoint every node announces until an endpoint-change trial gives it another (loopback only). */
export const INITIAL_ENDPOINT = '127.0.0.1:41641';

/** Splits a map response body into frames: a u32 little-endian length, then the zstd payload. */
export class FrameReader {
  private header = Buffer.alloc(4);
  private headerHave = 0;
  private remaining = -1;
  private parts: Buffer[] | null = null;
  private frameLen = 0;

  constructor(
    /** Whether the payload of the next frame (of this length) should be kept. */
    private readonly keep: (len: number) => boolean,
    private readonly onFrame: (len: number, payload: Buffer | null, t: number) => void,
  ) {}

  push(chunk: Buffer, t: number): void {
    let off = 0;
    while (off < chunk.length) {
      if (this.remaining < 0) {
        const n = Math.min(4 - this.headerHave, chunk.length - off);
        chunk.copy(this.header, this.headerHave, off, off + n);
        this.headerHave += n;
        off += n;
        if (this.headerHave < 4) return;
        this.headerHave = 0;
        this.frameLen = this.header.readUInt32LE(0);
        this.remaining = this.frameLen;
        this.parts = this.keep(this.frameLen) ? [] : null;
        if (this.frameLen === 0) {
          this.remaining = -1;
          this.onFrame(0, Buffer.alloc(0), t);
        }
        continue;
      }
      const n = Math.min(this.remaining, chunk.length - off);
      if (this.parts) this.parts.push(chunk.subarray(off, off + n));
      off += n;
      this.remaining -= n;
      if (this.remaining === 0) {
        const payload = this.parts ? Buffer.concat(this.parts, this.frameLen) : null;
        this.parts = null;
        this.remaining = -1;
        this.onFrame(this.frameLen, payload, t);
      }
    }
  }
}

export interface StreamHandlers {
  keep(node: LeanNode, len: number, first: boolean): boolean;
  onFrame(node: LeanNode, len: number, payload: Buffer | null, t: number, first: boolean): void;
  onEnd(node: LeanNode, gen: number, err: Error | null): void;
}

export class LeanNode {
  readonly machinePrivate: PrivateKey = generatePrivateKey();
  readonly nodeKey: string;
  readonly discoKey: string;
  readonly hostname: string;
  client: ControlClient | null = null;
  stream: ClientHttp2Stream | null = null;
  /** Increments with every stream opened, so late events of an old stream are recognised. */
  gen = 0;
  /** Receive time of the first frame of the current stream (0 until it arrives). */
  firstFrameAt = 0;
  endpoint = INITIAL_ENDPOINT;

  constructor(
    readonly index: number,
    readonly url: string,
    readonly capVersion: number,
  ) {
    this.nodeKey = formatKey('node', publicKeyFromPrivate('node', generatePrivateKey()));
    this.discoKey = formatKey('disco', publicKeyFromPrivate('disco', generatePrivateKey()));
    this.hostname = `bench-${index}`;
  }

  get streaming(): boolean {
    return this.stream !== null;
  }

  async connect(serverPublic: MachinePublic, timeoutMs = 30_000): Promise<ControlClient> {
    this.drop();
    this.client = await ControlClient.connect({
      url: this.url,
      machinePrivate: this.machinePrivate,
      serverPublic,
      capVersion: this.capVersion,
      timeoutMs,
      maxSessionMemory: 64,
    });
    return this.client;
  }

  private hostinfo(): Record<string, unknown> {
    return { Hostname: this.hostname, OS: 'linux', GoArch: 'amd64', IPNVersion: 'bench' };
  }

  async register(authKey: string): Promise<void> {
    if (!this.client) throw new Error('not connected');
    const r = await this.client.register({
      Version: this.capVersion,
      NodeKey: this.nodeKey,
      Auth: { AuthKey: authKey },
      Hostinfo: this.hostinfo(),
    });
    const res = r as { Error?: string; MachineAuthorized?: boolean };
    if (res.Error) throw new Error(`register refused: ${res.Error}`);
    if (res.MachineAuthorized === false) throw new Error('register: machine not authorized');
  }

  mapRequest(over: Partial<MapRequest> = {}): MapRequest {
    return {
      Version: this.capVersion,
      NodeKey: this.nodeKey,
      DiscoKey: this.discoKey,
      Compress: 'zstd',
      KeepAlive: true,
      Stream: true,
      Hostinfo: this.hostinfo(),
      Endpoints: [this.endpoint],
      ...over,
    };
  }

  /**
   * Opens the streaming map request on the current connection. Resolves with the receive time of the
   * first frame; rejects if the server answers with another status or the stream ends first.
   */
  openStream(h: StreamHandlers, timeoutMs: number): Promise<number> {
    const client = this.client;
    if (!client) return Promise.reject(new Error('not connected'));
    const gen = ++this.gen;
    this.firstFrameAt = 0;
    const body = Buffer.from(JSON.stringify(this.mapRequest()), 'utf8');
    const stream = client.session.request({
      ':method': 'POST',
      ':path': '/machine/map',
      'ts-lb': this.nodeKey,
    });
    this.stream = stream;
    stream.end(body);
    return new Promise<number>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => finish(new Error(`no map within ${timeoutMs} ms`)), timeoutMs);
      const finish = (err: Error | null, t = 0): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(t);
      };
      let first = true;
      const reader = new FrameReader(
        (len) => h.keep(this, len, first),
        (len, payload, t) => {
          const wasFirst = first;
          first = false;
          if (wasFirst) this.firstFrameAt = t;
          h.onFrame(this, len, payload, t, wasFirst);
          if (wasFirst) finish(null, t);
        },
      );
      stream.on('response', (headers) => {
        const status = Number(headers[':status']);
        if (status !== 200) {
          finish(new Error(`/machine/map answered ${status}`));
          stream.close(http2.constants.NGHTTP2_CANCEL);
        }
      });
      stream.on('data', (chunk: Buffer) => reader.push(chunk, now()));
      stream.on('error', (err: Error) => finish(err));
      stream.on('close', () => {
        if (this.gen === gen) this.stream = null;
        finish(new Error(`map stream closed before the first frame (code ${stream.rstCode ?? 'none'})`));
        h.onEnd(this, gen, null);
      });
    });
  }

  /** A lite update (Stream false, OmitPeers true) announcing a new endpoint. */
  async sendEndpoint(endpoint: string): Promise<void> {
    if (!this.client) throw new Error('not connected');
    this.endpoint = endpoint;
    await this.client.liteUpdate(this.mapRequest());
  }

  /** Drops the connection at once (no GOAWAY), as a network failure or a client restart would. */
  drop(): void {
    const c = this.client;
    this.client = null;
    this.stream = null;
    if (!c) return;
    c.session.destroy();
    c.conn.destroy();
  }

  /** Closes politely: cancels the map stream (RST_STREAM CANCEL), then GOAWAY and FIN. */
  async close(): Promise<void> {
    const c = this.client;
    const s = this.stream;
    this.client = null;
    this.stream = null;
    if (s && !s.closed && !s.destroyed) s.close(http2.constants.NGHTTP2_CANCEL);
    if (c) await c.close(1000).catch(() => c.conn.destroy());
  }
}
