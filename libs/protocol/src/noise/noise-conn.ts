/**
 * NoiseConn: a Duplex of plaintext over an underlying byte stream (net.Socket or any Duplex) that
 * carries controlbase transport records (type 4, u16BE length, at most 4096 bytes with header).
 * Writes are split into records of at most 4077 plaintext bytes (small writes handed over together
 * are coalesced); reads handle partial TCP reads and several records per chunk, skip zero-length
 * records, and treat any framing or decryption error as fatal: the stream is destroyed with a
 * ProtocolError, never thrown into the event loop. Backpressure flows both ways.
 */
import { Duplex } from 'node:stream';
import { ProtocolError } from '../errors.js';
import type { MachinePublic } from '../keys.js';
import type { EarlyNoise } from '../tailcfg.js';
import {
  EARLY_PAYLOAD_HEADER_LEN,
  earlyPayloadLength,
  hasEarlyPayloadMagic,
  parseEarlyPayloadJson,
} from '../early-payload.js';
import type { NoiseSession } from './handshake.js';
import { HEADER_LEN, MAX_FRAME_SIZE, MAX_PLAINTEXT_SIZE, MSG_TYPE_RECORD, TAG_LEN } from './messages.js';

export interface NoiseConnOptions {
  /** The underlying byte stream, already past the HTTP upgrade and the Noise handshake. */
  socket: Duplex;
  session: NoiseSession;
  /** Bytes already read from `socket` after the handshake; they are processed first. */
  head?: Uint8Array;
  /**
   * Client side: treat the first 9 plaintext bytes as a possible early payload (see
   * early-payload.ts); if they are not the magic they are delivered as ordinary data.
   */
  detectEarlyPayload?: boolean;
  /** Readable/writable high-water mark in bytes (default 16 KiB). */
  highWaterMark?: number;
}

/** Writes up to this many bytes of small chunks are concatenated before being split into records. */
const COALESCE_LIMIT = 64 * 1024;

type EarlyState =
  | { phase: 'off' }
  | { phase: 'header'; buf: Buffer[]; have: number }
  | { phase: 'body'; need: number; buf: Buffer[]; have: number };

export class NoiseConn extends Duplex {
  /** The peer's static key: the client's machine key on a server, the server key on a client. */
  readonly peerMachineKey: MachinePublic;
  /** Protocol (capability) version from the initiation header. */
  readonly protocolVersion: number;
  readonly handshakeHash: Uint8Array;
  /** Settles once the early payload is known: the payload, or null if the server sent none. */
  readonly earlyPayload: Promise<EarlyNoise | null>;

  private readonly socket: Duplex;
  private readonly session: NoiseSession;
  private pending: Buffer | null = null; // partial frame carried over between chunks
  private pendingLen = 0;
  private failed = false;
  private socketEnded = false;
  private early: EarlyState;
  private settleEarly!: (v: EarlyNoise | null) => void;
  private failEarly!: (e: Error) => void;
  private readonly onData = (chunk: Buffer): void => this.handleChunk(chunk);
  private readonly onEnd = (): void => this.handleEnd();
  private readonly onError = (err: Error): void => this.fail(err);
  private readonly onClose = (): void => {
    // After a clean end the Duplex finishes by itself once the reader has drained it.
    if (!this.destroyed && !this.socketEnded)
      this.fail(new ProtocolError('noise_closed', 'connection closed'));
  };
  /** The write waiting for the socket's 'drain': its listener and the Writable callback to call. */
  private writeWaiter: { onDrain: () => void; cb: (err?: Error | null) => void } | null = null;
  /** Set by asHttp2Transport(): told once when the connection underneath is gone. */
  private onTransportLost: ((err: Error) => void) | null = null;
  /** The connection underneath is gone (HTTP/2 transport mode): writes are discarded. */
  private lost = false;

