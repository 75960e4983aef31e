/**
 * zstd for map frames, synchronous after a one-time async init. Uses node:zlib's zstd where the
 * runtime has it (Node >= 22.15 / 24) and otherwise @bokuweb/zstd-wasm. Call `await initZstd()`
 * once at startup; zstdCompress/zstdDecompress then work synchronously. Decompression is bounded
 * (no decompression bombs) and accepts any RFC 8878 input: unknown content size, several frames.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as zlib from 'node:zlib';
import { ProtocolError } from './errors.js';

export type ZstdBackendName = 'node:zlib' | 'wasm';

/** One zstd implementation. */
export interface ZstdBackend {
  readonly name: ZstdBackendName;
  compress(data: Uint8Array, level: number): Uint8Array;
  decompress(data: Uint8Array, maxOutput: number): Uint8Array;
}

/** Map frames are compressed fast: level 1. */
export const DEFAULT_ZSTD_LEVEL = 1;
/** Default bound on decompressed size. */
export const DEFAULT_MAX_DECOMPRESSED = 256 * 1024 * 1024;

const ZSTD_MAGIC = 0xfd2fb528;

// ---- node:zlib -------------------------------------------------------------------------------

interface NodeZstdApi {
  zstdCompressSync(buf: Uint8Array, opts?: { params?: Record<number, number> }): Buffer;
  zstdDecompressSync(buf: Uint8Array, opts?: { maxOutputLength?: number }): Buffer;
  constants: { ZSTD_c_compressionLevel?: number };
}

function nodeZstdApi(): NodeZstdApi | undefined {
  const z = zlib as unknown as Partial<NodeZstdApi>;
  if (typeof z.zstdCompressSync !== 'function' || typeof z.zstdDecompressSync !== 'function')
    return undefined;
  return z as NodeZstdApi;
}

function makeNodeBackend(api: NodeZstdApi): ZstdBackend {
  const levelParam = api.constants.ZSTD_c_compressionLevel ?? 100;
  return {
    name: 'node:zlib',
    compress(data, level) {
      return new Uint8Array(api.zstdCompressSync(data, { params: { [levelParam]: level } }));
    },
    decompress(data, maxOutput) {
      try {
        return new Uint8Array(api.zstdDecompressSync(data, { maxOutputLength: maxOutput }));
      } catch (err) {
        if (err instanceof RangeError) throw tooBig(maxOutput);
        throw new ProtocolError('zstd_failed', `zstd decompression failed: ${(err as Error).message}`);
      }
    },
  };
}

// ---- wasm ------------------------------------------------------------------------------------

interface WasmZstdModule {
  _malloc(size: number): number;
  _free(ptr: number): void;
  _ZSTD_decompress(dst: number, dstCapacity: number, src: number, srcSize: number): number;
  _ZSTD_isError(code: number): number;
  HEAPU8: Uint8Array;
}

interface WasmZstdPackage {
  init(): Promise<void>;
  compress(buf: Uint8Array, level?: number): Uint8Array;
}

/** zstd's ZSTD_error_dstSize_tooSmall as a (wasm32) size_t return value. */
const DST_SIZE_TOO_SMALL = -70;

function makeWasmBackend(pkg: WasmZstdPackage, mod: WasmZstdModule): ZstdBackend {
  return {
    name: 'wasm',
    compress(data, level) {
      try {
        return pkg.compress(data, level);
      } catch (err) {
        throw new ProtocolError('zstd_failed', `zstd compression failed: ${(err as Error).message}`);
      }
    },
    decompress(data, maxOutput) {
      const declared = firstFrameContentSize(data);
      if (declared !== undefined && declared > maxOutput) throw tooBig(maxOutput);
      let capacity = Math.min(maxOutput, Math.max(declared ?? 0, 64 * 1024, data.length * 4));
      const src = mod._malloc(data.length);
      if (src === 0) throw new ProtocolError('zstd_failed', 'zstd: out of wasm memory');
      try {
        mod.HEAPU8.set(data, src);
        for (;;) {
          const dst = mod._malloc(Math.max(capacity, 1));
          if (dst === 0) throw new ProtocolError('zstd_failed', 'zstd: out of wasm memory');
          try {
            const n = mod._ZSTD_decompress(dst, capacity, src, data.length);
            if (!mod._ZSTD_isError(n)) return mod.HEAPU8.slice(dst, dst + n);
            if (n !== DST_SIZE_TOO_SMALL)
              throw new ProtocolError('zstd_failed', `zstd decompression failed (code ${-n})`);
            if (capacity >= maxOutput) throw tooBig(maxOutput);
            capacity = Math.min(maxOutput, capacity * 2);
          } finally {
            mod._free(dst);
          }
        }
      } finally {
        mod._free(src);
      }
    },
  };
}

/**
 * Frame_Content_Size of the first zstd frame (RFC 8878 §3.1.1.1), or undefined if the header
 * does not declare it. Throws for input that does not start with the zstd magic.
 */
