/**
 * The /machine/map response body: repeated [u32 LITTLE-endian length][zstd frame of one
 * MapResponse JSON]. Every frame is compressed, keep-alives included; the keep-alive frame is
 * precomputed once and reused byte for byte (clients recognise it without decompressing).
 */
import { ProtocolError } from './errors.js';
import type { MapResponse } from './tailcfg.js';
import { DEFAULT_MAX_DECOMPRESSED, zstdCompress, zstdDecompress, zstdRawFrame } from './zstd.js';

export const MAP_FRAME_HEADER_LEN = 4;
export const KEEP_ALIVE_JSON = '{"KeepAlive":true}';
/** Largest compressed frame the decoder accepts by default (Tailscale's test server refuses > 256 MiB). */
export const DEFAULT_MAX_MAP_FRAME = 64 * 1024 * 1024;

/**
 * Prefixes an already-compressed payload with its u32 little-endian length: one wire frame. The
 * payload may be several zstd frames concatenated (a decoder decompresses them as one stream).
 */
export function frameMapPayload(payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(MAP_FRAME_HEADER_LEN + payload.length);
  out.writeUInt32LE(payload.length, 0);
  out.set(payload, MAP_FRAME_HEADER_LEN);
  return out;
}

const KEEP_ALIVE_PAYLOAD = zstdRawFrame(Buffer.from(KEEP_ALIVE_JSON, 'utf8'));

/**
 * The keep-alive frame, ready to write: `{"KeepAlive":true}` in a zstd frame (stored block; it is
 * 18 bytes, compression would not shrink it). Needs no zstd initialisation.
 */
export const KEEP_ALIVE_FRAME: Uint8Array = frameMapPayload(KEEP_ALIVE_PAYLOAD);

/** Encodes one MapResponse JSON text (or its UTF-8 bytes) as a length-prefixed zstd frame. */
export function encodeMapFrame(json: string | Uint8Array): Buffer {
  const bytes = typeof json === 'string' ? Buffer.from(json, 'utf8') : json;
  return frameMapPayload(zstdCompress(bytes));
}

/** JSON-encodes and frames a MapResponse. */
export function encodeMapResponse(msg: MapResponse): Buffer {
  return encodeMapFrame(JSON.stringify(msg));
}

export interface DecodedMapFrame {
  /** Decompressed JSON bytes of the MapResponse. */
  readonly json: Uint8Array;
  /** Bytes this frame took on the wire: 4-byte header plus compressed payload. */
  readonly frameSize: number;
  /** True if the frame was byte-identical to the precomputed keep-alive or decodes to it. */
  readonly keepAlive: boolean;
}

export interface MapFrameDecoderOptions {
  /** Largest compressed frame accepted (default 64 MiB). */
  maxFrameSize?: number;
  /** Largest decompressed JSON accepted (default 256 MiB). */
  maxDecodedSize?: number;
}

const KEEP_ALIVE_BYTES = Buffer.from(KEEP_ALIVE_JSON, 'utf8');

/**
 * Incremental decoder for a map response body: push() chunks as they arrive, get whole frames
 * back. Errors (oversized or empty frame, bad zstd) throw ProtocolError('map_frame_invalid' or
 * 'zstd_failed'); the decoder must then be discarded.
 */
export class MapFrameDecoder {
  private readonly chunks: Buffer[] = [];
  private buffered = 0;
  private expected = -1; // payload length of the frame being read, once its header is in
  private readonly maxFrameSize: number;
  private readonly maxDecodedSize: number;

  constructor(opts: MapFrameDecoderOptions = {}) {
    this.maxFrameSize = opts.maxFrameSize ?? DEFAULT_MAX_MAP_FRAME;
    this.maxDecodedSize = opts.maxDecodedSize ?? DEFAULT_MAX_DECOMPRESSED;
  }

  /** Bytes received but not yet returned as frames. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  push(chunk: Uint8Array): DecodedMapFrame[] {
    if (chunk.length > 0) {
      this.chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      this.buffered += chunk.length;
    }
    const out: DecodedMapFrame[] = [];
    for (;;) {
      if (this.expected < 0) {
        if (this.buffered < MAP_FRAME_HEADER_LEN) break;
        const len = this.take(MAP_FRAME_HEADER_LEN).readUInt32LE(0);
        if (len === 0) throw new ProtocolError('map_frame_invalid', 'empty map frame');
        if (len > this.maxFrameSize)
          throw new ProtocolError(
            'map_frame_invalid',
            `map frame of ${len} bytes exceeds the limit of ${this.maxFrameSize}`,
          );
        this.expected = len;
      }
      if (this.buffered < this.expected) break;
      const payload = this.take(this.expected);
      this.expected = -1;
      out.push(this.decode(payload));
    }
    return out;
  }

  /** Call at end of body: throws if a frame was cut off. */
  end(): void {
    if (this.buffered > 0 || this.expected >= 0)
      throw new ProtocolError('map_frame_invalid', 'map response body ended in the middle of a frame');
  }

  private decode(payload: Buffer): DecodedMapFrame {
    const frameSize = MAP_FRAME_HEADER_LEN + payload.length;
    if (payload.equals(KEEP_ALIVE_PAYLOAD)) return { json: KEEP_ALIVE_BYTES, frameSize, keepAlive: true };
    const json = zstdDecompress(payload, this.maxDecodedSize);
    if (json.length === 0) throw new ProtocolError('map_frame_invalid', 'map frame decompressed to nothing');
    return {
      json,
      frameSize,
      keepAlive: Buffer.from(json.buffer, json.byteOffset, json.length).equals(KEEP_ALIVE_BYTES),
    };
  }

  /** Removes and returns the first n buffered bytes (n <= buffered). */
  private take(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.buffered -= n;
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let pos = 0;
    while (pos < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - pos);
      c.copy(out, pos, 0, k);
      pos += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.buffered -= n;
    return out;
  }
}

/** Parses a decoded frame's JSON as a MapResponse (an object; fields are not validated further). */
export function parseMapFrame(frame: DecodedMapFrame): MapResponse {
  let value: unknown;
  try {
    value = JSON.parse(
      Buffer.from(frame.json.buffer, frame.json.byteOffset, frame.json.byteLength).toString('utf8'),
    );
  } catch (err) {
    throw new ProtocolError('map_frame_invalid', `map frame is not JSON: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new ProtocolError('map_frame_invalid', 'map frame is not a JSON object');
  return value;
}