  constructor(opts: NoiseConnOptions) {
    super({
      allowHalfOpen: false,
      readableHighWaterMark: opts.highWaterMark,
      writableHighWaterMark: opts.highWaterMark,
      decodeStrings: true,
    });
    this.socket = opts.socket;
    this.session = opts.session;
    this.peerMachineKey = opts.session.peer;
    this.protocolVersion = opts.session.version;
    this.handshakeHash = opts.session.handshakeHash;
    this.early = opts.detectEarlyPayload ? { phase: 'header', buf: [], have: 0 } : { phase: 'off' };
    this.earlyPayload = new Promise<EarlyNoise | null>((resolve, reject) => {
      this.settleEarly = resolve;
      this.failEarly = reject;
    });
    this.earlyPayload.catch(() => undefined); // settled-with-error is reported through 'error' too
    if (!opts.detectEarlyPayload) this.settleEarly(null);

    this.socket.on('data', this.onData);
    this.socket.on('end', this.onEnd);
    this.socket.on('error', this.onError);
    this.socket.on('close', this.onClose);
    if (opts.head && opts.head.length > 0) this.handleChunk(Buffer.from(opts.head));
    if (this.socket.isPaused()) this.socket.resume();
  }

  /**
   * Prepares this connection to carry node:http2 (server or client session). From now on, when
   * the connection underneath ends in any way (the peer's FIN or RST, a socket error, a framing or
   * decryption error), this Duplex does not end or destroy itself: it closes the socket, completes
   * every pending and later write as if sent, and calls `onLost` once (on the next tick). The
   * owner then destroys the HTTP/2 session first and this Duplex second.
   *
   * Why: node:http2 wraps a Duplex in a JSStreamSocket (a net.Socket over a JS handle), whose
   * write and shutdown bookkeeping has two fatal windows. (1) A readable 'end' makes it shut its
   * write side down on the next tick while nghttp2 still writes (an RST_STREAM for each stream it
   * tears down, a GOAWAY); `doWrite` asserts that no shutdown is pending and throws
   * ERR_INTERNAL_ASSERTION, an uncaught exception that took down every replica when many clients
   * dropped at once. (2) Once the Duplex is destroyed, a write nghttp2 issues afterwards is
   * discarded without completion; the native session then waits for it forever and never closes
   * (a session leak per vanished client). Keeping the Duplex alive and writable until the session
   * is destroyed closes both windows: `session.destroy()` marks the native handle destroyed at
   * once, after which nghttp2 issues no write, so no write can follow the Duplex's end, and every
   * write issued before completes.
   */
  asHttp2Transport(onLost: (err: Error) => void): this {
    this.onTransportLost = onLost;
    return this;
  }

  /** True once the connection underneath is gone (see asHttp2Transport). */
  get transportLost(): boolean {
    return this.lost;
  }

  /** Remote address of the underlying socket, if it has one. */
  get remoteAddress(): string | undefined {
    const ra = (this.socket as { remoteAddress?: unknown }).remoteAddress;
    return typeof ra === 'string' ? ra : undefined;
  }

  /** Passed through to a net.Socket underneath (used by HTTP/2 wrappers); no-op otherwise. */
  setNoDelay(noDelay = true): this {
    const s = this.socket as { setNoDelay?: (v: boolean) => unknown };
    if (typeof s.setNoDelay === 'function') s.setNoDelay(noDelay);
    return this;
  }

  setKeepAlive(enable = false, initialDelay = 0): this {
    const s = this.socket as { setKeepAlive?: (e: boolean, d: number) => unknown };
    if (typeof s.setKeepAlive === 'function') s.setKeepAlive(enable, initialDelay);
    return this;
  }

  // ---- reading -------------------------------------------------------------------------------

  override _read(): void {
    if (!this.failed && this.socket.isPaused()) this.socket.resume();
  }

