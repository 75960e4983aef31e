/**
 * The STUN subset tailscale uses (tailscale.com/net/stun, checked against v1.104.5): a binding
 * request with SOFTWARE "tailnode" and a FINGERPRINT (40 bytes in all), answered with a binding
 * success carrying only XOR-MAPPED-ADDRESS. Requests that are not exactly that are ignored, as
 * `stun.ParseBindingRequest` ignores them.
 */
import { ipTo16 } from './frames.js';

const MAGIC_COOKIE = 0x2112a442;
const BINDING_REQUEST = 0x0001;
const BINDING_SUCCESS = 0x0101;
const ATTR_SOFTWARE = 0x8022;
const ATTR_FINGERPRINT = 0x8028;
const ATTR_XOR_MAPPED_ADDRESS = 0x0020;
const ATTR_XOR_MAPPED_ADDRESS_ALT = 0x8020;
const ATTR_MAPPED_ADDRESS = 0x0001;
const FINGERPRINT_XOR = 0x5354554e;
const SOFTWARE = Buffer.from('tailnode', 'latin1');
const HEADER_LEN = 20;

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(b: Uint8Array): number {
  let c = 0xffffffff;
  for (const x of b) c = (CRC_TABLE[(c ^ x) & 0xff] as number) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** stun.Is: long enough, top two bits zero, magic cookie in place. */
export function looksLikeStun(b: Uint8Array): boolean {
  return (
    b.length >= HEADER_LEN &&
    ((b[0] as number) & 0xc0) === 0 &&
    Buffer.from(b.buffer, b.byteOffset, b.length).readUInt32BE(4) === MAGIC_COOKIE
  );
}

/** The 12-byte transaction id of a valid tailscale binding request, else null. */
export function parseBindingRequest(msg: Buffer): Buffer | null {
  if (!looksLikeStun(msg)) return null;
  if (msg.readUInt16BE(0) !== BINDING_REQUEST) return null;
  let off = HEADER_LEN;
  let software = false;
  let lastType = -1;
  let fingerprintOk = false;
  while (off + 4 <= msg.length) {
    const type = msg.readUInt16BE(off);
    const len = msg.readUInt16BE(off + 2);
    const padded = (len + 3) & ~3;
    if (off + 4 + len > msg.length) return null;
    const value = msg.subarray(off + 4, off + 4 + len);
    if (type === ATTR_SOFTWARE) software = value.equals(SOFTWARE);
    if (type === ATTR_FINGERPRINT) {
      fingerprintOk =
        len === 4 && value.readUInt32BE(0) === (crc32(msg.subarray(0, off)) ^ FINGERPRINT_XOR) >>> 0;
    }
    lastType = type;
    off += 4 + padded;
  }
  if (!software || lastType !== ATTR_FINGERPRINT || !fingerprintOk) return null;
  return Buffer.from(msg.subarray(8, 20));
}

/** A binding request as tailscale sends it (for tests and the benchmark's clients). */
export function bindingRequest(txId: Uint8Array): Buffer {
  if (txId.length !== 12) throw new RangeError('STUN transaction id is 12 bytes');
  const msg = Buffer.alloc(HEADER_LEN + 4 + SOFTWARE.length + 8);
  msg.writeUInt16BE(BINDING_REQUEST, 0);
  msg.writeUInt16BE(msg.length - HEADER_LEN, 2);
  msg.writeUInt32BE(MAGIC_COOKIE, 4);
  msg.set(txId, 8);
  msg.writeUInt16BE(ATTR_SOFTWARE, 20);
  msg.writeUInt16BE(SOFTWARE.length, 22);
  msg.set(SOFTWARE, 24);
  const fp = 24 + SOFTWARE.length;
  msg.writeUInt16BE(ATTR_FINGERPRINT, fp);
  msg.writeUInt16BE(4, fp + 2);
  msg.writeUInt32BE((crc32(msg.subarray(0, fp)) ^ FINGERPRINT_XOR) >>> 0, fp + 4);
  return msg;
}

/**
 * The binding success for `txId` telling the client it was seen at `ip`:`port`. IPv4 (also
 * v4-mapped IPv6 text such as `::ffff:10.0.0.1`) is sent as family 1, as the client expects.
 */
export function bindingResponse(txId: Uint8Array, ip: string, port: number): Buffer {
  const a16 = ipTo16(ip);
  if (!a16) throw new RangeError(`not an IP address: ${ip}`);
  const v4 = a16.subarray(0, 10).every((b) => b === 0) && a16[10] === 0xff && a16[11] === 0xff;
  const addr = v4 ? a16.subarray(12) : a16;
  const attrLen = 4 + addr.length;
  const msg = Buffer.alloc(HEADER_LEN + 4 + attrLen);
  msg.writeUInt16BE(BINDING_SUCCESS, 0);
  msg.writeUInt16BE(4 + attrLen, 2);
  msg.writeUInt32BE(MAGIC_COOKIE, 4);
  msg.set(txId, 8);
  msg.writeUInt16BE(ATTR_XOR_MAPPED_ADDRESS, 20);
  msg.writeUInt16BE(attrLen, 22);
  msg[24] = 0;
  msg[25] = v4 ? 1 : 2;
  msg.writeUInt16BE(port ^ (MAGIC_COOKIE >>> 16), 26);
  // XOR with the cookie, then (IPv6) the transaction id: bytes 4..20 of the header.
  for (let i = 0; i < addr.length; i++) msg[28 + i] = (addr[i] as number) ^ (msg[4 + i] as number);
  return msg;
}

/** Client side (`stun.ParseResponse`): transaction id and mapped address of a binding success. */
export function parseBindingResponse(msg: Buffer): { txId: Buffer; ip: string; port: number } | null {
  if (!looksLikeStun(msg) || msg.readUInt16BE(0) !== BINDING_SUCCESS) return null;
  const txId = Buffer.from(msg.subarray(8, 20));
  let off = HEADER_LEN;
  let fallback: { ip: string; port: number } | null = null;
  while (off + 4 <= msg.length) {
    const type = msg.readUInt16BE(off);
    const len = msg.readUInt16BE(off + 2);
    if (off + 4 + len > msg.length) return null;
    const v = msg.subarray(off + 4, off + 4 + len);
    const xor = type === ATTR_XOR_MAPPED_ADDRESS || type === ATTR_XOR_MAPPED_ADDRESS_ALT;
    if ((xor || type === ATTR_MAPPED_ADDRESS) && len >= 8) {
      const fam = v[1];
      const n = fam === 1 ? 4 : 16;
      if ((fam === 1 || fam === 2) && len >= 4 + n) {
        const a = Buffer.from(v.subarray(4, 4 + n));
        let port = v.readUInt16BE(2);
        if (xor) {
          port ^= MAGIC_COOKIE >>> 16;
          for (let i = 0; i < n; i++) a[i] = (a[i] as number) ^ (msg[4 + i] as number);
        }
        const ip = n === 4 ? [...a].join('.') : (a.toString('hex').match(/.{4}/g) ?? []).join(':');
        if (xor) return { txId, ip, port };
        fallback = { ip, port };
      }
    }
    off += 4 + ((len + 3) & ~3);
  }
  return fallback ? { txId, ...fallback } : null;
}
