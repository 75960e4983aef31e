/**
 * Incremental DERP frame reader: feed it the bytes as they arrive, it calls back once per whole
 * frame. A frame whose declared length exceeds `maxFrameLen` is refused from its header alone
 * (nothing is buffered for it), so a peer cannot make the reader hold more than one frame.
 */
import { DerpFrameError, FRAME_HEADER_LEN } from './frames.js';

export type FrameHandler = (type: number, payload: Buffer) => void;

export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private failed: DerpFrameError | undefined;

  constructor(
    private maxFrameLen: number,
    private readonly onFrame: FrameHandler,
  ) {}

  /** Changes the bound for frames not yet started (e.g. after the handshake). */
  setMaxFrameLen(n: number): void {
    this.maxFrameLen = n;
  }

  /** Bytes held that do not yet form a whole frame. */
  get pending(): number {
    return this.buffered;
  }

  /**
   * Consumes `chunk`; throws `DerpFrameError` on an oversized frame (and on every later call).
   * `onFrame` payloads are only valid during the callback unless copied (they may view `chunk`).
   */
  push(chunk: Buffer): void {
    if (this.failed) throw this.failed;
    if (chunk.length === 0) return;
    if (this.buffered === 0) {
      this.drain(chunk);
      return;
    }
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    // Only join what we have when it can complete the frame in progress.
    const first = this.chunks[0] as Buffer;
    const head = first.length >= FRAME_HEADER_LEN ? first : this.join();
    if (head.length < FRAME_HEADER_LEN) return;
    const need = FRAME_HEADER_LEN + this.check(head);
    if (this.buffered < need) return;
    this.drain(this.join());
  }

  private join(): Buffer {
    const all =
      this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks, this.buffered);
    this.chunks = [all];
    return all;
  }

  private check(head: Buffer): number {
    const len = head.readUInt32BE(1);
    if (len > this.maxFrameLen) {
      this.failed = new DerpFrameError(
        `frame of type ${head[0]} declares ${len} bytes, over the limit of ${this.maxFrameLen}`,
        head[0],
      );
      throw this.failed;
    }
    return len;
  }

  /** Emits every whole frame in `buf` and keeps the rest. */
  private drain(buf: Buffer): void {
    let off = 0;
    while (buf.length - off >= FRAME_HEADER_LEN) {
      const len = this.check(buf.subarray(off, off + FRAME_HEADER_LEN));
      const end = off + FRAME_HEADER_LEN + len;
      if (end > buf.length) break;
      const type = buf[off] as number;
      off = end;
      this.onFrame(type, buf.subarray(end - len, end));
      if (this.failed) throw this.failed;
    }
    if (off === buf.length) {
      this.chunks = [];
      this.buffered = 0;
    } else {
      // Copy the remainder so the caller's chunk is not pinned by a small tail.
      const rest = Buffer.from(buf.subarray(off));
      this.chunks = [rest];
      this.buffered = rest.length;
    }
  }
}
