/**
 * Raw HTTP/2 frames, built by hand, for tests that must send what a well-behaved client library
 * never would (floods, rapid reset). Each frame is the 9-byte header (24-bit length, type, flags,
 * 31-bit stream id) and its payload (RFC 9113 §4.1). HEADERS blocks use HPACK static-table
 * indexes only, so no encoder state is needed.
 */

export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7 } as const;
export const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;

export function h2Frame(
  type: number,
  flags: number,
  streamId: number,
  payload: Buffer = Buffer.alloc(0),
): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([h, payload]);
}

/** An empty SETTINGS frame (not an ACK). */
export const settingsFrame = (): Buffer => h2Frame(FRAME.SETTINGS, 0, 0);

/** A PING with `i` in its 8-byte opaque payload. */
export function pingFrame(i: number): Buffer {
  const p = Buffer.alloc(8);
  p.writeUInt32BE(i >>> 0, 4);
  return h2Frame(FRAME.PING, 0, 0, p);
}

/** HPACK literal header field without indexing, name from the static table, 7-bit lengths only. */
function literalIndexedName(nameIndex: number, value: string): Buffer {
  const v = Buffer.from(value, 'latin1');
  if (nameIndex > 14 || v.length > 126) throw new Error('literalIndexedName: keep it tiny');
  return Buffer.concat([Buffer.from([nameIndex, v.length]), v]);
}

export interface HeadersFrameOptions {
  /** `/` (static index 4, 0x84) by default, else a literal `:path` such as `/machine/map`. */
  path?: string;
  /**
   * A literal `:authority` (static name index 1). nghttp2 refuses a request without `:authority`
   * (or `host`) with RST_STREAM PROTOCOL_ERROR before node:http2 ever sees the stream.
   */
  authority?: string;
}

/** HEADERS with END_HEADERS|END_STREAM: `:method POST` (0x83), `:scheme https` (0x87), `:path`. */
export function headersFrame(streamId: number, o: HeadersFrameOptions = {}): Buffer {
  const path = o.path ?? '/';
  const block = Buffer.concat([
    Buffer.from([0x83, 0x87]),
    path === '/' ? Buffer.from([0x84]) : literalIndexedName(4, path),
    o.authority === undefined ? Buffer.alloc(0) : literalIndexedName(1, o.authority),
  ]);
  return h2Frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, streamId, block);
}

/** RST_STREAM with the given error code (default CANCEL = 8). */
export function rstStreamFrame(streamId: number, code = 8): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(code, 0);
  return h2Frame(FRAME.RST_STREAM, 0, streamId, p);
}

export interface H2FrameSeen {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

/** Splits the server's byte stream into frames (after its connection preface, which is a frame). */
export class H2FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  readonly counts = new Map<number, number>();
  /** The error code of the first GOAWAY received, if any. */
  goawayCode: number | undefined;

  push(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    while (this.buf.length >= 9) {
      const len = this.buf.readUIntBE(0, 3);
      if (this.buf.length < 9 + len) break;
      const f: H2FrameSeen = {
        type: this.buf[3]!,
        flags: this.buf[4]!,
        streamId: this.buf.readUInt32BE(5) & 0x7fffffff,
        payload: this.buf.subarray(9, 9 + len),
      };
      this.buf = this.buf.subarray(9 + len);
      this.counts.set(f.type, (this.counts.get(f.type) ?? 0) + 1);
      if (f.type === FRAME.GOAWAY && this.goawayCode === undefined && f.payload.length >= 8)
        this.goawayCode = f.payload.readUInt32BE(4);
    }
  }
}

/** HTTP/2 error codes by number (RFC 9113 §7), for messages. */
export const H2_ERROR_NAMES: Record<number, string> = {
  0: 'NO_ERROR',
  1: 'PROTOCOL_ERROR',
  2: 'INTERNAL_ERROR',
  3: 'FLOW_CONTROL_ERROR',
  7: 'REFUSED_STREAM',
  8: 'CANCEL',
  11: 'ENHANCE_YOUR_CALM',
};