export function firstFrameContentSize(data: Uint8Array): number | undefined {
  if (data.length < 5)
    throw new ProtocolError('zstd_failed', `zstd frame of ${data.length} bytes is truncated`);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (view.getUint32(0, true) !== ZSTD_MAGIC)
    throw new ProtocolError('zstd_failed', 'zstd: invalid input: magic number mismatch');
  const fhd = data[4]!;
  const fcsFlag = fhd >> 6;
  const singleSegment = (fhd >> 5) & 1;
  const dictIdSize = [0, 1, 2, 4][fhd & 3]!;
  const fcsSize = fcsFlag === 0 ? singleSegment : [0, 2, 4, 8][fcsFlag]!;
  if (fcsSize === 0) return undefined;
  const pos = 5 + (singleSegment ? 0 : 1) + dictIdSize;
  if (data.length < pos + fcsSize) throw new ProtocolError('zstd_failed', 'zstd frame header is truncated');
  switch (fcsSize) {
    case 1:
      return data[pos]!;
    case 2:
      return view.getUint16(pos, true) + 256;
    case 4:
      return view.getUint32(pos, true);
    default:
      return view.getUint32(pos, true) + view.getUint32(pos + 4, true) * 0x1_0000_0000;
  }
}

function tooBig(max: number): ProtocolError {
  return new ProtocolError('zstd_failed', `zstd: decompressed data exceeds the limit of ${max} bytes`);
}

// ---- selection -------------------------------------------------------------------------------

let active: ZstdBackend | undefined;
let wasmBackend: Promise<ZstdBackend> | undefined;

function loadWasm(): Promise<ZstdBackend> {
  wasmBackend ??= (async () => {
    const require = createRequire(import.meta.url);
    const entry = require.resolve('@bokuweb/zstd-wasm');
    const pkg = require(entry) as WasmZstdPackage;
    // The package's public API only decompresses into a buffer sized from the frame header, which
    // fails for frames without a declared size or several frames; we drive the same emscripten
    // module directly (same file the entry point loads, so the same initialised instance). Its
    // "exports" map hides the file, so it is loaded by absolute path.
    const mod = (require(join(dirname(entry), 'module.js')) as { Module: WasmZstdModule }).Module;
    await pkg.init();
    return makeWasmBackend(pkg, mod);
  })();
  return wasmBackend;
}

/**
 * Prepares zstd; must be awaited once before encoding or decoding map frames. Picks node:zlib
 * when the runtime has zstd, else the wasm build. `prefer: 'wasm'` forces the wasm build.
 */
export async function initZstd(opts: { prefer?: ZstdBackendName } = {}): Promise<void> {
  const api = nodeZstdApi();
  const wasm = await loadWasm();
  if (api && opts.prefer !== 'wasm') {
    // node:zlib compresses (the server's hot path); decoding stays on the wasm build, which reads
    // concatenated frames and reports errors the same way on every runtime (node:zlib's
    // zstdDecompressSync stops after the first frame, as seen on Node 24).
    const node = makeNodeBackend(api);
    active = {
      name: node.name,
      compress: (data, level) => node.compress(data, level),
      decompress: (data, max) => wasm.decompress(data, max),
    };
    return;
  }
  active = wasm;
}

/** Every backend this runtime offers (node:zlib only where present); for cross-checking in tests. */
export async function availableZstdBackends(): Promise<ZstdBackend[]> {
  const out: ZstdBackend[] = [];
  const api = nodeZstdApi();
  const wasm = await loadWasm();
  // node:zlib only compresses here (see initZstd): its decoder stops after the first frame.
  if (api) {
    const node = makeNodeBackend(api);
    out.push({
      name: 'node:zlib',
      compress: (data, level) => node.compress(data, level),
      decompress: (data, max) => wasm.decompress(data, max),
    });
  }
  out.push(wasm);
  return out;
}

/** The backend in use, or undefined before initZstd(). */
export function zstdBackendName(): ZstdBackendName | undefined {
  return active?.name;
}

function backend(): ZstdBackend {
  if (!active)
    throw new ProtocolError('zstd_failed', 'zstd is not initialised', 'await initZstd() once at startup');
  return active;
}

export function zstdCompress(data: Uint8Array, level: number = DEFAULT_ZSTD_LEVEL): Uint8Array {
  return backend().compress(data, level);
}

export function zstdDecompress(data: Uint8Array, maxOutput: number = DEFAULT_MAX_DECOMPRESSED): Uint8Array {
  if (data.length === 0) throw new ProtocolError('zstd_failed', 'zstd: empty input');
  return backend().decompress(data, maxOutput);
}

/**
 * A zstd frame that stores `content` uncompressed (raw blocks). Valid RFC 8878 that any decoder
 * reads, built without a zstd library: used for the precomputed keep-alive frame and in tests.
 */
export function zstdRawFrame(content: Uint8Array): Uint8Array {
  const maxBlock = 128 * 1024;
  const blocks = Math.max(1, Math.ceil(content.length / maxBlock));
  // Single segment, 4-byte Frame_Content_Size (FCS flag 2): window = content size.
  const out = new Uint8Array(4 + 1 + 4 + blocks * 3 + content.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, ZSTD_MAGIC, true);
  out[4] = (2 << 6) | (1 << 5);
  view.setUint32(5, content.length, true);
  let pos = 9;
  for (let i = 0; i < blocks; i++) {
    const start = i * maxBlock;
    const len = Math.min(maxBlock, content.length - start);
    const last = i === blocks - 1 ? 1 : 0;
    const header = last | (0 << 1) | (len << 3); // Block_Type 0 = Raw
    out[pos] = header & 0xff;
    out[pos + 1] = (header >> 8) & 0xff;
    out[pos + 2] = (header >> 16) & 0xff;
    out.set(content.subarray(start, start + len), pos + 3);
    pos += 3 + len;
  }
  return out;
}
