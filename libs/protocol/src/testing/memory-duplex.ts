/**
 * Test support (not exported from the package): an in-memory pair of connected Duplex streams that
 * behave like the two ends of a TCP connection, optionally splitting every write into small chunks
 * to exercise partial reads. Used by unit tests, which must not touch the network.
 */
import { Duplex } from 'node:stream';

export interface MemoryPairOptions {
  /** Deliver writes in pieces of at most this many bytes (default: whole writes). */
  chunkSize?: number;
  highWaterMark?: number;
}

class MemoryEnd extends Duplex {
  peer!: MemoryEnd;
  remoteAddress = '127.0.0.1';

  constructor(
    private readonly chunkSize: number,
    highWaterMark: number | undefined,
  ) {
    super({ allowHalfOpen: false, highWaterMark });
  }

  override _read(): void {}

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const parts: Buffer[] = [];
    for (let i = 0; i < chunk.length; i += this.chunkSize) parts.push(chunk.subarray(i, i + this.chunkSize));
    setImmediate(() => {
      for (const p of parts) if (!this.peer.destroyed) this.peer.push(p);
      cb();
    });
  }

  /** Corked writes arrive as one chunk, like a net.Socket's writev. */
  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    this._write(Buffer.concat(chunks.map((c) => c.chunk)), 'binary', cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    setImmediate(() => {
      if (!this.peer.destroyed) this.peer.push(null);
      cb();
    });
  }

  /** Like closing a TCP socket: the peer sees end-of-stream, then close. */
  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    setImmediate(() => {
      if (!this.peer.destroyed) {
        this.peer.push(null);
        this.peer.destroy();
      }
    });
    cb(err);
  }
}

export function memoryDuplexPair(opts: MemoryPairOptions = {}): [Duplex, Duplex] {
  const chunk = opts.chunkSize ?? Number.MAX_SAFE_INTEGER;
  const a = new MemoryEnd(chunk, opts.highWaterMark);
  const b = new MemoryEnd(chunk, opts.highWaterMark);
  a.peer = b;
  b.peer = a;
  return [a, b];
}