  private handleChunk(chunk: Buffer): void {
    if (this.failed || this.destroyed) return;
    try {
      let off = 0;
      if (this.pending) {
        off = this.fillPending(chunk);
        if (this.pending) return; // still incomplete; chunk fully consumed
      }
      while (off < chunk.length) {
        const avail = chunk.length - off;
        if (avail < HEADER_LEN) {
          this.startPending(chunk, off);
          return;
        }
        const total = HEADER_LEN + chunk.readUInt16BE(off + 1);
        if (total > MAX_FRAME_SIZE) this.frameTooBig(total);
        if (avail < total) {
          this.startPending(chunk, off);
          return;
        }
        this.processFrame(chunk.subarray(off, off + total));
        off += total;
      }
    } catch (err) {
      this.fail(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /** Copies the start of an incomplete frame into a fresh buffer (so big chunks are not retained). */
  private startPending(chunk: Buffer, off: number): void {
    const buf = Buffer.allocUnsafe(MAX_FRAME_SIZE);
    this.pendingLen = chunk.copy(buf, 0, off);
    this.pending = buf;
  }

  /** Completes the pending frame from `chunk`; returns how many bytes of chunk it consumed. */
  private fillPending(chunk: Buffer): number {
    const buf = this.pending!;
    let off = 0;
    if (this.pendingLen < HEADER_LEN) {
      const n = Math.min(HEADER_LEN - this.pendingLen, chunk.length);
      chunk.copy(buf, this.pendingLen, 0, n);
      this.pendingLen += n;
      off = n;
      if (this.pendingLen < HEADER_LEN) return off;
    }
    const total = HEADER_LEN + buf.readUInt16BE(1);
    if (total > MAX_FRAME_SIZE) this.frameTooBig(total);
    const n = Math.min(total - this.pendingLen, chunk.length - off);
    chunk.copy(buf, this.pendingLen, off, off + n);
    this.pendingLen += n;
    off += n;
    if (this.pendingLen === total) {
      this.pending = null;
      this.pendingLen = 0;
      this.processFrame(buf.subarray(0, total));
    }
    return off;
  }

  private frameTooBig(total: number): never {
    throw new ProtocolError(
      'noise_frame_invalid',
      `requested read of ${total} bytes exceeds max allowed Noise frame size`,
      'the peer must split writes into records of at most 4077 plaintext bytes',
    );
  }

  private processFrame(frame: Buffer): void {
    const type = frame[0]!;
    if (type !== MSG_TYPE_RECORD)
      throw new ProtocolError(
        'noise_frame_invalid',
        `received message with unexpected type ${type}, want ${MSG_TYPE_RECORD}`,
      );
    let plaintext: Buffer;
    try {
      plaintext = this.session.rx.open(frame.subarray(HEADER_LEN));
    } catch (err) {
      if (err instanceof ProtocolError) throw err;
      throw new ProtocolError('noise_decrypt_failed', `decrypting Noise record: ${(err as Error).message}`);
    }
    if (plaintext.length === 0) return; // zero-length records are allowed and skipped
    this.deliver(plaintext);
  }

  private deliver(plaintext: Buffer): void {
    if (this.early.phase !== 'off') {
      const rest = this.consumeEarly(plaintext);
      if (rest === null || rest.length === 0) return;
      plaintext = rest;
    }
    if (!this.push(plaintext) && !this.socket.isPaused()) this.socket.pause();
  }

  /** Feeds plaintext through early-payload detection; returns bytes to deliver, or null while waiting. */
  private consumeEarly(data: Buffer): Buffer | null {
    const st = this.early;
    if (st.phase === 'off') return data;
    st.buf.push(data);
    st.have += data.length;
    if (st.phase === 'header') {
      if (st.have < EARLY_PAYLOAD_HEADER_LEN) return null;
      const all = Buffer.concat(st.buf, st.have);
      const header = all.subarray(0, EARLY_PAYLOAD_HEADER_LEN);
      if (!hasEarlyPayloadMagic(header)) {
        this.early = { phase: 'off' };
        this.settleEarly(null);
        return all; // not an early payload: replay the bytes as HTTP/2
      }
      const need = earlyPayloadLength(header);
      const rest = all.subarray(EARLY_PAYLOAD_HEADER_LEN);
      this.early = { phase: 'body', need, buf: [rest], have: rest.length };
      return this.consumeEarly(Buffer.alloc(0));
    }
    if (st.have < st.need) return null;
    const all = Buffer.concat(st.buf, st.have);
    this.early = { phase: 'off' };
    this.settleEarly(parseEarlyPayloadJson(all.subarray(0, st.need)));
    return all.subarray(st.need);
  }

  private handleEnd(): void {
    this.socketEnded = true;
    if (this.failed) return;
    if (this.pending) {
      this.fail(new ProtocolError('noise_frame_invalid', 'unexpected EOF in the middle of a Noise frame'));
      return;
    }
    const early = this.early;
    if (early.phase === 'body') {
      this.fail(new ProtocolError('early_payload_invalid', 'connection ended inside the early payload'));
      return;
    }
    if (early.phase === 'header') {
      // Fewer than 9 bytes before EOF: no early payload; hand over what there is.
      this.early = { phase: 'off' };
      this.settleEarly(null);
      if (early.have > 0) this.push(Buffer.concat(early.buf, early.have));
    }
    if (this.onTransportLost) {
      // A control connection is never half-closed: FIN means the peer is gone.
      this.loseTransport(new ProtocolError('noise_closed', 'the peer closed the connection'));
      return;
    }
    this.push(null);
  }

  private fail(err: Error): void {
    if (this.failed) return;
    if (this.onTransportLost && !this.destroyed) {
      this.loseTransport(err);
      return;
    }
    this.failed = true;
    this.pending = null;
    this.failEarly(err);
    this.destroy(err);
  }

  /** HTTP/2 transport mode: the socket is gone; stay a live Duplex until the session lets go. */
  private loseTransport(err: Error): void {
    if (this.lost) return;
    this.lost = true;
    this.failed = true;
    this.pending = null;
    if (this.early.phase !== 'off') this.early = { phase: 'off' };
    this.failEarly(err);
    this.detachSocket();
    // What was waiting for 'drain' will never be sent: complete it, as later writes are.
    const waiter = this.writeWaiter;
    this.writeWaiter = null;
    waiter?.cb();
    const notify = this.onTransportLost;
    if (notify) process.nextTick(notify, err);
  }

  /** Stops listening to the socket (keeping an error sink) and destroys it. */
  private detachSocket(): void {
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('error', this.onError);
    this.socket.off('close', this.onClose);
    const waiter = this.writeWaiter;
    if (waiter) this.socket.off('drain', waiter.onDrain);
    // Keep a listener so a late socket error cannot become an uncaught exception.
    this.socket.on('error', () => undefined);
    if (!this.socket.destroyed) this.socket.destroy();
  }

  // ---- writing -------------------------------------------------------------------------------

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.sendPlaintext([chunk], chunk.length, cb);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    let total = 0;
    const bufs: Buffer[] = [];
    for (const c of chunks) {
      bufs.push(c.chunk);
      total += c.chunk.length;
    }
    this.sendPlaintext(bufs, total, cb);
  }

  private sendPlaintext(bufs: Buffer[], total: number, cb: (err?: Error | null) => void): void {
    if (total === 0 || this.lost) {
      cb(); // nothing to send, or nowhere to send it (HTTP/2 transport mode, see asHttp2Transport)
      return;
    }
    let out: Buffer;
    try {
      if (bufs.length > 1 && total <= COALESCE_LIMIT) {
        out = this.sealAll(Buffer.concat(bufs, total));
      } else {
        out = bufs.length === 1 ? this.sealAll(bufs[0]!) : Buffer.concat(bufs.map((b) => this.sealAll(b)));
      }
    } catch (err) {
      cb(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    if (this.socket.destroyed || this.socket.writableEnded) {
      cb(new ProtocolError('noise_closed', 'write after the underlying connection closed'));
      return;
    }
    if (this.socket.write(out)) {
      cb();
      return;
    }
    const onDrain = (): void => {
      this.writeWaiter = null;
      cb();
    };
    this.writeWaiter = { onDrain, cb };
    this.socket.once('drain', onDrain);
  }

  /** Seals plaintext into as many records as needed, in one output buffer. */
  private sealAll(plaintext: Buffer): Buffer {
    const records = Math.ceil(plaintext.length / MAX_PLAINTEXT_SIZE);
    const out = Buffer.allocUnsafe(plaintext.length + records * (HEADER_LEN + TAG_LEN));
    let pos = 0;
    for (let start = 0; start < plaintext.length; start += MAX_PLAINTEXT_SIZE) {
      const end = Math.min(start + MAX_PLAINTEXT_SIZE, plaintext.length);
      pos += this.session.tx.sealRecordInto(plaintext, start, end, out, pos);
    }
    return out;
  }

  /** Sends one zero-length record (allowed by the protocol; receivers skip it). Mainly for tests. */
  writeEmptyRecord(): void {
    if (this.destroyed || this.socket.destroyed) return;
    this.socket.write(this.session.tx.sealRecord(new Uint8Array(0)));
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (!this.lost && !this.socket.destroyed && !this.socket.writableEnded) this.socket.end();
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.failed = true;
    this.pending = null;
    if (this.early.phase !== 'off') {
      this.early = { phase: 'off' };
      if (err) this.failEarly(err);
      else this.settleEarly(null);
    }
    // A write waiting for 'drain' is completed with an error, never dropped: its caller must learn
    // that it ended.
    const waiter = this.writeWaiter;
    this.detachSocket();
    this.writeWaiter = null;
    waiter?.cb(err ?? new ProtocolError('noise_closed', 'connection closed with a write in flight'));
    cb(err);
  }
}
